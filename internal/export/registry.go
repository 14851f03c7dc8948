package export

import (
	"cmp"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

// RegistryFormat is the per-registry export's name on the command line.
// It is not an [Exporter]: it needs a range of days and the sinkhole's name
// servers, and it writes a list per registry (CSV) or one EPP command per
// name (a directory), see [PlanRegistries].
const RegistryFormat = "registry"

// The forms of the registry export.
const (
	RegistryCSV = "csv" // one CSV of every registry's names
	RegistryEPP = "epp" // one RFC 5731 <domain:update> document per name
)

// RegistryOptions are what the registry export needs besides the set.
type RegistryOptions struct {
	// TLDs keeps the registries whose suffix is one of these or under one
	// (uk keeps uk and co.uk); empty: every registry.
	TLDs []string
	// NS are the sinkhole's name servers every seized name is pointed at;
	// at least one.
	NS []string
}

func (opt RegistryOptions) normalize() (RegistryOptions, error) {
	var errs []error
	out := RegistryOptions{}
	for _, t := range opt.TLDs {
		n := strings.ToLower(strings.Trim(strings.TrimSpace(t), "."))
		if !plainName(n) {
			errs = append(errs, fmt.Errorf("--tld %q is not a domain suffix", t))
			continue
		}
		out.TLDs = append(out.TLDs, n)
	}
	for _, s := range opt.NS {
		n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
		if !plainName(n) || !strings.Contains(n, ".") {
			errs = append(errs, fmt.Errorf("--ns %q is not a host name", s))
			continue
		}
		if slices.Contains(out.NS, n) {
			errs = append(errs, fmt.Errorf("--ns %s is given twice", n))
			continue
		}
		out.NS = append(out.NS, n)
	}
	if len(opt.NS) == 0 {
		errs = append(errs, errors.New("the registry export needs the sinkhole's name servers (--ns, or dns.ns of the config)"))
	}
	slices.Sort(out.TLDs)
	out.TLDs = slices.Compact(out.TLDs)
	return out, errors.Join(errs...)
}

// RegistryName is one name a registry must point at the sinkhole.
type RegistryName struct {
	// Name is the registered domain, directly under the registry's suffix.
	Name string
	// From is when the name must point at the sinkhole: for a generated
	// name the first instant it is in force (its day less the margin), for
	// a fixed one the later of the order's effective time and the range's
	// first day. Until is when the orders stop needing it.
	From, Until time.Time
	// Day is, for a generated name, the first day of the range it is
	// generated for; zero for a fixed name (also one that a generator
	// yields too).
	Day time.Time
	// Families, Cases and Courts are those of the orders that seize it,
	// distinct and sorted (Courts in the order of Cases).
	Families, Cases, Courts []string
}

// Needed is the UTC day on which the name becomes needed.
func (n *RegistryName) Needed() time.Time { return n.From.UTC().Truncate(24 * time.Hour) }

// Source is "dga" for a name only generators yield, else "order".
func (n *RegistryName) Source() string {
	if n.Day.IsZero() {
		return "order"
	}
	return "dga"
}

// RegistryList is one registry's names, by From, then name.
type RegistryList struct {
	// Suffix is the registry's suffix by the public suffix list (com,
	// co.uk, …); see [registry.RegistrySuffix].
	Suffix string
	Names  []RegistryName
}

// First and Last are the first day a name of l is needed and the last day
// one is in force.
func (l *RegistryList) First() time.Time {
	if len(l.Names) == 0 {
		return time.Time{}
	}
	return l.Names[0].Needed()
}

// Last is the last UTC day on which a name of l is in force.
func (l *RegistryList) Last() time.Time {
	var last time.Time
	for i := range l.Names {
		if u := l.Names[i].Until; u.After(last) {
			last = u
		}
	}
	if last.IsZero() {
		return last
	}
	return last.Add(-time.Nanosecond).UTC().Truncate(24 * time.Hour)
}

// RegistrySkip is a seized name no registry can act on alone.
type RegistrySkip struct {
	Name, Reason string
}

// RegistryPlan is what every registry receives: the set's names grouped by
// registry suffix (sorted), and the names left out with why.
type RegistryPlan struct {
	// At is the range's first day.
	At      time.Time
	Lists   []RegistryList
	Skipped []RegistrySkip
	// Addresses counts the ip and cidr entries, which no domain registry
	// acts on (the firewall exports carry them).
	Addresses int
}

// Names is the number of names over every registry.
func (p *RegistryPlan) Names() int {
	n := 0
	for i := range p.Lists {
		n += len(p.Lists[i].Names)
	}
	return n
}

// PlanRegistries groups the names of set (usually a range of days,
// [registry.ActiveRange]) by the registry that must act on them.
//
// A registry acts on registered domains: a name directly under its suffix.
// A seized name deeper than that (c2.evil.com, or a name under a
// private-section suffix such as x.blogspot.com) cannot be seized at the
// registry without taking its parent, so it is listed in Skipped and left
// to the resolver exports; a name seized by several orders is one entry,
// needed from the earliest of their starts.
func PlanRegistries(set *registry.ActiveSet, opt RegistryOptions) (*RegistryPlan, error) {
	opt, err := opt.normalize()
	if err != nil {
		return nil, err
	}
	first := set.At.UTC().Truncate(24 * time.Hour)
	p := &RegistryPlan{At: first}
	type pending struct {
		suffix string
		RegistryName
	}
	byName := make(map[string]int, len(set.Entries))
	var all []pending
	skipped := map[string]string{}
	for i := range set.Entries {
		e := &set.Entries[i]
		switch e.Kind {
		case registry.KindIP, registry.KindCIDR:
			p.Addresses++
			continue
		case registry.KindDomain, registry.KindHost:
		default:
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(e.Value, "."))
		if !plainName(name) {
			skipped[e.Value] = "not a normalised name"
			continue
		}
		suffix, reg, ok := registry.RegistrySuffix(name)
		if !ok {
			skipped[name] = "a public suffix, not a registered domain"
			continue
		}
		if !keepSuffix(suffix, opt.TLDs) {
			continue
		}
		if reg != name {
			skipped[name] = "below the registered domain " + reg + ": its registry could only seize all of " + reg
			continue
		}
		from := e.Effective.UTC()
		if e.Day.IsZero() && from.Before(first) {
			from = first // a fixed name: needed from the range's first day
		}
		if j, dup := byName[name]; dup {
			n := &all[j].RegistryName
			n.From, n.Until = minT(n.From, from), maxT(n.Until, e.Expires.UTC())
			if e.Day.IsZero() || n.Day.IsZero() {
				n.Day = time.Time{}
			} else {
				n.Day = minT(n.Day, e.Day)
			}
			n.Families = appendFamily(n.Families, e.Family)
			n.Cases, n.Courts = appendCase(n.Cases, n.Courts, e.Case, e.Court)
			continue
		}
		byName[name] = len(all)
		all = append(all, pending{suffix, RegistryName{Name: name, From: from, Until: e.Expires.UTC(), Day: e.Day.UTC(),
			Families: appendFamily(nil, e.Family), Cases: []string{e.Case}, Courts: []string{e.Court}}})
	}
	slices.SortFunc(all, func(a, b pending) int {
		return cmp.Or(strings.Compare(a.suffix, b.suffix), a.From.Compare(b.From), strings.Compare(a.Name, b.Name))
	})
	for i := 0; i < len(all); {
		j := i
		l := RegistryList{Suffix: all[i].suffix}
		for ; j < len(all) && all[j].suffix == l.Suffix; j++ {
			l.Names = append(l.Names, all[j].RegistryName)
		}
		p.Lists = append(p.Lists, l)
		i = j
	}
	for n, why := range skipped {
		p.Skipped = append(p.Skipped, RegistrySkip{Name: n, Reason: why})
	}
	slices.SortFunc(p.Skipped, func(a, b RegistrySkip) int { return strings.Compare(a.Name, b.Name) })
	return p, nil
}

// keepSuffix reports whether the registry of suffix is selected by tlds.
func keepSuffix(suffix string, tlds []string) bool {
	if len(tlds) == 0 {
		return true
	}
	for _, t := range tlds {
		if suffix == t || strings.HasSuffix(suffix, "."+t) {
			return true
		}
	}
	return false
}

func appendFamily(fams []string, f string) []string {
	if f == "" || slices.Contains(fams, f) {
		return fams
	}
	fams = append(fams, f)
	slices.Sort(fams)
	return fams
}

// appendCase adds a case and its court, keeping cases sorted and courts in
// step.
func appendCase(cases, courts []string, c, court string) ([]string, []string) {
	i, found := slices.BinarySearch(cases, c)
	if found {
		return cases, courts
	}
	return slices.Insert(cases, i, c), slices.Insert(courts, i, court)
}

func minT(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxT(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RegistryCSVHeader is the header of the registry export's CSV.
var RegistryCSVHeader = []string{"registry", "name", "needed", "from", "until", "source", "day", "family", "case", "court", "ns"}

// WriteRegistryCSV writes p as one CSV, registry by registry, each name
// with the day it becomes needed (needed, a UTC date; from and until RFC
// 3339 UTC), whether it is generated (source dga, with the day it is
// generated for) or named by an order, the families, cases and courts
// ("; "-separated) and the name servers to point it at (space-separated).
// The bytes depend only on p and opt.
func WriteRegistryCSV(w io.Writer, p *RegistryPlan, opt RegistryOptions) error {
	opt, err := opt.normalize()
	if err != nil {
		return err
	}
	bw := buffered(w)
	cw := csv.NewWriter(bw)
	cw.Write(RegistryCSVHeader)
	ns := strings.Join(opt.NS, " ")
	for i := range p.Lists {
		writeRegistryRows(cw, &p.Lists[i], ns)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

func writeRegistryRows(cw *csv.Writer, l *RegistryList, ns string) {
	row := make([]string, len(RegistryCSVHeader))
	for i := range l.Names {
		n := &l.Names[i]
		day := ""
		if !n.Day.IsZero() {
			day = n.Day.Format(time.DateOnly)
		}
		row[0], row[1], row[2], row[3], row[4] = l.Suffix, n.Name, n.Needed().Format(time.DateOnly), rfc3339(n.From), rfc3339(n.Until)
		row[5], row[6], row[7] = n.Source(), day, strings.Join(n.Families, "; ")
		row[8], row[9], row[10] = strings.Join(n.Cases, "; "), strings.Join(n.Courts, "; "), ns
		cw.Write(row)
	}
}

// EPP namespaces (RFC 5730, RFC 5731).
const (
	eppNS    = "urn:ietf:params:xml:ns:epp-1.0"
	domainNS = "urn:ietf:params:xml:ns:domain-1.0"
)

// WriteRegistryEPP writes the EPP form of p through write, one file at a
// time in a deterministic order (path slash-separated, relative to the
// output directory): for each registry a directory named by its suffix with
//
//   - one XML document per name, NEEDED_NAME.xml (NEEDED the UTC day it is
//     needed, so that a listing is in the order to act): an RFC 5730 <epp>
//     <command> holding an RFC 5731 <domain:update> whose <domain:add>
//     adds the sinkhole's name servers as <domain:hostObj>s, with a clTRID
//     made from the name and its window; a comment before <epp> names the
//     window, the generator's day and the cases with their courts;
//   - names.csv, that registry's rows of the CSV form.
//
// One document per file, because EPP sends one command per frame (RFC
// 5734) and a registry's tooling sends or loads a command file as it is.
// Removing the name servers the domain has now (<domain:rem>) is left to
// the registry, which knows them; RFC 5731 has no "replace".
func WriteRegistryEPP(p *RegistryPlan, opt RegistryOptions, write func(path string, data []byte) error) error {
	opt, err := opt.normalize()
	if err != nil {
		return err
	}
	ns := strings.Join(opt.NS, " ")
	var b strings.Builder
	for i := range p.Lists {
		l := &p.Lists[i]
		for j := range l.Names {
			n := &l.Names[j]
			b.Reset()
			writeEPPUpdate(&b, n, opt.NS)
			if err := write(l.Suffix+"/"+n.Needed().Format(time.DateOnly)+"_"+n.Name+".xml", []byte(b.String())); err != nil {
				return err
			}
		}
		b.Reset()
		cw := csv.NewWriter(&b)
		cw.Write(RegistryCSVHeader)
		writeRegistryRows(cw, l, ns)
		cw.Flush()
		if err := write(l.Suffix+"/names.csv", []byte(b.String())); err != nil {
			return err
		}
	}
	return nil
}

// writeEPPUpdate writes one <domain:update> command. Names and name servers
// are plain names (lower-case letters, digits, '-', '_', '.'), so only the
// comment needs care.
func writeEPPUpdate(b *strings.Builder, n *RegistryName, ns []string) {
	b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="no"?>` + "\n")
	b.WriteString("<!-- takedown registry export: point ")
	b.WriteString(n.Name)
	b.WriteString(" at the sinkhole's name servers from ")
	b.WriteString(rfc3339(n.From))
	b.WriteString(" until ")
	b.WriteString(rfc3339(n.Until))
	if !n.Day.IsZero() {
		b.WriteString("; generated by ")
		b.WriteString(xmlComment(strings.Join(n.Families, ", ")))
		b.WriteString(" for ")
		b.WriteString(n.Day.Format(time.DateOnly))
	}
	for i := range n.Cases {
		b.WriteString("; case ")
		b.WriteString(xmlComment(n.Cases[i]))
		if n.Courts[i] != "" {
			b.WriteString(", ")
			b.WriteString(xmlComment(n.Courts[i]))
		}
	}
	b.WriteString(" -->\n")
	b.WriteString(`<epp xmlns="` + eppNS + `">` + "\n")
	b.WriteString("  <command>\n    <update>\n")
	b.WriteString(`      <domain:update xmlns:domain="` + domainNS + `">` + "\n")
	b.WriteString("        <domain:name>" + n.Name + "</domain:name>\n")
	b.WriteString("        <domain:add>\n          <domain:ns>\n")
	for _, h := range ns {
		b.WriteString("            <domain:hostObj>" + h + "</domain:hostObj>\n")
	}
	b.WriteString("          </domain:ns>\n        </domain:add>\n")
	b.WriteString("      </domain:update>\n    </update>\n")
	b.WriteString("    <clTRID>" + clTRID(n) + "</clTRID>\n")
	b.WriteString("  </command>\n</epp>\n")
}

// clTRID is the command's client transaction ID (3 to 64 characters, RFC
// 5730): "takedown-" and 16 hex digits of a hash of the name, its window
// and its cases, the same for the same command.
func clTRID(n *RegistryName) string {
	h := sha256.New()
	io.WriteString(h, n.Name+"\x00"+rfc3339(n.From)+"\x00"+rfc3339(n.Until)+"\x00"+strings.Join(n.Cases, "\x00"))
	return "takedown-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// xmlComment makes s safe inside an XML comment: no "--" (which would be a
// syntax error), no '>' after '-', no control characters, no "<" or "&"
// surprises for readers.
func xmlComment(s string) string {
	s = comment(s)
	s = strings.NewReplacer("<", "(", ">", ")", "&", "+").Replace(s)
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "- -")
	}
	return strings.TrimSuffix(s, "-")
}

// RegistrySummary is one registry's line of the court status report.
type RegistrySummary struct {
	Suffix      string
	Names       int
	First, Last time.Time // UTC days
}

// Summaries returns one line per registry of p.
func (p *RegistryPlan) Summaries() []RegistrySummary {
	out := make([]RegistrySummary, 0, len(p.Lists))
	for i := range p.Lists {
		l := &p.Lists[i]
		out = append(out, RegistrySummary{Suffix: l.Suffix, Names: len(l.Names), First: l.First(), Last: l.Last()})
	}
	return out
}
