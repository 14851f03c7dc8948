package export

import (
	"cmp"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/takedown/takedown/internal/registry"
)

// The range of local Suricata SIDs.
const (
	sidMin   = 1_000_000
	sidCount = 1_000_000
)

// suricataExporter writes Suricata rules: for a seized domain a DNS rule
// and a TLS SNI rule that match the name and every subdomain (dotprefix;
// content:".name"; endswith), for a host the same two rules matching the
// exact name (bsize), and for an address or prefix an IP rule on traffic to
// it.
//
// SIDs are stable for the same indicator across exports: a rule's SID is
// 1,000,000 + FNV-1a-64(rule key) mod 1,000,000, where the key names the
// indicator and the rule (e.g. "domain/dns/c2.example"). Collisions are
// resolved by linear probing, in order of (hashed SID, key), so a rule
// keeps its SID unless another rule hashes to the same SID or to the run of
// SIDs just before it, and the one whose key sorts first keeps the hashed
// SID. rev is always 1: a changed rule (new cases in msg) keeps its SID.
type suricataExporter struct{}

var _ Exporter = suricataExporter{}

func (suricataExporter) Name() string { return "suricata" }

type suricataRule struct {
	key  string
	text string // with %SID% in place of the number
	sid  int
}

func (suricataExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	p := planOf(set)
	rules := make([]suricataRule, 0, 2*len(p.names)+len(p.addrs))
	for _, r := range p.names {
		cases := suricataEscape(comment(r.cases))
		kind, what := "host", "seized host "
		match := "; content:\"" + r.name + "\"; nocase; bsize:" + strconv.Itoa(len(r.name)) + ";"
		if r.domain {
			kind, what = "domain", "seized domain "
			match = "; dotprefix; content:\"." + r.name + "\"; endswith; nocase;"
		}
		rules = append(rules,
			suricataRule{key: kind + "/dns/" + r.name, text: "alert dns any any -> any any (msg:\"takedown " + what + r.name + " (case " + cases + ")\"; dns.query" + match},
			suricataRule{key: kind + "/tls/" + r.name, text: "alert tls any any -> any any (msg:\"takedown " + what + r.name + " in TLS SNI (case " + cases + ")\"; tls.sni" + match})
	}
	for _, r := range p.addrs {
		a := prefixString(r.prefix)
		cases := suricataEscape(comment(r.cases))
		what := "network"
		if r.prefix.IsSingleIP() {
			what = "address"
		}
		rules = append(rules, suricataRule{key: "addr/" + r.prefix.String(),
			text: "alert ip any any -> " + a + " any (msg:\"takedown seized " + what + " " + a + " (case " + cases + ")\";"})
	}
	assignSIDs(rules)

	bw := buffered(w)
	header(bw, "#", "Suricata", set, &p, "SIDs "+strconv.Itoa(sidMin)+"-"+strconv.Itoa(sidMin+sidCount-1)+", stable per indicator (see the export package).")
	for _, r := range rules {
		bw.WriteString(r.text)
		bw.WriteString(" classtype:trojan-activity; sid:")
		bw.WriteString(strconv.Itoa(r.sid))
		bw.WriteString("; rev:1;)\n")
	}
	return bw.Flush()
}

// sidOf is a rule key's SID before collisions: FNV-1a (64-bit) of the key,
// reduced to the range. Inlined rather than hash/fnv so that it allocates
// nothing; TestSIDOfIsFNV1a pins it to the standard one.
func sidOf(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return sidMin + int(h%sidCount)
}

// assignSIDs gives every rule a distinct SID (see suricataExporter). More
// rules than SIDs cannot happen with the registry's sizes; the extra rules
// would get SID 0, which Suricata rejects loudly rather than silently.
func assignSIDs(rules []suricataRule) {
	type slot struct{ sid, i int32 }
	order := make([]slot, len(rules))
	for i := range rules {
		rules[i].sid = sidOf(rules[i].key)
		order[i] = slot{int32(rules[i].sid), int32(i)}
	}
	slices.SortFunc(order, func(a, b slot) int {
		if a.sid != b.sid {
			return cmp.Compare(a.sid, b.sid)
		}
		return cmp.Compare(rules[a.i].key, rules[b.i].key) // only on a collision
	})
	var taken []uint64 // a bit per SID of the range, allocated only if needed
	if len(rules) > 1 {
		taken = make([]uint64, (sidCount+63)/64)
	}
	for n, o := range order {
		i := o.i
		if n >= sidCount {
			rules[i].sid = 0
			continue
		}
		if taken == nil {
			continue
		}
		s := rules[i].sid - sidMin
		for taken[s/64]&(1<<(s%64)) != 0 {
			s = (s + 1) % sidCount
		}
		taken[s/64] |= 1 << (s % 64)
		rules[i].sid = sidMin + s
	}
}

// suricataEscape escapes the characters a rule option value cannot hold
// bare.
func suricataEscape(s string) string {
	if !strings.ContainsAny(s, "\\\";") {
		return s
	}
	return suricataEscaper.Replace(s)
}

// suricataEscaper backslash-escapes what a rule option value cannot hold.
var suricataEscaper = strings.NewReplacer("\\", "\\\\", "\"", "\\\"", ";", "\\;")
