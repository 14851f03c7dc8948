package export

import (
	"io"

	"github.com/takedown/takedown/internal/registry"
)

// hostsExporter writes an /etc/hosts-style file: one line per seized name
// and address family. A hosts file has no wildcards, so a seized domain
// blocks only its own name, never its subdomains: use RPZ, dnsmasq or
// Unbound where subdomains matter. Addresses and prefixes cannot be
// expressed and are left out. Every name gets an IPv4 and an IPv6 line (the
// sinkhole, or 0.0.0.0 and :: for a family without one), so that neither
// lookup falls through to DNS. A hosts file cannot say NXDOMAIN: with
// ActionNXDOMAIN names map to 0.0.0.0 and ::.
type hostsExporter struct{}

var _ Exporter = hostsExporter{}

func (hostsExporter) Name() string { return "hosts" }

func (hostsExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	opt, err := opt.normalize(false)
	if err != nil {
		return err
	}
	// Both families always: a name listed with an IPv4 address only would
	// fall through to DNS for AAAA (and get the seized server's address).
	a, aaaa := nullA, nullAAAA
	if opt.Action == ActionLocal && opt.SinkholeA.IsValid() {
		a = opt.SinkholeA
	}
	if opt.Action == ActionLocal && opt.SinkholeAAAA.IsValid() {
		aaaa = opt.SinkholeAAAA
	}
	addrs := []string{a.String(), aaaa.String()}
	p := planOf(set)
	bw := buffered(w)
	header(bw, "#", "hosts", set, &p,
		"hosts files have no wildcards: a seized domain blocks only its own name here, not its subdomains;",
		"addresses and prefixes cannot be expressed in a hosts file and are left out.")
	for _, r := range p.names {
		for _, a := range addrs {
			bw.WriteString(a)
			bw.WriteByte(' ')
			bw.WriteString(r.name)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}
