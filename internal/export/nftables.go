package export

import (
	"io"
	"net/netip"

	"github.com/takedown/takedown/internal/registry"
)

// nftablesExporter writes an nftables script (nft -f FILE) that replaces
// the table inet takedown atomically: two interval sets, seized_v4 (type
// ipv4_addr) and seized_v6 (type ipv6_addr), holding the seized addresses
// and prefixes, and output and forward chains that count and drop traffic
// to them. Loading it again swaps in the new sets in one transaction.
//
// A prefix contained in another seized prefix is left out (the sets are
// interval sets, and nft refuses overlapping elements); the header says how
// many. Names cannot be expressed and are left out.
type nftablesExporter struct{}

var _ Exporter = nftablesExporter{}

func (nftablesExporter) Name() string { return "nftables" }

func (nftablesExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	p := planOf(set)
	v4, v6, contained := mergePrefixes(p.addrs)
	bw := buffered(w)
	header(bw, "#", "nftables", set, nil)
	bw.WriteString("# " + itoa(len(v4)) + " IPv4 and " + itoa(len(v6)) + " IPv6 elements")
	if contained > 0 {
		bw.WriteString("; " + itoa(contained) + " prefixes left out as contained in another")
	}
	bw.WriteString("\n# names cannot be expressed in nftables and are left out.\n")
	// Declaring the table first makes the delete succeed on first load.
	bw.WriteString("table inet takedown\ndelete table inet takedown\n\ntable inet takedown {\n")
	writeNftSet(bw, "seized_v4", "ipv4_addr", v4)
	writeNftSet(bw, "seized_v6", "ipv6_addr", v6)
	for _, hook := range []string{"output", "forward"} {
		bw.WriteString("\tchain " + hook + " {\n")
		bw.WriteString("\t\ttype filter hook " + hook + " priority filter; policy accept;\n")
		bw.WriteString("\t\tip daddr @seized_v4 counter drop comment \"takedown: seized address\"\n")
		bw.WriteString("\t\tip6 daddr @seized_v6 counter drop comment \"takedown: seized address\"\n")
		bw.WriteString("\t}\n")
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

func writeNftSet(bw interface{ WriteString(string) (int, error) }, name, typ string, elems []netip.Prefix) {
	bw.WriteString("\tset " + name + " {\n\t\ttype " + typ + "\n\t\tflags interval\n")
	if len(elems) > 0 {
		bw.WriteString("\t\telements = {\n")
		for i, e := range elems {
			bw.WriteString("\t\t\t" + prefixString(e))
			if i < len(elems)-1 {
				bw.WriteString(",")
			}
			bw.WriteString("\n")
		}
		bw.WriteString("\t\t}\n")
	}
	bw.WriteString("\t}\n")
}

// mergePrefixes splits sorted rules into IPv4 and IPv6 prefixes, dropping
// those contained in an earlier one. Prefixes are aligned, so two either
// nest or are disjoint, and in comparePrefix order a container comes before
// everything it contains: comparing with the last kept prefix is enough.
func mergePrefixes(rules []addrRule) (v4, v6 []netip.Prefix, contained int) {
	for _, r := range rules {
		dst := &v6
		if r.prefix.Addr().Is4() {
			dst = &v4
		}
		if n := len(*dst); n > 0 && (*dst)[n-1].Contains(r.prefix.Addr()) {
			contained++
			continue
		}
		*dst = append(*dst, r.prefix)
	}
	return v4, v6, contained
}
