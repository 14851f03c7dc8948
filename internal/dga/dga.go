// Package dga generates the rendezvous names of botnets whose domain
// generation algorithm (DGA) computes fresh names from the date: the names a
// court order seizes before they exist.
//
// A [Family] is one published algorithm; its parameters (seed or key, TLD
// set, names per day) make a [Generator], whose Domains(day) are the names
// that day. A [Spec] is a generator as an order names it: family, parameters
// and the margin around each day in which the names stay seized, with one
// canonical text form ("necurs?count=2048&seed=9&tlds=…&margin=24h").
//
// Each family is one file that registers itself; docs/dga.md cites the
// published description and the sample outputs its test reproduces. The
// package does not decide which days are in force (the registry does) and
// never touches the network.
package dga

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Day is 24 hours: the families here change their names once a UTC day.
const Day = 24 * time.Hour

// MaxCount bounds the names a generator yields per day (Conficker.C, the
// most prolific documented family, used 50,000).
const MaxCount = 100000

// MaxMargin bounds the margin around a day (a bot's clock off by more than
// a month is not worth seizing ahead for).
const MaxMargin = 31 * Day

// Generator computes one family's names with fixed parameters.
type Generator interface {
	// Domains returns the names of the UTC day that contains day, in the
	// family's order; a name may repeat.
	Domains(day time.Time) []string
}

// Param documents one parameter of a family.
type Param struct {
	Name    string
	Default string
	Doc     string
}

// Family is one published algorithm.
type Family struct {
	// Name is how orders name it: lower case.
	Name string
	// Doc is one line on the family and its source.
	Doc string
	// Margin is how far before and after its day a name is seized by
	// default: how far the family looks behind and ahead, and how wrong
	// bots' clocks are.
	Margin time.Duration
	// Params are the family's own parameters, besides the common count,
	// tlds and margin; every one has a default.
	Params []Param
	// Count and TLDs are the defaults of the common parameters: the
	// published names per day and TLD list.
	Count int
	TLDs  []string
	// New makes a generator from fully resolved parameters: every name of
	// Params, plus count (a positive number) and tlds (a validated list).
	New func(p map[string]string, count int, tlds []string) (Generator, error)
}

// families is the registry, filled by each family's file; read-only after
// package initialisation.
var families = map[string]*Family{}

// register adds f; a family file calls it from init.
func register(f *Family) {
	if _, dup := families[f.Name]; dup {
		panic("dga: family " + f.Name + " registered twice")
	}
	families[f.Name] = f
}

// Families returns the registered families, by name.
func Families() []*Family {
	out := make([]*Family, 0, len(families))
	for _, f := range families {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the family called name.
func Lookup(name string) (*Family, bool) {
	f, ok := families[strings.ToLower(name)]
	return f, ok
}

func familyNames() string {
	var names []string
	for _, f := range Families() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// Spec is a generator as an order names it.
type Spec struct {
	Family *Family
	// Params holds every parameter, resolved: the family's own, count and
	// tlds (comma-separated).
	Params map[string]string
	Count  int
	TLDs   []string
	// Margin is how long before its day starts and after it ends a name
	// stays seized.
	Margin time.Duration
	// MarginSet says whether the margin was given rather than the family's
	// default.
	MarginSet bool
	Gen       Generator
}

// Parse reads a spec in the form "FAMILY" or "FAMILY?name=value&…" (the
// query syntax of a URL; a leading "dga:" is accepted). Unknown families and
// parameters, and bad values, are errors that say which.
func Parse(s string) (*Spec, error) {
	s = strings.TrimSpace(s)
	if len(s) > 4096 {
		return nil, fmt.Errorf("generator %.40q…: longer than 4096 bytes", s)
	}
	s = strings.TrimPrefix(s, "dga:")
	name, query, _ := strings.Cut(s, "?")
	if name == "" {
		return nil, fmt.Errorf("generator %q: no family (want dga:FAMILY?param=value&…)", s)
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("generator %q: bad parameters: %v", s, err)
	}
	p := map[string]string{}
	for k, v := range vals {
		if len(v) != 1 {
			return nil, fmt.Errorf("generator %q: parameter %q given %d times", s, k, len(v))
		}
		p[k] = v[0]
	}
	return New(name, p)
}

// New resolves a family's parameters: unknown names are errors, missing
// ones take their defaults.
func New(family string, params map[string]string) (*Spec, error) {
	f, ok := Lookup(family)
	if !ok {
		return nil, fmt.Errorf("unknown DGA family %q (known: %s)", family, familyNames())
	}
	sp := &Spec{Family: f, Params: map[string]string{}, Count: f.Count, TLDs: f.TLDs, Margin: f.Margin}
	known := map[string]bool{"count": true, "tlds": true, "margin": true}
	for _, pr := range f.Params {
		known[pr.Name] = true
		sp.Params[pr.Name] = pr.Default
	}
	var unknown []string
	for k := range params {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s: unknown parameter %q (known: %s)", f.Name, unknown[0], strings.Join(slices.Sorted(mapKeys(known)), ", "))
	}
	for k, v := range params {
		switch k {
		case "count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxCount {
				return nil, fmt.Errorf("%s: count %q is not a number from 1 to %d", f.Name, v, MaxCount)
			}
			sp.Count = n
		case "tlds":
			tlds, err := parseTLDs(v)
			if err != nil {
				return nil, fmt.Errorf("%s: tlds: %v", f.Name, err)
			}
			sp.TLDs = tlds
		case "margin":
			d, err := ParseMargin(v)
			if err != nil {
				return nil, fmt.Errorf("%s: margin: %v", f.Name, err)
			}
			sp.Margin, sp.MarginSet = d, true
		default:
			sp.Params[k] = v
		}
	}
	sp.Params["count"] = strconv.Itoa(sp.Count)
	sp.Params["tlds"] = strings.Join(sp.TLDs, ",")
	gen, err := f.New(sp.Params, sp.Count, sp.TLDs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	sp.Gen = gen
	return sp, nil
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ParseMargin reads a margin: a Go duration ("36h", "90m") or whole days
// ("2d"), from 0 to [MaxMargin].
func ParseMargin(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > int(MaxMargin/Day) {
			return 0, fmt.Errorf("%q is not a number of days from 0 to %d", s, MaxMargin/Day)
		}
		d = time.Duration(days) * Day
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (36h, 2d)", s)
		}
	}
	if d < 0 || d > MaxMargin {
		return 0, fmt.Errorf("%q is outside 0 to %s", s, MaxMargin)
	}
	return d, nil
}

// FormatMargin writes d the way ParseMargin reads it: whole days as "Nd".
func FormatMargin(d time.Duration) string {
	switch {
	case d%Day == 0:
		return strconv.Itoa(int(d/Day)) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}

// parseTLDs reads a comma-separated TLD list: each a host name suffix of
// lower-case letters, digits and hyphens ("com", "co.uk", "example").
func parseTLDs(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("empty list")
	}
	parts := strings.Split(strings.ToLower(s), ",")
	if len(parts) > 256 {
		return nil, fmt.Errorf("more than 256 TLDs")
	}
	for i, t := range parts {
		t = strings.Trim(strings.TrimSpace(t), ".")
		parts[i] = t
		if t == "" || len(t) > 63 {
			return nil, fmt.Errorf("%q is not a TLD", t)
		}
		for _, l := range strings.Split(t, ".") {
			if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
				return nil, fmt.Errorf("%q is not a TLD", t)
			}
			for j := 0; j < len(l); j++ {
				if c := l[j]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
					return nil, fmt.Errorf("%q is not a TLD (letters, digits, hyphens)", t)
				}
			}
		}
	}
	return parts, nil
}

// String is the canonical form: the family, then every parameter sorted by
// name (defaults written out, so that a stored spec means the same whatever
// the defaults become), the margin last when it was set (see [Spec.Resolve]).
func (sp *Spec) String() string {
	var b strings.Builder
	b.WriteString(sp.Family.Name)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range sp.Params {
			if !yield(k) {
				return
			}
		}
	})
	sep := byte('?')
	for _, k := range keys {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(escape(sp.Params[k]))
	}
	if sp.MarginSet {
		b.WriteByte(sep)
		b.WriteString("margin=")
		b.WriteString(FormatMargin(sp.Margin))
	}
	return b.String()
}

// Resolve fixes the margin: def when the spec names none and def > 0, else
// the family's default. The canonical form then always carries it.
func (sp *Spec) Resolve(def time.Duration) {
	if !sp.MarginSet && def > 0 {
		sp.Margin = def
	}
	sp.MarginSet = true
}

// escape is url.QueryEscape that leaves commas alone (TLD lists stay
// readable).
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "%2C", ",")
}

// Domains returns the names of day.
func (sp *Spec) Domains(day time.Time) []string { return sp.Gen.Domains(day) }

// utcDay returns the year, month and day of t in UTC.
func utcDay(t time.Time) (int, int, int) {
	y, m, d := t.UTC().Date()
	return y, int(m), d
}
