package export

import (
	"io"

	"github.com/takedown/takedown/internal/registry"
)

// dnsmasqExporter writes dnsmasq configuration lines (for conf-file= or
// conf-dir=).
//
// A domain is address=/name/addr, which covers the name and every
// subdomain, plus local=/name/ so that record types without a sinkhole
// answer (MX, TXT, AAAA when there is no AAAA sinkhole …) get NODATA
// instead of being forwarded upstream to the seized servers' real data
// (dnsmasq ≥ 2.86 forwards them otherwise). With ActionNXDOMAIN a domain is
// address=/name/, which answers NXDOMAIN for the name and its subdomains.
//
// address= cannot match a name without its subdomains, so a host (exact
// name) is a host-record= instead: A and AAAA for that name only, :: for
// AAAA when there is no AAAA sinkhole. Two limits follow from dnsmasq, not
// from this file: other record types of a host are still resolved upstream,
// and the first host-record also creates a PTR record of the sinkhole
// address. dnsmasq cannot say NXDOMAIN for one exact name, so with
// ActionNXDOMAIN a host answers 0.0.0.0 and ::.
//
// Addresses and prefixes cannot be expressed and are left out.
type dnsmasqExporter struct{}

var _ Exporter = dnsmasqExporter{}

func (dnsmasqExporter) Name() string { return "dnsmasq" }

func (dnsmasqExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	opt, err := opt.normalize(true)
	if err != nil {
		return err
	}
	p := planOf(set)
	bw := buffered(w)
	header(bw, "#", "dnsmasq", set, &p, "action "+opt.Action+"; addresses and prefixes cannot be expressed in dnsmasq and are left out.")

	hostA, hostAAAA := nullA.String(), nullAAAA.String()
	if opt.Action == ActionLocal {
		hostA = ""
		if opt.SinkholeA.IsValid() {
			hostA = opt.SinkholeA.String()
		}
		if opt.SinkholeAAAA.IsValid() {
			hostAAAA = opt.SinkholeAAAA.String()
		}
	}
	for _, r := range p.names {
		if !r.domain {
			bw.WriteString("host-record=" + r.name + ",")
			if hostA != "" {
				bw.WriteString(hostA + ",")
			}
			bw.WriteString(hostAAAA + "\n")
			continue
		}
		if opt.Action == ActionNXDOMAIN {
			bw.WriteString("address=/" + r.name + "/\n")
			continue
		}
		bw.WriteString("local=/" + r.name + "/\n")
		if opt.SinkholeA.IsValid() {
			bw.WriteString("address=/" + r.name + "/" + opt.SinkholeA.String() + "\n")
		}
		if opt.SinkholeAAAA.IsValid() {
			bw.WriteString("address=/" + r.name + "/" + opt.SinkholeAAAA.String() + "\n")
		}
	}
	return bw.Flush()
}
