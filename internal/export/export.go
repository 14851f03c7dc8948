// Package export turns the indicators in force at one instant (a
// [registry.ActiveSet]) into the formats that resolvers, firewalls, IDS and
// threat-intelligence platforms load: RPZ, hosts, dnsmasq, Unbound
// local-zone, nftables, Suricata, STIX 2.1, CSV and JSON.
//
// Every exporter is deterministic: identical input gives identical bytes.
// Nothing reads the wall clock; times come from the set (At, Serial) and its
// entries. The package does not choose which indicators are in force (the
// registry does) and does not load the output into anything (operators and
// tests do).
//
// One file per format; each format is one [Exporter], found by [Lookup].
package export

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/registry"
)

// DefaultOrigin is the RPZ origin when [Options.Origin] is empty.
const DefaultOrigin = "rpz.takedown.invalid"

// The actions of [Options.Action].
const (
	ActionLocal    = "local"    // answer seized names with the sinkhole addresses
	ActionNXDOMAIN = "nxdomain" // make seized names not exist
)

// Options are what an export needs besides the set. Formats ignore the
// options that do not apply to them.
type Options struct {
	// Origin is the RPZ zone name; default [DefaultOrigin].
	Origin string
	// SinkholeA and SinkholeAAAA are the sinkhole addresses seized names
	// resolve to under ActionLocal. RPZ, dnsmasq and Unbound need at least
	// one; hosts falls back to 0.0.0.0 and ::.
	SinkholeA, SinkholeAAAA netip.Addr
	// Action is ActionLocal (default) or ActionNXDOMAIN.
	Action string
}

// Exporter writes one format.
type Exporter interface {
	// Name is the format's name on the command line.
	Name() string
	// Export writes set to w in this format. Bad options are reported
	// before anything is written; otherwise the error is w's.
	Export(w io.Writer, set *registry.ActiveSet, opt Options) error
}

// exporters is every format, in the order of [Names]. Read-only.
var exporters = []Exporter{
	rpzExporter{}, hostsExporter{}, dnsmasqExporter{}, unboundExporter{},
	nftablesExporter{}, suricataExporter{}, stixExporter{}, csvExporter{}, jsonExporter{},
}

// Names returns the format names, in the order the documentation lists them.
func Names() []string {
	names := make([]string, len(exporters))
	for i, e := range exporters {
		names[i] = e.Name()
	}
	return names
}

// Lookup returns the exporter of the format called name.
func Lookup(name string) (Exporter, error) {
	for _, e := range exporters {
		if e.Name() == name {
			return e, nil
		}
	}
	return nil, fmt.Errorf("unknown export format %q (want one of %s)", name, strings.Join(Names(), ", "))
}

// normalize fills in defaults and checks opt. needSinkhole is set by the
// formats that cannot answer ActionLocal without an address.
func (opt Options) normalize(needSinkhole bool) (Options, error) {
	var errs []error
	if opt.Origin == "" {
		opt.Origin = DefaultOrigin
	}
	opt.Origin = strings.ToLower(strings.TrimSuffix(opt.Origin, "."))
	if _, ok := dns.IsDomainName(opt.Origin); !ok || opt.Origin == "" || !plainName(opt.Origin) {
		errs = append(errs, fmt.Errorf("bad RPZ origin %q", opt.Origin))
	}
	switch opt.Action {
	case "":
		opt.Action = ActionLocal
	case ActionLocal, ActionNXDOMAIN:
	default:
		errs = append(errs, fmt.Errorf("unknown action %q (want %s or %s)", opt.Action, ActionLocal, ActionNXDOMAIN))
	}
	if opt.SinkholeA.IsValid() {
		opt.SinkholeA = opt.SinkholeA.Unmap()
		if !opt.SinkholeA.Is4() {
			errs = append(errs, fmt.Errorf("sinkhole A address %s is not IPv4", opt.SinkholeA))
		}
	}
	if opt.SinkholeAAAA.IsValid() && (!opt.SinkholeAAAA.Is6() || opt.SinkholeAAAA.Is4In6()) {
		errs = append(errs, fmt.Errorf("sinkhole AAAA address %s is not IPv6", opt.SinkholeAAAA))
	}
	if opt.SinkholeAAAA.IsValid() {
		opt.SinkholeAAAA = opt.SinkholeAAAA.WithZone("")
	}
	if needSinkhole && opt.Action == ActionLocal && !opt.SinkholeA.IsValid() && !opt.SinkholeAAAA.IsValid() {
		errs = append(errs, errors.New("action local needs a sinkhole A or AAAA address (or use action nxdomain)"))
	}
	return opt, errors.Join(errs...)
}

// plainName reports whether s is a name as the registry normalises them:
// lower-case letters, digits, '-' and '_', labels of 1 to 63 bytes, at most
// 253 bytes in all. Such a name can be written into any format unquoted,
// and one bad name cannot make a consumer reject a whole file.
func plainName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// nameRule is one seized name after planning: a domain (with its
// subdomains) or a host (that name only), with the cases that seize it.
type nameRule struct {
	name   string
	domain bool   // the name and every subdomain; false: exactly the name
	cases  string // the cases that seize it, sorted, joined by ", "
}

// addrRule is one seized address or prefix after planning.
type addrRule struct {
	prefix netip.Prefix
	cases  string
}

// plan is a set reduced to what an enforcement format needs: every name and
// prefix once, with the cases that seize it; names already covered by a
// seized parent domain dropped (see [planOf]).
type plan struct {
	names   []nameRule
	addrs   []addrRule
	covered int // names dropped because a seized domain covers them
	skipped []string
}

// planOf reduces set for the DNS and firewall formats.
//
// A host or domain under a seized domain is dropped: the parent already
// covers it, and in Unbound a narrower transparent zone below a redirect
// zone would even let the subtree escape. A host with the same name as a
// domain is planned as the domain. Entries whose value is not a plain name
// or prefix (the registry normalises them, so this is only defence) are
// listed in skipped and left out.
//
// It does not rely on the set's order, so that a consumer's output never
// depends on how the registry sorts; sorting is cheap on sorted input.
func planOf(set *registry.ActiveSet) plan {
	var p plan
	type pending struct {
		nameRule
		prefix netip.Prefix
	}
	names := make([]pending, 0, len(set.Entries))
	var addrs []pending
	for i := range set.Entries {
		e := &set.Entries[i]
		switch e.Kind {
		case registry.KindDomain, registry.KindHost:
			v := e.Value
			if !plainName(v) {
				v = strings.ToLower(strings.TrimSuffix(v, "."))
				if !plainName(v) {
					p.skipped = append(p.skipped, fmt.Sprintf("%s %q", e.Kind, e.Value))
					continue
				}
			}
			names = append(names, pending{nameRule: nameRule{name: v, domain: e.Kind == registry.KindDomain, cases: e.Case}})
		case registry.KindIP, registry.KindCIDR:
			pfx, ok := entryPrefix(e)
			if !ok {
				p.skipped = append(p.skipped, fmt.Sprintf("%s %q", e.Kind, e.Value))
				continue
			}
			addrs = append(addrs, pending{nameRule: nameRule{cases: e.Case}, prefix: pfx})
		default:
			p.skipped = append(p.skipped, fmt.Sprintf("%s %q", e.Kind, e.Value))
		}
	}
	slices.SortFunc(names, func(a, b pending) int { return strings.Compare(a.name, b.name) })
	slices.SortFunc(addrs, func(a, b pending) int { return comparePrefix(a.prefix, b.prefix) })

	// Merge neighbours with the same name or prefix.
	merged := make([]nameRule, 0, len(names))
	for i := 0; i < len(names); {
		j, r, cases := i+1, names[i].nameRule, []string(nil)
		for ; j < len(names) && names[j].name == r.name; j++ {
			r.domain = r.domain || names[j].domain
			cases = append(cases, names[j].cases)
		}
		r.cases = joinCases(r.cases, cases)
		merged = append(merged, r)
		i = j
	}
	domains := make(map[string]struct{}, len(merged))
	for _, r := range merged {
		if r.domain {
			domains[r.name] = struct{}{}
		}
	}
	p.names = make([]nameRule, 0, len(merged))
	for _, r := range merged {
		if coveredByParent(r.name, domains) {
			p.covered++
			continue
		}
		p.names = append(p.names, r)
	}
	p.addrs = make([]addrRule, 0, len(addrs))
	for i := 0; i < len(addrs); {
		j, cases := i+1, []string(nil)
		for ; j < len(addrs) && addrs[j].prefix == addrs[i].prefix; j++ {
			cases = append(cases, addrs[j].cases)
		}
		p.addrs = append(p.addrs, addrRule{prefix: addrs[i].prefix, cases: joinCases(addrs[i].cases, cases)})
		i = j
	}
	return p
}

// joinCases returns the distinct cases of first and more, sorted, joined
// by ", ".
func joinCases(first string, more []string) string {
	if len(more) == 0 {
		return first
	}
	all := append(more, first)
	slices.Sort(all)
	return strings.Join(slices.Compact(all), ", ")
}

// coveredByParent reports whether a strict parent of name is a seized domain.
func coveredByParent(name string, domains map[string]struct{}) bool {
	for i := strings.IndexByte(name, '.'); i >= 0; {
		parent := name[i+1:]
		if _, ok := domains[parent]; ok {
			return true
		}
		j := strings.IndexByte(parent, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// entryPrefix returns the canonical prefix of an ip or cidr entry: its
// Prefix field if set, else parsed from Value.
func entryPrefix(e *registry.Entry) (netip.Prefix, bool) {
	p := e.Prefix
	if !p.IsValid() {
		var err error
		if strings.Contains(e.Value, "/") {
			p, err = netip.ParsePrefix(e.Value)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(e.Value)
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return netip.Prefix{}, false
		}
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p.Masked(), true
}

// comparePrefix orders IPv4 before IPv6, then by address, then shorter
// prefixes first (so a prefix comes before the prefixes it contains).
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// prefixString writes a single address without its /32 or /128.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// comment makes s safe for a one-line comment: control characters become
// spaces, so user text (case, court) can never end a comment early.
func comment(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 }

// timestamp formats t as UTC RFC 3339 with milliseconds (STIX wants them).
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// header writes the comment block every text format starts with, each line
// prefixed by mark.
func header(w *bufio.Writer, mark, format string, set *registry.ActiveSet, p *plan, notes ...string) {
	fmt.Fprintf(w, "%s takedown %s export: indicators in force at %s, registry serial %d\n", mark, format, set.At.UTC().Format(time.RFC3339), set.Serial)
	if p != nil {
		fmt.Fprintf(w, "%s %d names, %d addresses and prefixes", mark, len(p.names), len(p.addrs))
		if p.covered > 0 {
			fmt.Fprintf(w, "; %d names left out as covered by a seized parent domain", p.covered)
		}
		fmt.Fprintln(w)
		for _, s := range p.skipped {
			fmt.Fprintf(w, "%s skipped, not a normalised indicator: %s\n", mark, comment(s))
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "%s %s\n", mark, n)
	}
}

// buffered wraps w for the exporters and reports the first write error at
// flush.
func buffered(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }

// The null addresses that formats without NXDOMAIN answer instead.
var (
	nullA    = netip.IPv4Unspecified()
	nullAAAA = netip.IPv6Unspecified()
)

func itoa(n int) string { return strconv.Itoa(n) }
