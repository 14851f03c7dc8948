package export

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/testtool"
)

// TestResolversEnforceLocalExports loads the unbound and dnsmasq exports
// into the real resolvers, whose only upstream is the test's authoritative
// server on loopback, and checks what a client gets: the sinkhole for a
// seized domain and its subdomains, the exact name only for a host, no
// leak of the seized servers' real AAAA when there is no AAAA sinkhole,
// NXDOMAIN under ActionNXDOMAIN, and clean names untouched.
func TestResolversEnforceLocalExports(t *testing.T) {
	const r = "rustock-2011"
	const sinkA = "192.0.2.53"
	ok, nx := dns.RcodeSuccess, dns.RcodeNameError
	A, AAAA := dns.TypeA, dns.TypeAAAA
	set := newSet(fixtureAt, 1, []registry.Entry{
		entry(t, registry.KindDomain, "seized.test", r, longExpiry),
		entry(t, registry.KindHost, "exact.test", r, longExpiry),
	})
	clean := []dnsCheck{
		{"sub.exact.test.", A, ok, []string{"203.0.113.31"}}, // a host is not its subdomains
		{"clean.test.", A, ok, []string{"203.0.113.20"}},
	}
	local := slices.Concat([]dnsCheck{
		{"seized.test.", A, ok, []string{sinkA}},
		{"www.seized.test.", A, ok, []string{sinkA}},
		{"seized.test.", AAAA, ok, nil}, // NODATA, not upstream's 2001:db8:feed::10
		{"www.seized.test.", AAAA, ok, nil},
		{"exact.test.", A, ok, []string{sinkA}},
	}, clean)
	nxdomain := slices.Concat([]dnsCheck{
		{"seized.test.", A, nx, nil},
		{"www.seized.test.", A, nx, nil},
		{"exact.test.", A, ok, []string{"0.0.0.0"}}, // no exact-name NXDOMAIN: see the exporters
	}, clean)

	tests := []struct {
		format, action string
		checks         []dnsCheck
	}{
		{"unbound", ActionLocal, slices.Concat(local, []dnsCheck{{"exact.test.", AAAA, ok, nil}})},
		{"unbound", ActionNXDOMAIN, nxdomain},
		{"dnsmasq", ActionLocal, slices.Concat(local, []dnsCheck{{"exact.test.", AAAA, ok, []string{"::"}}})},
		{"dnsmasq", ActionNXDOMAIN, nxdomain},
	}
	for _, tc := range tests {
		t.Run(tc.format+"/"+tc.action, func(t *testing.T) {
			upstream := startAuthServer(t, upstreamRecords)
			_, upPort, _ := net.SplitHostPort(upstream)
			dir := t.TempDir()
			path := writeExport(t, dir, tc.format, set, Options{SinkholeA: netip.MustParseAddr(sinkA), Action: tc.action})
			port := testtool.FreeBothPort(t)
			addr := net.JoinHostPort("127.0.0.1", itoa(port))
			var p *resolverProc
			switch tc.format {
			case "unbound":
				prog := testtool.Need(t, "unbound", "unbound")
				conf := filepath.Join(dir, "unbound.conf")
				writeFile(t, conf, unboundConfig(dir, port, upPort, "\tinclude: \""+path+"\"\n", ""))
				p = startUnbound(t, prog, conf, addr)
			case "dnsmasq":
				prog := testtool.Need(t, "dnsmasq", "dnsmasq-base")
				// Only the export, loopback, and the test's upstream: no
				// /etc/resolv.conf, no /etc/hosts, no cache to hide a forward.
				p = startResolver(t, addr, prog, "--keep-in-foreground", "--conf-file="+path,
					"--port="+itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
					"--no-resolv", "--no-hosts", "--no-poll", "--server=127.0.0.1#"+upPort,
					"--cache-size=0", "--user=root", "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
					"--log-facility=-", "--log-queries")
			}
			runChecks(t, addr, tc.checks)
			if t.Failed() {
				t.Logf("%s output:\n%s", tc.format, p.out.String())
			}
		})
	}
}
