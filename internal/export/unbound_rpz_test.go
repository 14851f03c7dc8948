package export

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/testtool"
)

// upstreamRecords are what the test's authoritative server holds: the
// "real" answers Unbound would give without the RPZ.
var upstreamRecords = []string{
	"seized.test. 60 IN A 203.0.113.10",
	"seized.test. 60 IN AAAA 2001:db8:feed::10",
	"www.seized.test. 60 IN A 203.0.113.11",
	"exact.test. 60 IN A 203.0.113.30",
	"sub.exact.test. 60 IN A 203.0.113.31",
	"clean.test. 60 IN A 203.0.113.20",
	"victim.test. 60 IN A 198.51.100.7",          // inside a seized prefix
	"victim6.test. 60 IN AAAA 2001:db8::1:0:0:7", // a seized IPv6 address
}

// startAuthServer serves records authoritatively on a UDP loopback port,
// as if it were the root: Unbound's only upstream. Unknown names get
// NODATA with the root SOA, never a referral elsewhere.
func startAuthServer(tb testing.TB, records []string) string {
	tb.Helper()
	byName := map[string][]dns.RR{}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		byName[strings.ToLower(rr.Header().Name)] = append(byName[strings.ToLower(rr.Header().Name)], rr)
	}
	soa, err := dns.NewRR(". 60 IN SOA ns.test. hostmaster.test. 1 60 60 60 60")
	if err != nil {
		tb.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			for _, rr := range byName[strings.ToLower(q.Name)] {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{soa}
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	tb.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// unboundConfig is a loopback-only Unbound configuration whose one upstream
// is the test's authoritative server on upstreamPort; serverExtra goes into
// the server: clause, clauses after the stub zones.
func unboundConfig(dir string, port int, upstreamPort, serverExtra, clauses string) string {
	return fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: %[1]d
	do-ip6: no
	outgoing-interface: 127.0.0.1
	do-not-query-localhost: no
	access-control: 127.0.0.0/8 allow
	username: ""
	chroot: ""
	directory: %[2]q
	pidfile: %[4]q
	use-syslog: no
	logfile: ""
	verbosity: 1
	num-threads: 1
	outgoing-range: 32
	so-reuseport: no
	module-config: "respip validator iterator"
%[5]s	qname-minimisation: no
	harden-referral-path: no
	target-fetch-policy: "0 0 0 0 0"
	prefetch: no
	trust-anchor-signaling: no
	root-key-sentinel: no
	# test. is one of Unbound's built-in NXDOMAIN zones (RFC 6761).
	local-zone: "test." nodefault

# The test's zone goes to the test's server on loopback (a stub below the
# root needs no priming). The root goes there too, so that root hints are
# never used: priming the root fails against it (it serves no root NS), so a
# name outside test. gets SERVFAIL and nothing leaves the machine; with
# outgoing-interface 127.0.0.1, Unbound could not send off loopback anyway.
stub-zone:
	name: "test."
	stub-addr: 127.0.0.1@%[3]s
stub-zone:
	name: "."
	stub-addr: 127.0.0.1@%[3]s

%[6]s
remote-control:
	control-enable: no
`, port, dir, upstreamPort, filepath.Join(dir, "unbound.pid"), serverExtra, clauses)
}

// lockedBuffer collects a process's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// resolverProc is a running resolver (Unbound, dnsmasq).
type resolverProc struct {
	addr string
	out  *lockedBuffer
	done chan error
	cmd  *exec.Cmd
}

// startUnbound runs unbound -d with conf and waits until it answers.
func startUnbound(tb testing.TB, prog, conf, addr string) *resolverProc {
	tb.Helper()
	return startResolver(tb, addr, prog, "-d", "-c", conf)
}

// startResolver runs a resolver in the foreground and waits until it
// answers clean.test on addr.
func startResolver(tb testing.TB, addr, prog string, args ...string) *resolverProc {
	tb.Helper()
	p := &resolverProc{addr: addr, out: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(prog, args...)
	dieWithTest(p.cmd)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	tb.Cleanup(p.stop)

	// Wait for readiness: Unbound answers once it has loaded the RPZ.
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	last := "no answer"
	for {
		m := new(dns.Msg)
		m.SetQuestion("clean.test.", dns.TypeA)
		r, _, err := c.ExchangeContext(ctx, m, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			return p
		}
		if err != nil {
			last = err.Error()
		} else {
			last = dns.RcodeToString[r.Rcode]
		}
		select {
		case err := <-p.done:
			p.done <- err
			tb.Fatalf("%s exited: %v\n%s", prog, err, p.out.String())
		case <-ctx.Done():
			tb.Fatalf("%s did not answer (last: %s): %v\n%s", prog, last, ctx.Err(), p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the process and waits for it; safe to call twice.
func (p *resolverProc) stop() {
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
	}
}

// resolve asks Unbound and returns the rcode and the A/AAAA data.
func resolve(tb testing.TB, addr, name string, qtype uint16) (int, []string) {
	tb.Helper()
	c := &dns.Client{Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.ExchangeContext(tb.Context(), m, addr)
	if err != nil {
		tb.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	var data []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			data = append(data, rr.A.String())
		case *dns.AAAA:
			data = append(data, rr.AAAA.String())
		}
	}
	slices.Sort(data)
	return r.Rcode, data
}

// dnsCheck is one question to a resolver and the answer it must give.
type dnsCheck struct {
	name  string
	qtype uint16
	rcode int
	data  []string // sorted A/AAAA data of the answer
}

func runChecks(t *testing.T, addr string, checks []dnsCheck) {
	t.Helper()
	for _, c := range checks {
		rcode, data := resolve(t, addr, c.name, c.qtype)
		if rcode != c.rcode || !slices.Equal(data, c.data) {
			t.Errorf("%s %s = %s %v, want %s %v", c.name, dns.TypeToString[c.qtype],
				dns.RcodeToString[rcode], data, dns.RcodeToString[c.rcode], c.data)
		}
	}
}

// activeAt plays the registry: the entries in force at at.
func activeAt(all []registry.Entry, at time.Time, serial uint32) *registry.ActiveSet {
	var in []registry.Entry
	for _, e := range all {
		if !at.Before(e.Effective) && at.Before(e.Expires) {
			in = append(in, e)
		}
	}
	return newSet(at, serial, in)
}

func TestUnboundEnforcesRPZ(t *testing.T) {
	unbound := testtool.Need(t, "unbound", "unbound")
	checkconf := testtool.Need(t, "unbound-checkconf", "unbound")
	upstream := startAuthServer(t, upstreamRecords)
	_, upPort, _ := net.SplitHostPort(upstream)

	const r = "rustock-2011"
	orders := []registry.Entry{
		entry(t, registry.KindDomain, "seized.test", r, shortExpiry),
		entry(t, registry.KindHost, "exact.test", r, longExpiry),
		entry(t, registry.KindCIDR, "198.51.100.0/24", r, longExpiry),
		entry(t, registry.KindIP, "2001:db8::1:0:0:7", r, longExpiry),
	}
	opt := sinkholeOpts(ActionLocal)
	sinkA, sinkAAAA := opt.SinkholeA.String(), opt.SinkholeAAAA.String()

	dir := t.TempDir()
	zone := filepath.Join(dir, "rpz.zone")
	port := testtool.FreeBothPort(t)
	addr := net.JoinHostPort("127.0.0.1", itoa(port))
	conf := filepath.Join(dir, "unbound.conf")
	writeFile(t, conf, unboundConfig(dir, port, upPort, "", fmt.Sprintf(`rpz:
	name: "%s."
	zonefile: %q
	rpz-log: yes
	rpz-log-name: "takedown"
`, DefaultOrigin, zone)))

	// In force: the domain is seized.
	writeFile(t, zone, exportString(t, "rpz", activeAt(orders, fixtureAt, 1), opt))
	if out, err := runTool(t, checkconf, conf); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	u := startUnbound(t, unbound, conf, addr)

	type check = dnsCheck
	run := func(t *testing.T, checks []check) { t.Helper(); runChecks(t, addr, checks) }
	ok, nx := dns.RcodeSuccess, dns.RcodeNameError
	t.Run("in force", func(t *testing.T) {
		run(t, []check{
			{"seized.test.", dns.TypeA, ok, []string{sinkA}},
			{"seized.test.", dns.TypeAAAA, ok, []string{sinkAAAA}},
			{"www.seized.test.", dns.TypeA, ok, []string{sinkA}},
			{"deep.www.seized.test.", dns.TypeA, ok, []string{sinkA}},
			{"exact.test.", dns.TypeA, ok, []string{sinkA}},
			{"sub.exact.test.", dns.TypeA, ok, []string{"203.0.113.31"}}, // a host is not its subdomains
			{"clean.test.", dns.TypeA, ok, []string{"203.0.113.20"}},     // untouched
			{"victim.test.", dns.TypeA, nx, nil},                         // answer inside 198.51.100.0/24
			{"victim6.test.", dns.TypeAAAA, nx, nil},                     // answer is the seized IPv6 address
		})
	})
	if t.Failed() {
		t.Logf("unbound output:\n%s", u.out.String())
	}

	// Re-export past the domain's expiry and restart Unbound on the new zone.
	writeFile(t, zone, exportString(t, "rpz", activeAt(orders, shortExpiry.Add(24*time.Hour), 2), opt))
	u.stop()
	u = startUnbound(t, unbound, conf, addr)
	t.Run("after expiry", func(t *testing.T) {
		run(t, []check{
			{"seized.test.", dns.TypeA, ok, []string{"203.0.113.10"}},
			{"www.seized.test.", dns.TypeA, ok, []string{"203.0.113.11"}},
			{"exact.test.", dns.TypeA, ok, []string{sinkA}}, // its order is still in force
			{"victim.test.", dns.TypeA, nx, nil},
		})
	})
	if t.Failed() {
		t.Logf("unbound output:\n%s", u.out.String())
	}
}
