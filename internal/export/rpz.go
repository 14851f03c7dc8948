package export

import (
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/takedown/takedown/internal/registry"
)

// rpzTTL is the TTL of the zone's records: short, so an expiry or a revoked
// order reaches resolvers' caches within minutes.
const rpzTTL = 300

// rpzExporter writes a DNS Response Policy Zone (draft-vixie-dnsop-dns-rpz,
// as BIND and Unbound load it).
//
// A domain is two QNAME triggers, the name and *.name (a wildcard does not
// cover its own apex); a host is the name alone. The action is local data
// (A and/or AAAA of the sinkhole) or CNAME . (NXDOMAIN). Addresses and
// prefixes are response-IP triggers (<len>.<reversed>.rpz-ip) whose action
// is always CNAME .: an answer pointing into a seized network becomes
// NXDOMAIN, since there is no sinkhole name to substitute.
type rpzExporter struct{}

var _ Exporter = rpzExporter{}

func (rpzExporter) Name() string { return "rpz" }

func (rpzExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	opt, err := opt.normalize(true)
	if err != nil {
		return err
	}
	p := planOf(set)
	bw := buffered(w)
	header(bw, ";", "RPZ", set, &p, "origin "+opt.Origin+", action "+opt.Action)
	bw.WriteString("$ORIGIN " + opt.Origin + ".\n")
	bw.WriteString("$TTL " + strconv.Itoa(rpzTTL) + "\n")
	// Refresh, retry, expire and negative TTL are those of a zone that is
	// reloaded from a file on change; the serial is the registry's.
	bw.WriteString("@ SOA localhost. hostmaster.localhost. " + strconv.FormatUint(uint64(set.Serial), 10) + " 3600 600 604800 " + strconv.Itoa(rpzTTL) + "\n")
	bw.WriteString("@ NS localhost.\n")

	var data []string // the action's right-hand sides
	if opt.Action == ActionNXDOMAIN {
		data = []string{"CNAME ."}
	} else {
		if opt.SinkholeA.IsValid() {
			data = append(data, "A "+opt.SinkholeA.String())
		}
		if opt.SinkholeAAAA.IsValid() {
			data = append(data, "AAAA "+opt.SinkholeAAAA.String())
		}
	}
	for _, r := range p.names {
		if rpzSpecial(r.name) {
			bw.WriteString("; skipped, the name would read as an RPZ trigger of another kind: " + r.name + "\n")
			continue
		}
		if len("*.")+len(r.name)+len(".")+len(opt.Origin) > 253 {
			bw.WriteString("; skipped, too long for a name under the origin: " + r.name + "\n")
			continue
		}
		cases := "; " + comment(r.cases)
		owners := []string{r.name}
		if r.domain {
			owners = append(owners, "*."+r.name)
		}
		for _, o := range owners {
			for i, d := range data {
				bw.WriteString(o)
				bw.WriteByte(' ')
				bw.WriteString(d)
				if i == 0 {
					bw.WriteByte(' ')
					bw.WriteString(cases)
				}
				bw.WriteByte('\n')
			}
		}
	}
	for _, r := range p.addrs {
		bw.WriteString(rpzIPTrigger(r.prefix))
		bw.WriteString(" CNAME . ; ")
		bw.WriteString(prefixString(r.prefix))
		bw.WriteByte(' ')
		bw.WriteString(comment(r.cases))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// rpzSpecial reports whether name ends in a label that RPZ reserves for
// other triggers; written as a QNAME trigger it would mean something else.
func rpzSpecial(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	switch last {
	case "rpz-ip", "rpz-nsip", "rpz-nsdname", "rpz-client-ip":
		return true
	}
	return false
}

// rpzIPTrigger returns the owner name, relative to the origin, of a
// response-IP trigger for p: the prefix length, then the address's labels
// reversed, then "rpz-ip". IPv4 labels are the decimal octets. IPv6 labels
// are the hexadecimal groups without leading zeros, with the longest run of
// zero groups written as the single label "zz" (the draft's form of "::";
// the run chosen is the one RFC 5952 compresses: the first of the longest,
// and only runs of two or more).
func rpzIPTrigger(p netip.Prefix) string {
	a := p.Addr()
	var labels []string
	if a.Is4() {
		b := a.As4()
		labels = []string{strconv.Itoa(int(b[0])), strconv.Itoa(int(b[1])), strconv.Itoa(int(b[2])), strconv.Itoa(int(b[3]))}
	} else {
		b := a.As16()
		var groups [8]uint16
		for i := range groups {
			groups[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		start, n := longestZeroRun(groups)
		for i := 0; i < 8; i++ {
			if i == start && n >= 2 {
				labels = append(labels, "zz")
				i += n - 1
				continue
			}
			labels = append(labels, strconv.FormatUint(uint64(groups[i]), 16))
		}
	}
	var sb strings.Builder
	sb.WriteString(strconv.Itoa(p.Bits()))
	for i := len(labels) - 1; i >= 0; i-- {
		sb.WriteByte('.')
		sb.WriteString(labels[i])
	}
	sb.WriteString(".rpz-ip")
	return sb.String()
}

// longestZeroRun returns the start and length of the first longest run of
// zero groups.
func longestZeroRun(g [8]uint16) (start, n int) {
	start = -1
	for i := 0; i < 8; {
		if g[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i > n {
			start, n = i, j-i
		}
		i = j
	}
	return start, n
}
