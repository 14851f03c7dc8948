package stats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/stats/statsfixture"
	"github.com/takedown/takedown/internal/store"
)

var day0 = time.Date(2011, 9, 6, 0, 0, 0, 0, time.UTC)

func at(d int, h int) time.Time { return day0.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }

func ev(id string, t time.Time, proto, ip, cc, family string) event.Event {
	return event.Event{ID: id, Timestamp: t, Protocol: proto, SrcIP: netip.MustParseAddr(ip), SrcGeo: cc, SrcASN: 64500, Family: family, Case: "c1"}
}

// handEvents is a small population whose answers are worked out by hand in
// the table below.
func handEvents() []event.Event {
	return []event.Event{
		// a: direct on day 0 at 01h and 23h (spans the middle of the day).
		ev("a1", at(0, 1), "http", "198.51.100.1", "US", "rustock"),
		ev("a2", at(0, 23), "http", "198.51.100.1", "US", "rustock"),
		// b: DNS at 02h, direct at 20h on day 0 (mixed aggregate).
		ev("b1", at(0, 2), "dns", "198.51.100.2", "US", "rustock"),
		ev("b2", at(0, 20), "tcp", "198.51.100.2", "US", "rustock"),
		// r: a resolver, DNS only, on days 0 and 1.
		ev("r1", at(0, 5), "dns", "192.0.2.53", "US", "rustock"),
		ev("r2", at(1, 5), "dns", "192.0.2.53", "US", "rustock"),
		// c: German host on day 1, seen twice, IPv4-mapped once.
		ev("c1", at(1, 10), "https", "203.0.113.7", "DE", "kelihos"),
		ev("c2", at(1, 11), "udp", "::ffff:203.0.113.7", "DE", "kelihos"),
		// v6: two addresses of one /64 and one of another, day 1.
		ev("v1", at(1, 12), "http", "2001:db8:1:2::10", "FR", "kelihos"),
		ev("v2", at(1, 13), "http", "2001:db8:1:2::99", "FR", "kelihos"),
		ev("v3", at(1, 14), "http", "2001:db8:1:3::1", "FR", "kelihos"),
		// a again on day 2, with a second family.
		ev("a3", at(2, 6), "http", "198.51.100.1", "US", "kelihos"),
	}
}

func TestStatsHand(t *testing.T) {
	src := newMemSource(handEvents())
	tests := []struct {
		name      string
		q         stats.Query
		unique    uint64
		resolvers uint64
		rows      map[string]uint64
	}{
		{"whole days", stats.Query{From: at(0, 0), To: at(3, 0), By: stats.ByCountry}, 5, 1, map[string]uint64{"US": 2, "DE": 1, "FR": 2}},
		{"day 0", stats.Query{From: at(0, 0), To: at(1, 0), By: stats.ByFamily}, 2, 1, map[string]uint64{"rustock": 2}},
		{"family counts an address in each family", stats.Query{From: at(0, 0), To: at(3, 0), By: stats.ByFamily}, 5, 1, map[string]uint64{"rustock": 2, "kelihos": 4}},
		// 03h–19h of day 0: a spans it without an event inside; b only
		// queried DNS before; r queried at 05h.
		{"inside day 0, nothing direct", stats.Query{From: at(0, 3), To: at(0, 19)}, 0, 1, nil},
		// 02h–21h: b's direct event at 20h is inside; its DNS at 02h
		// does not make it a resolver.
		{"b inside", stats.Query{From: at(0, 2), To: at(0, 21)}, 1, 1, nil},
		{"only b's dns", stats.Query{From: at(0, 2), To: at(0, 3)}, 0, 1, nil},
		{"a's last event", stats.Query{From: at(0, 22), To: at(1, 0)}, 1, 0, nil},
		{"across midnight", stats.Query{From: at(0, 22), To: at(1, 11), By: stats.ByCountry}, 2, 1, map[string]uint64{"US": 1, "DE": 1}},
		{"ipv6 by /64", stats.Query{From: at(1, 12), To: at(1, 14)}, 1, 0, nil},
		{"asn key", stats.Query{From: at(1, 0), To: at(2, 0), By: stats.ByASN}, 3, 1, map[string]uint64{"64500": 3}},
		{"empty later window", stats.Query{From: at(5, 0), To: at(6, 0)}, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, cached := range []bool{false, true} {
				o := stats.Options{Source: src, Raw: src, Now: func() time.Time { return at(10, 0) }}
				if cached {
					o.Cache = newMemCache(src)
				}
				e := stats.New(o)
				for range 2 { // the second run reads the cache
					r, err := e.Stats(t.Context(), tc.q)
					if err != nil {
						t.Fatal(err)
					}
					if r.UniqueIPs != tc.unique || r.ResolverIPsExcluded != tc.resolvers || r.Undecided != 0 {
						t.Errorf("cached=%v: unique %d resolvers %d undecided %d, want %d %d 0", cached, r.UniqueIPs, r.ResolverIPsExcluded, r.Undecided, tc.unique, tc.resolvers)
					}
					got := map[string]uint64{}
					for _, row := range r.Rows {
						if row.UniqueIPs > 0 {
							got[row.Key] = row.UniqueIPs
						}
					}
					if tc.rows != nil && fmt.Sprint(got) != fmt.Sprint(tc.rows) {
						t.Errorf("cached=%v: rows %v, want %v", cached, got, tc.rows)
					}
				}
			}
		})
	}
}

func TestStatsUndecidedWithoutRawEvents(t *testing.T) {
	src := newMemSource(handEvents())
	src.noRaw = true
	r, err := stats.New(stats.Options{Source: src, Raw: src}).Stats(t.Context(), stats.Query{From: at(0, 3), To: at(0, 19)})
	if err != nil {
		t.Fatal(err)
	}
	// a and b span the window and cannot be decided without raw events:
	// they are counted, and the result says so.
	if r.Undecided != 2 || r.UniqueIPs != 2 {
		t.Errorf("undecided %d unique %d, want 2 2", r.Undecided, r.UniqueIPs)
	}
}

func TestStatsBaselineAndTop(t *testing.T) {
	var evs []event.Event
	n := 0
	add := func(d int, cc string, count int) {
		for i := range count {
			n++
			evs = append(evs, ev(fmt.Sprint("e", n), at(d, 1), "http", fmt.Sprintf("10.%d.0.%d", len(cc)+int(cc[0]), i+1), cc, "rustock"))
		}
	}
	// Baseline day 0: US 100, DE 50, FR 10, BR 4. Day 7: US 40, DE 50, FR 0, BR 2, IN 3.
	add(0, "US", 100)
	add(0, "DE", 50)
	add(0, "FR", 10)
	add(0, "BR", 4)
	add(7, "US", 40)
	add(7, "DE", 50)
	add(7, "BR", 2)
	add(7, "IN", 3)
	src := newMemSource(evs)
	r, err := stats.New(stats.Options{Source: src, Raw: src}).Stats(t.Context(), stats.Query{
		From: at(7, 0), To: at(8, 0), By: stats.ByCountry, Top: 2, BaselineFrom: at(0, 0), BaselineTo: at(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if r.UniqueIPs != 95 || r.Baseline == nil || r.Baseline.UniqueIPs != 164 || r.ReductionPct == nil || *r.ReductionPct != 42.1 {
		t.Fatalf("totals: %+v", r)
	}
	if len(r.Rows) != 2 || r.Rows[0].Key != "DE" || r.Rows[1].Key != "US" {
		t.Fatalf("rows: %+v", r.Rows)
	}
	if *r.Rows[0].ReductionPct != 0 || *r.Rows[1].ReductionPct != 60 || *r.Rows[1].BaselineUniqueIPs != 100 {
		t.Errorf("row reductions: %v %v", *r.Rows[0].ReductionPct, *r.Rows[1].ReductionPct)
	}
	// The rest: IN 3, BR 2, FR 0 now; BR 4, FR 10 then.
	if r.Rest == nil || r.Rest.UniqueIPs != 5 || *r.Rest.BaselineUniqueIPs != 14 {
		t.Errorf("rest: %+v", r.Rest)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"from", "to", "unique_ips", "estimated_hosts", "resolver_ips_excluded", "baseline", "reduction_pct", "by", "rows", "health"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if doc["from"] != "2011-09-13T00:00:00Z" {
		t.Errorf("from = %v", doc["from"])
	}
}

func TestQueryValidate(t *testing.T) {
	tests := []struct {
		name string
		q    stats.Query
		ok   bool
	}{
		{"ok", stats.Query{From: at(0, 0), To: at(1, 0)}, true},
		{"empty", stats.Query{From: at(1, 0), To: at(1, 0)}, false},
		{"half baseline", stats.Query{From: at(0, 0), To: at(1, 0), BaselineFrom: at(0, 0)}, false},
		{"bad dim", stats.Query{From: at(0, 0), To: at(1, 0), By: "city"}, false},
		{"negative top", stats.Query{From: at(0, 0), To: at(1, 0), Top: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.q.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// smallFixture is a shorter population for the in-memory tests.
func smallFixture() *statsfixture.Fixture {
	c := statsfixture.Default()
	c.Days, c.Machines = 30, 600
	return statsfixture.Generate(c)
}

// TestStatsMatchesTruth checks random windows, most of them cutting days
// at arbitrary seconds, against the truth counted from the events.
func TestStatsMatchesTruth(t *testing.T) {
	fx := smallFixture()
	src := newMemSource(fx.Events)
	e := stats.New(stats.Options{Source: src, Raw: src, Cache: newMemCache(src), Now: func() time.Time { return time.Now() }})
	rng := rand.New(rand.NewPCG(1, 2))
	start := fx.Config.Start
	span := int64(fx.Config.Days) * 86400
	for i := range 25 {
		from := start.Add(time.Duration(rng.Int64N(span)) * time.Second)
		to := from.Add(time.Duration(1+rng.Int64N(span/3)) * time.Second)
		if i%5 == 0 { // some aligned windows too
			from, to = from.Truncate(24*time.Hour), to.Truncate(24*time.Hour).Add(24*time.Hour)
		}
		want := fx.Truth(from, to)
		for _, by := range []stats.Dim{stats.ByCountry, stats.ByFamily, stats.ByASN} {
			r, err := e.Stats(t.Context(), stats.Query{From: from, To: to, By: by})
			if err != nil {
				t.Fatal(err)
			}
			if r.UniqueIPs != uint64(want.UniqueIPs) || r.ResolverIPsExcluded != uint64(want.Resolvers) || r.Undecided != 0 {
				t.Errorf("%s–%s: unique %d resolvers %d undecided %d, want %d %d", from, to, r.UniqueIPs, r.ResolverIPsExcluded, r.Undecided, want.UniqueIPs, want.Resolvers)
			}
			wantRows := map[stats.Dim]map[string]int{stats.ByCountry: want.ByCountry, stats.ByFamily: want.ByFamily, stats.ByASN: want.ByASN}[by]
			checkRows(t, fmt.Sprint(from, "–", to, " by ", by), r.Rows, wantRows)
		}
	}
}

func checkRows(t testing.TB, what string, rows []stats.Row, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, r := range rows {
		if r.UniqueIPs > 0 {
			got[r.Key] = int(r.UniqueIPs)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: rows %v, want %v", what, got, want)
	}
}

func TestParseParams(t *testing.T) {
	now := at(7, 12)
	tests := []struct {
		in   string
		ok   bool
		from time.Time
		by   stats.Dim
	}{
		{"", true, at(6, 12), ""},
		{"from=2011-09-06&to=2011-09-13&by=country&top=20", true, at(0, 0), stats.ByCountry},
		{"from=2011-09-06&baseline_from=2011-03-24&baseline_to=2011-03-31", true, at(0, 0), ""},
		{"from=2011-09-06&baseline-from=2011-03-24&baseline-to=2011-03-31", true, at(0, 0), ""},
		{"by=city", false, time.Time{}, ""},
		{"top=many", false, time.Time{}, ""},
		{"from=yesterday", false, time.Time{}, ""},
		{"baseline_from=2011-03-24", false, time.Time{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, err := url.ParseQuery(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			q, err := stats.ParseParams(v, now)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (!q.From.Equal(tc.from) || q.By != tc.by) {
				t.Errorf("got from %s by %q, want %s %q", q.From, q.By, tc.from, tc.by)
			}
		})
	}
}

func TestWarmCachesClosedDays(t *testing.T) {
	src := newMemSource(handEvents())
	cache := newMemCache(src)
	e := stats.New(stats.Options{Source: src, Raw: src, Cache: cache, Now: func() time.Time { return at(2, 12) }})
	if err := e.Warm(t.Context(), at(0, 0), at(5, 0)); err != nil {
		t.Fatal(err)
	}
	// Days 0 and 1 are closed and have events; day 2 is today. Each
	// closed day is cached, and so is its point of the daily trend.
	if cache.saves != 4 {
		t.Fatalf("%d days and points cached, want 4", cache.saves)
	}
	if err := e.Warm(t.Context(), at(0, 0), at(5, 0)); err != nil {
		t.Fatal(err)
	}
	if cache.saves != 4 {
		t.Errorf("a second warm-up rebuilt cached days: %d saves", cache.saves)
	}
}

// failingSource fails the scan of one day.
type failingSource struct {
	*memSource
	bad time.Time
}

func (f failingSource) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	if !from.After(f.bad) && f.bad.Before(to) {
		return errors.New("disk I/O error")
	}
	return f.memSource.ScanDayIPs(ctx, from, to, fn)
}

// The days of a window are built concurrently: a day whose scan fails
// fails the query with its error, whichever day it is, and never yields a
// partial answer.
func TestStatsDayErrorFailsTheQuery(t *testing.T) {
	for _, bad := range []int{0, 1, 2} {
		src := failingSource{newMemSource(handEvents()), at(bad, 0)}
		for _, q := range []stats.Query{
			{From: at(0, 0), To: at(3, 0), By: stats.ByCountry},
			{From: at(0, 22), To: at(2, 11), By: stats.ByFamily},
		} {
			r, err := stats.New(stats.Options{Source: src, Raw: src.memSource, Now: func() time.Time { return at(10, 0) }}).Stats(t.Context(), q)
			if err == nil || !strings.Contains(err.Error(), "disk I/O error") || r != nil {
				t.Errorf("day %d failing, %v to %v: %v, %v", bad, q.From, q.To, r, err)
			}
		}
	}
}

// Concurrent queries share the build of the days they have in common
// (and read the shared sets together): every answer equals the answer of
// the same query asked alone.
func TestStatsConcurrentQueriesAgree(t *testing.T) {
	src := newMemSource(handEvents())
	queries := []stats.Query{
		{From: at(0, 0), To: at(3, 0), By: stats.ByCountry},
		{From: at(0, 0), To: at(3, 0), By: stats.ByFamily},
		{From: at(0, 22), To: at(1, 11), By: stats.ByCountry},
		{From: at(0, 22), To: at(1, 11), By: stats.ByASN},
		{From: at(0, 2), To: at(2, 7), By: stats.ByCase},
	}
	want := make([]string, len(queries))
	for i, q := range queries {
		r, err := stats.New(stats.Options{Source: src, Raw: src, Now: func() time.Time { return at(10, 0) }}).Stats(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		want[i] = string(b)
	}
	for _, cached := range []bool{false, true} {
		o := stats.Options{Source: src, Raw: src, Now: func() time.Time { return at(10, 0) }}
		if cached {
			o.Cache = newMemCache(src)
		}
		e := stats.New(o)
		var wg sync.WaitGroup
		got := make([]string, 8*len(queries))
		for i := range got {
			wg.Go(func() {
				r, err := e.Stats(t.Context(), queries[i%len(queries)])
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := json.Marshal(r)
				got[i] = string(b)
			})
		}
		wg.Wait()
		for i, g := range got {
			if w := want[i%len(queries)]; g != w {
				t.Errorf("cached=%v: query %d concurrently:\n%s\nalone:\n%s", cached, i%len(queries), g, w)
			}
		}
	}
}
