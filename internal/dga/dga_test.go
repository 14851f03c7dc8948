package dga

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixture is a published sample: a family's parameters, a day and the
// first names of that day, from testdata/FAMILY.txt (see docs/dga.md).
type fixture struct {
	spec  string
	day   time.Time
	names []string
}

func loadFixture(t testing.TB, path string) fixture {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fx fixture
	var family, params string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if c, ok := strings.CutPrefix(l, "#"); ok {
			k, v, _ := strings.Cut(strings.TrimSpace(c), ":")
			switch k {
			case "family":
				family = strings.TrimSpace(v)
			case "params":
				params = strings.TrimSpace(v)
			case "day":
				if fx.day, err = time.Parse(time.DateOnly, strings.TrimSpace(v)); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
			}
			continue
		}
		fx.names = append(fx.names, strings.TrimSpace(l))
	}
	if family == "" || fx.day.IsZero() || len(fx.names) == 0 {
		t.Fatalf("%s: want # family:, # day: and names", path)
	}
	fx.spec = family
	if params != "" {
		fx.spec += "?" + params
	}
	return fx
}

// TestPublishedSamples: every family generates its published sample names
// exactly, in order, for the sample's day and for every other day of the
// family's period (the names change every 4 or 7 days, or daily).
func TestPublishedSamples(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.txt")
	if len(paths) < 3 {
		t.Fatalf("want a sample per family, found %v", paths)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		fx := loadFixture(t, p)
		t.Run(filepath.Base(p), func(t *testing.T) {
			sp, err := Parse(fx.spec)
			if err != nil {
				t.Fatal(err)
			}
			seen[sp.Family.Name] = true
			got := sp.Domains(fx.day.Add(13 * time.Hour))
			if len(got) != sp.Count {
				t.Fatalf("%d names, want %d", len(got), sp.Count)
			}
			for i, want := range fx.names {
				if got[i] != want {
					t.Fatalf("name %d of %s: got %q, want %q", i, fx.day.Format(time.DateOnly), got[i], want)
				}
			}
			next := sp.Domains(fx.day.Add(-Day))
			if next[0] == got[0] && sp.Family.Name == "newgoz" {
				t.Errorf("newgoz: the day before gives the same first name %q", got[0])
			}
		})
	}
	for _, f := range Families() {
		if !seen[f.Name] {
			t.Errorf("family %s has no published sample in testdata", f.Name)
		}
	}
}

// TestPeriods: names change at the published period boundaries and not
// within a period.
func TestPeriods(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	for _, c := range []struct {
		spec       string
		same, diff [2]string
	}{
		{"necurs", [2]string{"2015-08-28", "2015-08-31"}, [2]string{"2015-08-27", "2015-08-28"}},
		{"murofet", [2]string{"2015-09-01", "2015-09-06"}, [2]string{"2015-09-06", "2015-09-07"}},
		{"newgoz", [2]string{"2015-08-31T00:00:00Z", "2015-08-31T23:59:59Z"}, [2]string{"2015-08-30", "2015-08-31"}},
	} {
		t.Run(c.spec, func(t *testing.T) {
			sp, err := Parse(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			at := func(s string) time.Time {
				if v, err := time.Parse(time.RFC3339, s); err == nil {
					return v
				}
				return d(s)
			}
			if a, b := sp.Domains(at(c.same[0])), sp.Domains(at(c.same[1])); !slices.Equal(a, b) {
				t.Errorf("%s and %s differ", c.same[0], c.same[1])
			}
			if a, b := sp.Domains(at(c.diff[0])), sp.Domains(at(c.diff[1])); slices.Equal(a, b) {
				t.Errorf("%s and %s are the same", c.diff[0], c.diff[1])
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in, canon, err string
	}{
		{in: "necurs", canon: "necurs?count=2048&seed=9&tlds=tj,in,jp,tw,ac,cm,la,mn,so,sh,sc,nu,nf,mu,ms,mx,ki,im,cx,cc,tv,bz,me,eu,de,ru,co,su,pw,kz,sx,us,ug,ir,to,ga,com,net,org,biz,xxx,pro,bit"},
		{in: "dga:newgoz?tlds=example,test&count=10&margin=36h", canon: "newgoz?count=10&key=01051935&tlds=example,test&margin=36h"},
		{in: "NEWGOZ?margin=2d&tlds=Example", canon: "newgoz?count=1000&key=01051935&tlds=example&margin=2d"},
		{in: "murofet?count=5&tlds=co.uk", canon: "murofet?count=5&tlds=co.uk"},
		{in: "conficker", err: `unknown DGA family "conficker"`},
		{in: "necurs?sead=7", err: `necurs: unknown parameter "sead"`},
		{in: "necurs?seed=x", err: `seed "x" is not`},
		{in: "necurs?count=0", err: "count"},
		{in: "necurs?count=100001", err: "count"},
		{in: "newgoz?key=0105", err: "key"},
		{in: "newgoz?tlds=ex_ample", err: "tlds"},
		{in: "newgoz?tlds=", err: "tlds"},
		{in: "newgoz?margin=-1h", err: "margin"},
		{in: "newgoz?margin=40d", err: "margin"},
		{in: "newgoz?count=1&count=2", err: "given 2 times"},
		{in: "newgoz?%zz", err: "bad parameters"},
		{in: "?count=1", err: "no family"},
	} {
		t.Run(c.in, func(t *testing.T) {
			sp, err := Parse(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.String(); got != c.canon {
				t.Fatalf("canonical %q, want %q", got, c.canon)
			}
			again, err := Parse(sp.String())
			if err != nil || again.String() != sp.String() {
				t.Fatalf("canonical form does not parse to itself: %v %v", again, err)
			}
		})
	}
}

// TestCustomTLDs: a TLD list replaces the published one and every name ends
// in one of its entries; the labels stay those of the published algorithm.
func TestCustomTLDs(t *testing.T) {
	for _, f := range Families() {
		t.Run(f.Name, func(t *testing.T) {
			pub, _ := Parse(f.Name)
			sp, err := Parse(f.Name + "?tlds=example,test")
			if err != nil {
				t.Fatal(err)
			}
			day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			a, b := pub.Domains(day), sp.Domains(day)
			for i := range b {
				if !strings.HasSuffix(b[i], ".example") && !strings.HasSuffix(b[i], ".test") {
					t.Fatalf("%q is not under example or test", b[i])
				}
				la, _, _ := strings.Cut(a[i], ".")
				lb, _, _ := strings.Cut(b[i], ".")
				if la != lb {
					t.Fatalf("label %q, published %q", lb, la)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"necurs", "necurs?seed=7&count=3", "newgoz?tlds=example,test&margin=36h", "murofet?count=1&tlds=co.uk", "x?%", "necurs?margin=2d&margin=1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := Parse(s)
		if err != nil {
			return
		}
		canon := sp.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", canon, s, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form unstable: %q then %q", canon, again.String())
		}
		if sp.Count > 50 {
			return // generating is not what is fuzzed
		}
		for _, n := range sp.Domains(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
			if n == "" || strings.HasPrefix(n, ".") {
				t.Fatalf("bad name %q from %q", n, canon)
			}
		}
	})
}

// BenchmarkGenerate is the dga_generate benchmark: names per second per
// family (bench/dga/run.sh reads the names/s metric).
func BenchmarkGenerate(b *testing.B) {
	for _, f := range Families() {
		b.Run(f.Name, func(b *testing.B) {
			sp, err := Parse(f.Name)
			if err != nil {
				b.Fatal(err)
			}
			day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			n := 0
			for b.Loop() {
				n += len(sp.Domains(day))
				day = day.Add(Day)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "names/s")
		})
	}
}
