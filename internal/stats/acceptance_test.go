package stats_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/ingest"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/stats/statsfixture"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// checkBotIDs checks that ingest read every imported event's bot
// identifier (the fixture writes it to machine_name) as the fixture made it.
func checkBotIDs(t *testing.T, fx *statsfixture.Fixture, evs []event.Event) {
	t.Helper()
	type key struct {
		ts     int64
		ip     netip.Addr
		family string
		port   uint16
	}
	ids := make(map[key]string)
	for i := range fx.Events {
		e := &fx.Events[i]
		if e.BotID != "" {
			ids[key{e.Timestamp.Unix(), e.SrcIP, e.Family, e.SrcPort}] = e.BotID
		}
	}
	for i := range evs {
		e := &evs[i]
		want := ids[key{e.Timestamp.Unix(), e.SrcIP, e.Family, e.SrcPort}]
		// Only the HTTP layout has a machine_name column.
		http := e.Protocol == event.ProtoHTTP || e.Protocol == event.ProtoHTTPS
		if (http && e.BotID != want) || (!http && e.BotID != "") {
			t.Fatalf("imported %s event %s has bot_id %q; the fixture made %q", e.Protocol, e.ID, e.BotID, want)
		}
	}
}

// openStore returns a fresh embedded store with its event and stats parts.
func openStore(tb testing.TB) (*sqlite.DB, *sqlite.EventStore, *sqlite.StatsStore) {
	tb.Helper()
	db, err := sqlite.OpenDir(tb.Context(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	es, err := sqlite.NewEventStore(tb.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		es.Close()
		db.Close()
	})
	return db, es, sqlite.NewStatsStore(db)
}

func writeAll(tb testing.TB, es store.EventStore, events []event.Event) (dups int) {
	tb.Helper()
	for lo := 0; lo < len(events); lo += 5000 {
		b := &store.Batch{Events: events[lo:min(lo+5000, len(events))]}
		b.Received = uint64(len(b.Events))
		res, err := es.WriteBatch(tb.Context(), b)
		if err != nil {
			tb.Fatal(err)
		}
		dups += res.Duplicates
	}
	if err := es.Flush(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return dups
}

// acceptanceFixture is the 100-day population, once per test binary.
var acceptanceFixture = sync.OnceValue(func() *statsfixture.Fixture { return statsfixture.Generate(statsfixture.Default()) })

// importReports writes the fixture's Shadowserver reports and imports them
// through package ingest into es, the way takedown events import does.
func importReports(t *testing.T, fx *statsfixture.Fixture, es store.EventStore) string {
	t.Helper()
	dir := t.TempDir()
	files, err := fx.WriteReports(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows, dups int
	for _, f := range files {
		evs, err := ingest.ReadFile(f, ingest.FormatShadowserver)
		if err != nil {
			t.Fatal(err)
		}
		checkBotIDs(t, fx, evs)
		rows += len(evs)
		res, err := ingest.Store(t.Context(), es, evs, nil)
		if err != nil {
			t.Fatal(err)
		}
		dups += res.Duplicates
	}
	if rows != len(fx.Events)+dups || dups == 0 {
		t.Fatalf("%d rows, %d duplicates, %d events", rows, dups, len(fx.Events))
	}
	return dir
}

// TestAcceptanceSQLite is issue 6's acceptance: 100 days of Shadowserver
// reports with churn, NAT, resolvers and duplicate rows, read by package
// ingest and stored in the embedded store; stats equal the truth per week,
// per country, per family, count no resolver, and estimate the machines
// within 10%.
func TestAcceptanceSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("100-day acceptance population")
	}
	_, es, ss := openStore(t)
	acceptance(t, es, ss, ss, ss)
}

// TestAcceptancePostgreSQL is the same on PostgreSQL, from its hourly sets
// and blocks.
func TestAcceptancePostgreSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("100-day acceptance population")
	}
	srv := pgtest.Start(t, pgtest.Options{})
	db, err := postgres.Open(t.Context(), srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	es := db.Events()
	acceptance(t, es, es, es, es)
}

func acceptance(t *testing.T, es store.EventStore, raw stats.RawEvents, cache stats.Cache, sets stats.Sets) {
	fx := acceptanceFixture()
	dir := importReports(t, fx, es)
	now := fx.Config.Start.AddDate(0, 0, fx.Config.Days+1)
	eng := stats.New(stats.Options{Source: es, Raw: raw, Cache: cache, Sets: sets, Now: func() time.Time { return now }})
	start := fx.Config.Start
	var windows []statsfixture.Window
	check := func(from, to time.Time, estimate bool) {
		t.Helper()
		want := fx.Truth(from, to)
		windows = append(windows, want)
		for _, by := range []stats.Dim{stats.ByCountry, stats.ByFamily} {
			r, err := eng.Stats(t.Context(), stats.Query{From: from, To: to, By: by})
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("%s–%s", from.Format(time.DateOnly), to.Format(time.DateOnly))
			if r.UniqueIPs != uint64(want.UniqueIPs) || r.ResolverIPsExcluded != uint64(want.Resolvers) {
				t.Errorf("%s: unique %d resolvers %d, want %d %d", what, r.UniqueIPs, r.ResolverIPsExcluded, want.UniqueIPs, want.Resolvers)
			}
			checkRows(t, what+" by "+string(by), r.Rows, map[stats.Dim]map[string]int{stats.ByCountry: want.ByCountry, stats.ByFamily: want.ByFamily}[by])
			if by == stats.ByCountry {
				if _, ok := want.ByCountry[""]; ok {
					t.Errorf("%s: truth has an empty country", what)
				}
				for _, row := range r.Rows {
					if row.Key == "US" && row.UniqueIPs > uint64(want.ByCountry["US"]) {
						t.Errorf("%s: resolvers counted in US", what)
					}
				}
			}
			if estimate && want.Machines > 0 {
				off := (float64(r.EstimatedHosts) - float64(want.Machines)) / float64(want.Machines)
				if by == stats.ByCountry {
					t.Logf("%s: %d addresses, estimated %d hosts, %d machines (%+.1f%%, %s)", what, r.UniqueIPs, r.EstimatedHosts, want.Machines, off*100, r.Estimate.Method)
				}
				if off < -0.1 || off > 0.1 {
					t.Errorf("%s: estimated %d hosts, %d machines (%+.1f%%; %+v)", what, r.EstimatedHosts, want.Machines, off*100, r.Estimate)
				}
			}
			if r.Health.Stored != uint64(len(fx.Events)) {
				t.Errorf("health stored %d, want %d", r.Health.Stored, len(fx.Events))
			}
		}
	}
	for w := 0; w*7 < fx.Config.Days; w++ {
		from := start.AddDate(0, 0, 7*w)
		to := from.AddDate(0, 0, 7)
		if end := start.AddDate(0, 0, fx.Config.Days); to.After(end) {
			to = end
		}
		check(from, to, true)
	}
	check(start, start.AddDate(0, 0, fx.Config.Days), true)
	if raw != nil {
		// Cut windows: exact through raw events.
		check(start.Add(30*time.Hour+17*time.Minute), start.Add(9*24*time.Hour+5*time.Hour), false)
		check(start.Add(50*24*time.Hour+23*time.Hour), start.Add(51*24*time.Hour+time.Hour), false)
	}
	if err := statsfixture.WriteTruth(filepath.Join(dir, "truth.json"), windows); err != nil {
		t.Fatal(err)
	}

	// The series gives the same weekly figures from the cache.
	s, err := eng.Series(t.Context(), stats.Query{From: start, To: start.AddDate(0, 0, fx.Config.Days)}, stats.Weekly)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range s.Points {
		if p.UniqueIPs != uint64(windows[i].UniqueIPs) {
			t.Errorf("series week %d: %d, want %d", i, p.UniqueIPs, windows[i].UniqueIPs)
		}
	}

	// A late import into a closed, cached day moves its fingerprint: the
	// next query sees the new address.
	day := start.AddDate(0, 0, 3)
	before := fx.Truth(day, day.AddDate(0, 0, 1)).UniqueIPs
	late := event.Event{ID: "late-1", Timestamp: day.Add(time.Hour), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("100.64.0.1"), SrcGeo: "NL", Family: statsfixture.NoIDFamily}
	writeAll(t, es, []event.Event{late})
	r, err := eng.Stats(t.Context(), stats.Query{From: day, To: day.AddDate(0, 0, 1), By: stats.ByCountry})
	if err != nil {
		t.Fatal(err)
	}
	if r.UniqueIPs != uint64(before+1) {
		t.Errorf("after a late import: %d, want %d", r.UniqueIPs, before+1)
	}
}
