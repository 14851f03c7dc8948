package export

import (
	"io"

	"github.com/takedown/takedown/internal/registry"
)

// unboundExporter writes Unbound local-zone and local-data lines, to be
// included in the server: clause (include: "takedown.conf").
//
// A domain is local-zone "name." redirect with local-data of the sinkhole at
// the apex: the name and every subdomain get the sinkhole address, other
// types NODATA. With ActionNXDOMAIN a domain is always_nxdomain.
//
// A host (exact name) is a transparent local-zone with local-data: the name
// gets the sinkhole (other types NODATA) and its subdomains resolve as
// usual. Unbound cannot say NXDOMAIN for one exact name without its
// subdomains, so with ActionNXDOMAIN a host answers 0.0.0.0 and ::.
//
// Addresses and prefixes are left out (they would need response-ip: and the
// respip module): use the rpz export for them in Unbound.
type unboundExporter struct{}

var _ Exporter = unboundExporter{}

func (unboundExporter) Name() string { return "unbound" }

func (unboundExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	opt, err := opt.normalize(true)
	if err != nil {
		return err
	}
	p := planOf(set)
	bw := buffered(w)
	header(bw, "#", "Unbound", set, &p,
		"action "+opt.Action+"; include this file in the server: clause.",
		"addresses and prefixes are left out: load the rpz export for response-IP triggers.")
	for _, r := range p.names {
		q := "\"" + r.name + ".\""
		switch {
		case r.domain && opt.Action == ActionNXDOMAIN:
			bw.WriteString("local-zone: " + q + " always_nxdomain\n")
			continue
		case r.domain:
			bw.WriteString("local-zone: " + q + " redirect\n")
		default:
			bw.WriteString("local-zone: " + q + " transparent\n")
		}
		a, aaaa := opt.SinkholeA, opt.SinkholeAAAA
		if opt.Action == ActionNXDOMAIN { // hosts only: see the type's doc
			a, aaaa = nullA, nullAAAA
		}
		if a.IsValid() {
			bw.WriteString("local-data: \"" + r.name + ". " + itoa(rpzTTL) + " IN A " + a.String() + "\"\n")
		}
		if aaaa.IsValid() {
			bw.WriteString("local-data: \"" + r.name + ". " + itoa(rpzTTL) + " IN AAAA " + aaaa.String() + "\"\n")
		}
	}
	return bw.Flush()
}
