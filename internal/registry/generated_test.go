package registry

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/dga"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func dgaOrder() (Order, Indicator) {
	o := Order{ID: 1, Case: "c-dga", Court: "court", Effective: day("2026-03-10").Add(6 * time.Hour), Expires: day("2026-03-20")}
	return o, Indicator{Kind: KindDGA, Value: "newgoz?count=20&key=01051935&tlds=example&margin=6h"}
}

func namesOf(t testing.TB, ind Indicator, d time.Time) []string {
	t.Helper()
	sp, err := DGASpec(ind)
	if err != nil {
		t.Fatal(err)
	}
	return sp.Domains(d)
}

// TestInForce: a name is seized from its day minus the margin to its day
// plus one day plus the margin, never before the order starts or after it
// ends, and a day outside the order's window yields nothing.
func TestInForce(t *testing.T) {
	o, ind := dgaOrder()
	d12 := namesOf(t, ind, day("2026-03-12"))
	d11 := namesOf(t, ind, day("2026-03-11"))
	d13 := namesOf(t, ind, day("2026-03-13"))
	d09 := namesOf(t, ind, day("2026-03-09"))
	d20 := namesOf(t, ind, day("2026-03-20"))
	d10 := namesOf(t, ind, day("2026-03-10"))
	h := time.Hour
	for _, c := range []struct {
		name      string
		at        time.Time
		want, not [][]string
	}{
		{"noon: that day only", day("2026-03-12").Add(12 * h), [][]string{d12}, [][]string{d11, d13}},
		{"early: the day before within the margin", day("2026-03-12").Add(5 * h), [][]string{d12, d11}, [][]string{d13}},
		{"late: the next day within the margin", day("2026-03-12").Add(19 * h), [][]string{d12, d13}, [][]string{d11}},
		{"the margin's last instant is out", day("2026-03-12").Add(6 * h), [][]string{d12}, [][]string{d11}},
		{"before the order: nothing", day("2026-03-10").Add(5 * h), nil, [][]string{d10, d09}},
		{"the order's first day from its start, not the day before", day("2026-03-10").Add(6 * h), [][]string{d10}, [][]string{d09}},
		{"the last day's margin stops at expiry", day("2026-03-19").Add(23 * h), nil, [][]string{d20}},
		{"after expiry: nothing", day("2026-03-20").Add(h), nil, [][]string{d20}},
	} {
		t.Run(c.name, func(t *testing.T) {
			es, next, err := InForce(o, ind, c.at)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Entry{}
			for _, e := range es {
				if e.Kind != KindHost || e.Family != "newgoz" || e.Case != "c-dga" {
					t.Fatalf("entry %+v", e)
				}
				if c.at.Before(e.Effective) || !c.at.Before(e.Expires) {
					t.Fatalf("%s is listed at %s but in force only [%s, %s)", e.Value, c.at, e.Effective, e.Expires)
				}
				got[e.Value] = e
			}
			for _, set := range c.want {
				for _, n := range set {
					if _, ok := got[n]; !ok {
						t.Errorf("%s not in force at %s", n, c.at)
					}
				}
			}
			for _, set := range c.not {
				for _, n := range set {
					if _, ok := got[n]; ok && !slices.Contains(slices.Concat(c.want...), n) {
						t.Errorf("%s in force at %s", n, c.at)
					}
				}
			}
			if c.at.Before(o.Expires) && (next.IsZero() || !next.After(c.at)) {
				t.Errorf("next change %s, want one after %s", next, c.at)
			}
		})
	}
}

// TestGeneratedNamesRange: a range of days gives each day's names once,
// with its day, clipped to the order's days.
func TestGeneratedNamesRange(t *testing.T) {
	o, ind := dgaOrder()
	names, skipped, err := GeneratedNames(o, ind, day("2026-03-01"), day("2026-03-11"), nil)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	if len(names) != 40 {
		t.Fatalf("%d names, want 2 days × 20", len(names))
	}
	if !names[0].Day.Equal(day("2026-03-10")) || !names[39].Day.Equal(day("2026-03-11")) {
		t.Fatalf("days %s … %s", names[0].Day, names[39].Day)
	}
	if names[0].From != o.Effective || names[39].Until != day("2026-03-12").Add(6*time.Hour) {
		t.Fatalf("windows %s %s", names[0].From, names[39].Until)
	}
	all, _, _ := GeneratedNames(o, ind, o.Effective, o.Expires, nil)
	if len(all) != 10*20 {
		t.Fatalf("order's life: %d names, want 200", len(all))
	}
}

// TestGeneratedGuard: a generated name that collides with the never-seize
// list or a public suffix is skipped, reported and never in force.
func TestGeneratedGuard(t *testing.T) {
	o, ind := dgaOrder()
	victim := namesOf(t, ind, day("2026-03-12"))[3]
	g, err := NewGuard([]string{victim})
	if err != nil {
		t.Fatal(err)
	}
	g.AllowReserved = true
	yields, skipped, err := CheckGenerated(o, &ind, g)
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 || yields != 199 || len(ind.Skipped) != 1 || ind.Skipped[0].Name != victim || !strings.Contains(ind.Skipped[0].Reason, "never-seize") {
		t.Fatalf("yields %d, skipped %d: %+v", yields, skipped, ind.Skipped)
	}
	es, _, _ := InForce(o, ind, day("2026-03-12").Add(12*time.Hour))
	for _, e := range es {
		if e.Value == victim {
			t.Fatalf("skipped name %s in force", victim)
		}
	}
	if len(es) != 19 {
		t.Fatalf("%d in force, want 19", len(es))
	}
}

func TestParseDGALines(t *testing.T) {
	in := "evil.example.com\n" +
		"dga:newgoz?tlds=com\n" +
		"dga:conficker?x=1\n" +
		"dga:necurs?sead=7\n" +
		"dga:newgoz?tlds=example\n"
	g := testGuard(t)
	_, err := ParseFile("order.txt", strings.NewReader(in), g)
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("error %v, want Problems", err)
	}
	want := []string{`order.txt:3: "dga:conficker?x=1": unknown DGA family "conficker"`,
		`order.txt:4: "dga:necurs?sead=7": necurs: unknown parameter "sead"`,
		`order.txt:5: dga:newgoz generates names under the special-use name .example`}
	if len(ps) != len(want) {
		t.Fatalf("problems:\n%v", ps)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d: %q, want prefix %q", i, ps[i].String(), w)
		}
	}

	g.DGAMargin = 36 * time.Hour
	res, err := ParseFile("order.csv", strings.NewReader("indicator,kind,family\nnewgoz?tlds=com,dga,\n\"necurs?seed=7&margin=1d\",dga,necurs-b\n"), g)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{res.Indicators[0].Value, res.Indicators[1].Value, res.Indicators[1].Family}
	wantCSV := []string{"newgoz?count=1000&key=01051935&tlds=com&margin=36h", "necurs?count=2048&seed=7&tlds=" + strings.Join(mustFamily("necurs").TLDs, ",") + "&margin=1d", "necurs-b"}
	if !slices.Equal(got, wantCSV) {
		t.Fatalf("CSV: %q, want %q", got, wantCSV)
	}

	stix := `{"type":"bundle","id":"bundle--1","objects":[
{"type":"indicator","id":"indicator--1","pattern_type":"x-takedown-dga","pattern":"murofet?count=10","valid_from":"2026-03-01T00:00:00Z"}]}`
	res, err = ParseFile("order.json", strings.NewReader(stix), testGuard(t))
	if err != nil {
		t.Fatal(err)
	}
	if i := res.Indicators[0]; i.Kind != KindDGA || i.Value != "murofet?count=10&tlds=ru,biz,info,org,net,com&margin=7d" || !i.From.Equal(day("2026-03-01")) {
		t.Fatalf("STIX: %+v", i)
	}
}

func mustFamily(name string) *dga.Family {
	f, ok := dga.Lookup(name)
	if !ok {
		panic(name)
	}
	return f
}
