package export

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/testtool"
)

// registryFixture is a range of two days (2026-03-01 and -02) with fixed
// names of two cases, a name both cases seize, names no registry can act
// on alone, an address, and the names a newGOZ generator yields for the
// two days under com, net and co.uk with a 36-hour margin, as
// registry.ActiveRange makes them (Day set, window widened by the margin).
func registryFixture(tb testing.TB) *registry.ActiveSet {
	tb.Helper()
	first := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	o := registry.Order{ID: 7, Case: "goz-2014", Court: "W.D. Pa. -- No. 14-685 <x>",
		Effective: time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC), Expires: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)}
	fixed := func(kind registry.Kind, value, caseID string, eff, exp time.Time) registry.Entry {
		court := o.Court
		if caseID != o.Case {
			court = "E.D. Va."
		}
		return registry.Entry{Kind: kind, Value: value, Case: caseID, Court: court, OrderID: 1, Effective: eff, Expires: exp}
	}
	late := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	entries := []registry.Entry{
		fixed(registry.KindDomain, "evil-c2.com", o.Case, o.Effective, o.Expires),        // effective before the range: needed from its first day
		fixed(registry.KindDomain, "evil-c2.com", "other-1", late, o.Expires),            // the same name, another case
		fixed(registry.KindHost, "late-c2.net", "other-1", late, o.Expires),              // effective inside the range
		fixed(registry.KindDomain, "c2.evil-parent.org", o.Case, o.Effective, o.Expires), // below a registered domain
		fixed(registry.KindHost, "x.blogspot.com", o.Case, o.Effective, o.Expires),       // under a private-section suffix
		fixed(registry.KindIP, "198.51.100.7", o.Case, o.Effective, o.Expires),
	}
	ind := registry.Indicator{Kind: registry.KindDGA, Value: "newgoz?count=3&key=01051935&tlds=com,net,co.uk&margin=36h"}
	names, _, err := registry.GeneratedNames(o, ind, first, first.AddDate(0, 0, 1), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if len(names) != 6 {
		tb.Fatalf("the generator yields %d names for two days, want 6", len(names))
	}
	for _, n := range names {
		entries = append(entries, registry.Entry{Kind: registry.KindHost, Value: n.Name, Family: n.Family, Case: o.Case, Court: o.Court,
			OrderID: o.ID, Effective: n.From, Expires: n.Until, Day: n.Day})
	}
	set := newSet(first, 2026030101, entries)
	return set
}

var registryOpts = RegistryOptions{NS: []string{"ns1.sinkhole.example.org.", "NS2.sinkhole.example.org"}}

func TestPlanRegistries(t *testing.T) {
	p, err := PlanRegistries(registryFixture(t), registryOpts)
	if err != nil {
		t.Fatal(err)
	}
	var suffixes []string
	for _, l := range p.Lists {
		suffixes = append(suffixes, l.Suffix)
		if !slices.IsSortedFunc(l.Names, func(a, b RegistryName) int {
			if c := a.From.Compare(b.From); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		}) {
			t.Errorf("%s: names not sorted by when they are needed, then name", l.Suffix)
		}
	}
	if !slices.Equal(suffixes, []string{"co.uk", "com", "net"}) {
		t.Fatalf("registries %v, want co.uk, com, net", suffixes)
	}
	if p.Names() != 8 || p.Addresses != 1 {
		t.Errorf("%d names and %d addresses, want 8 (6 generated, evil-c2.com once, late-c2.net) and 1", p.Names(), p.Addresses)
	}
	find := func(name string) *RegistryName {
		for i := range p.Lists {
			for j := range p.Lists[i].Names {
				if n := &p.Lists[i].Names[j]; n.Name == name {
					return n
				}
			}
		}
		t.Fatalf("%s is not in the plan", name)
		return nil
	}
	day1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	c2 := find("evil-c2.com")
	if !c2.From.Equal(day1) || c2.Source() != "order" || !slices.Equal(c2.Cases, []string{"goz-2014", "other-1"}) ||
		!slices.Equal(c2.Courts, []string{"W.D. Pa. -- No. 14-685 <x>", "E.D. Va."}) {
		t.Errorf("evil-c2.com: from %v, source %s, cases %v, courts %v; want the range's first day, order, both cases in step with their courts",
			c2.From, c2.Source(), c2.Cases, c2.Courts)
	}
	if l := find("late-c2.net"); !l.From.Equal(time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)) || l.Needed().Format(time.DateOnly) != "2026-03-02" {
		t.Errorf("late-c2.net: from %v, needed %v; want its order's start, 2026-03-02T06:00", l.From, l.Needed())
	}
	var generated int
	for _, l := range p.Lists {
		for _, n := range l.Names {
			if n.Source() != "dga" {
				continue
			}
			generated++
			// Day D's names are in force from D-36h, not before the order
			// (2026-02-27): day 1's from 2026-02-27T12:00, day 2's from
			// 2026-02-28T12:00.
			want := n.Day.Add(-36 * time.Hour)
			if !n.From.Equal(want) || !n.Until.Equal(n.Day.Add(60*time.Hour)) || n.Families[0] != "newgoz" {
				t.Errorf("%s (day %s): from %v until %v, want %v until %v", n.Name, n.Day.Format(time.DateOnly), n.From, n.Until, want, n.Day.Add(60*time.Hour))
			}
			if n.Needed().Format(time.DateOnly) != want.Format(time.DateOnly) {
				t.Errorf("%s: needed %s, want the day it comes into force %s", n.Name, n.Needed().Format(time.DateOnly), want.Format(time.DateOnly))
			}
		}
	}
	if generated != 6 {
		t.Errorf("%d generated names in the plan, want 6", generated)
	}
	var skipped []string
	for _, s := range p.Skipped {
		skipped = append(skipped, s.Name+": "+s.Reason)
	}
	want := []string{
		"c2.evil-parent.org: below the registered domain evil-parent.org: its registry could only seize all of evil-parent.org",
		"x.blogspot.com: below the registered domain blogspot.com: its registry could only seize all of blogspot.com",
	}
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(skipped, "\n"), strings.Join(want, "\n"))
	}
	sum := p.Summaries()
	if len(sum) != 3 || sum[1].Suffix != "com" || sum[1].Names != 5 || sum[1].First.Format(time.DateOnly) != "2026-02-27" || sum[1].Last.Format(time.DateOnly) != "2026-03-30" {
		t.Errorf("summaries %+v; want com with 5 names from 2026-02-27 to 2026-03-30", sum)
	}
}

func TestPlanRegistriesTLD(t *testing.T) {
	for _, tc := range []struct {
		tlds []string
		want []string
	}{
		{[]string{"COM."}, []string{"com"}},
		{[]string{"uk"}, []string{"co.uk"}}, // uk keeps the registries under it
		{[]string{"co.uk", "net"}, []string{"co.uk", "net"}},
		{[]string{"org"}, nil},
	} {
		t.Run(strings.Join(tc.tlds, ","), func(t *testing.T) {
			opt := registryOpts
			opt.TLDs = tc.tlds
			p, err := PlanRegistries(registryFixture(t), opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range p.Lists {
				got = append(got, l.Suffix)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("--tld %v: registries %v, want %v", tc.tlds, got, tc.want)
			}
		})
	}
}

func TestRegistryOptionsBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  RegistryOptions
		want string
	}{
		{"no ns", RegistryOptions{}, "needs the sinkhole's name servers"},
		{"ns not a host", RegistryOptions{NS: []string{"sinkhole"}}, `--ns "sinkhole" is not a host name`},
		{"ns with markup", RegistryOptions{NS: []string{"ns1.x.org</domain:hostObj>"}}, "is not a host name"},
		{"ns twice", RegistryOptions{NS: []string{"ns1.x.org", "NS1.x.org."}}, "given twice"},
		{"bad tld", RegistryOptions{NS: []string{"ns1.x.org"}, TLDs: []string{"c m"}}, `--tld "c m"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanRegistries(registryFixture(t), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// registryOutputs returns the CSV and every EPP file of the fixture.
func registryOutputs(tb testing.TB) (string, map[string][]byte, []string) {
	tb.Helper()
	p, err := PlanRegistries(registryFixture(tb), registryOpts)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteRegistryCSV(&buf, p, registryOpts); err != nil {
		tb.Fatal(err)
	}
	files := map[string][]byte{}
	var order []string
	err = WriteRegistryEPP(p, registryOpts, func(path string, data []byte) error {
		if _, dup := files[path]; dup {
			tb.Errorf("%s written twice", path)
		}
		files[path] = data
		order = append(order, path)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return buf.String(), files, order
}

// TestRegistryGolden: the CSV and one EPP command are byte for byte the
// golden files, and a second run gives the same bytes.
func TestRegistryGolden(t *testing.T) {
	csvOut, files, order := registryOutputs(t)
	csv2, files2, order2 := registryOutputs(t)
	if csv2 != csvOut || !slices.Equal(order, order2) {
		t.Fatal("two runs differ")
	}
	for _, name := range order {
		if !bytes.Equal(files[name], files2[name]) {
			t.Fatalf("%s differs between two runs", name)
		}
	}
	// Per registry: its commands, then its names.csv; registries sorted.
	var dirs []string
	xmls := 0
	for i, name := range order {
		dir, file, _ := strings.Cut(name, "/")
		if len(dirs) == 0 || dirs[len(dirs)-1] != dir {
			dirs = append(dirs, dir)
		}
		switch {
		case file == "names.csv":
			if i+1 < len(order) && strings.HasPrefix(order[i+1], dir+"/") {
				t.Errorf("%s is not the last file of %s", name, dir)
			}
		case strings.HasSuffix(file, ".xml") && len(file) > len("2026-03-01_x.xml") && file[10] == '_':
			xmls++
		default:
			t.Errorf("unexpected file %s", name)
		}
	}
	if !slices.Equal(dirs, []string{"co.uk", "com", "net"}) || xmls != 8 {
		t.Errorf("directories %v with %d commands, want co.uk, com, net with 8", dirs, xmls)
	}
	eppFile := "com/2026-03-01_evil-c2.com.xml"
	for _, g := range []struct{ file, got string }{
		{"registry.csv.golden", csvOut},
		{"registry-epp.xml.golden", string(files[eppFile])},
		{"registry-epp-com-names.csv.golden", string(files["com/names.csv"])},
	} {
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := os.WriteFile(path, []byte(g.got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if g.got != string(want) {
			t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", g.file, lineDiff(string(want), g.got))
		}
	}
	// The com rows of the CSV are the com registry's names.csv.
	var comRows []string
	for _, l := range strings.SplitAfter(csvOut, "\n") {
		if strings.HasPrefix(l, "com,") {
			comRows = append(comRows, l)
		}
	}
	if got := strings.Join(comRows, ""); !strings.HasSuffix(string(files["com/names.csv"]), got) || len(comRows) != 5 {
		t.Errorf("com/names.csv is not the CSV's %d com rows", len(comRows))
	}
}

// TestRegistryEPPSchema validates every EPP command of the fixture with
// xmllint against the RFC 5730/5731 schemas in testdata/epp, and checks
// that the validator rejects a command that breaks them.
func TestRegistryEPPSchema(t *testing.T) {
	xmllint := testtool.Need(t, "xmllint", "libxml2-utils")
	_, files, order := registryOutputs(t)
	dir := t.TempDir()
	var docs []string
	for _, name := range order {
		if !strings.HasSuffix(name, ".xml") {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, p)
	}
	if len(docs) != 8 {
		t.Fatalf("%d EPP commands, want 8", len(docs))
	}
	schema := filepath.Join("testdata", "epp", "all.xsd")
	validate := func(paths ...string) (string, error) {
		out, err := exec.CommandContext(t.Context(), xmllint, append([]string{"--noout", "--schema", schema}, paths...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := validate(docs...); err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	} else if strings.Count(out, " validates") != len(docs) {
		t.Fatalf("xmllint validated %d of %d documents:\n%s", strings.Count(out, " validates"), len(docs), out)
	}
	// The validator is not a rubber stamp: a <domain:chg> carrying name
	// servers (RFC 5731 allows only registrant and authInfo there) and a
	// clTRID of two characters are refused.
	good := string(files[order[0]])
	for name, bad := range map[string]string{
		"ns-in-chg":  strings.NewReplacer("<domain:add>", "<domain:chg>", "</domain:add>", "</domain:chg>").Replace(good),
		"short-trid": regexpReplaceTRID(good, "<clTRID>td</clTRID>"),
	} {
		p := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := validate(p); err == nil || !strings.Contains(out, "fails to validate") {
			t.Errorf("%s: xmllint accepted a command the schemas forbid:\n%s", name, out)
		}
	}
}

func regexpReplaceTRID(doc, with string) string {
	i, j := strings.Index(doc, "<clTRID>"), strings.Index(doc, "</clTRID>")
	return doc[:i] + with + doc[j+len("</clTRID>"):]
}

func TestXMLComment(t *testing.T) {
	for in, want := range map[string]string{
		"W.D. Pa. -- No. 14":  "W.D. Pa. - - No. 14",
		"a---b":               "a- - -b",
		"ends-":               "ends",
		"line\nbreak<b>&":     "line break(b)+",
		"--> injected <!-- x": "- -) injected (!- - x",
	} {
		if got := xmlComment(in); got != want || strings.Contains(got, "--") {
			t.Errorf("xmlComment(%q) = %q, want %q", in, got, want)
		}
	}
}
