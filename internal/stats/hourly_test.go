package stats_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// hourlyStore is one backend under the hourly-sets tests.
type hourlyStore struct {
	es    store.EventStore
	src   stats.Source
	raw   stats.RawEvents
	sets  stats.Sets
	cache stats.Cache
	// reopen closes the store and opens it again (a restart).
	reopen func(tb testing.TB) hourlyStore
}

func openHourlySQLite(tb testing.TB, dir string) hourlyStore {
	tb.Helper()
	db, err := sqlite.OpenDir(tb.Context(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	es, err := sqlite.NewEventStore(tb.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	closed := false
	closeAll := func() {
		if !closed {
			es.Close()
			db.Close()
			closed = true
		}
	}
	tb.Cleanup(closeAll)
	ss := sqlite.NewStatsStore(db)
	return hourlyStore{es: es, src: ss, raw: ss, sets: ss, cache: ss, reopen: func(tb testing.TB) hourlyStore {
		closeAll()
		return openHourlySQLite(tb, dir)
	}}
}

func openHourlyPostgres(tb testing.TB, dsn string) hourlyStore {
	tb.Helper()
	db, err := postgres.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	es := db.Events()
	return hourlyStore{es: es, src: es, raw: es, sets: es, cache: es, reopen: func(tb testing.TB) hourlyStore {
		db.Close()
		return openHourlyPostgres(tb, dsn)
	}}
}

// hourlyStores runs fn on a fresh store of each backend.
func hourlyStores(t *testing.T, fn func(t *testing.T, s hourlyStore)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openHourlySQLite(t, t.TempDir())) })
	t.Run("postgres", func(t *testing.T) {
		srv := pgtest.Start(t, pgtest.Options{})
		fn(t, openHourlyPostgres(t, srv.NewDatabase(t)))
	})
}

var hourlyDay0 = time.Date(2011, 3, 14, 0, 0, 0, 0, time.UTC)

// hourlyEvents are random contacts over three days up to now (the third
// day at 15:20:07, open): addresses in four countries and ASNs, two
// families of two cases, IPv6 in a few /64s, direct, DNS and unverified
// contacts, some with bot identifiers.
func hourlyEvents(now time.Time) []event.Event {
	rng := rand.New(rand.NewPCG(16, 1))
	var out []event.Event
	span := now.Sub(hourlyDay0)
	for i := range 4000 {
		var ip netip.Addr
		if rng.IntN(8) == 0 {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			b[7] = byte(rng.IntN(20))
			binary.BigEndian.PutUint64(b[8:], rng.Uint64())
			ip = netip.AddrFrom16(b)
		} else {
			ip = netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), 0, byte(rng.IntN(90))})
		}
		family := []string{"rustock", "conficker"}[rng.IntN(2)]
		e := event.Event{
			ID:        "e" + strconv.Itoa(i),
			Timestamp: hourlyDay0.Add(time.Duration(rng.Int64N(int64(span)))),
			SrcIP:     ip,
			Family:    family,
			Case:      map[string]string{"rustock": "case-r", "conficker": "case-c"}[family],
			// Geolocation is per network: an IPv6 /64 has one country
			// and one ASN (docs/counting.md, "Hourly sets").
			SrcGeo: []string{"US", "DE", "BR", ""}[int(geoByte(ip))%4],
			SrcASN: uint32(64500 + int(geoByte(ip)/4)%4),
		}
		switch k := rng.IntN(10); {
		case k < 5:
			e.Protocol = event.ProtoHTTP
			if rng.IntN(3) == 0 {
				e.BotID = "bot" + strconv.Itoa(rng.IntN(50))
			}
		case k < 8:
			e.Protocol = event.ProtoDNS
		default:
			e.Protocol = event.ProtoUDP
			e.Unverified = rng.IntN(2) == 0
		}
		out = append(out, e)
	}
	return out
}

// geoByte is what the test's geolocation depends on: the third byte of an
// IPv4 address, the eighth of an IPv6 one (its /64).
func geoByte(ip netip.Addr) byte {
	if ip.Is4() {
		return ip.As4()[1] + ip.As4()[3]
	}
	return ip.As16()[7]
}

// srcKey is how the stats count a source: IPv4, or IPv6 per /64.
func srcKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	b := ip.As16()
	return fmt.Sprintf("%x", b[:8])
}

// bruteForce counts a window from the raw events, as docs/counting.md
// says: distinct direct sources, DNS sources that are not among them, and
// per key of a dimension (the attributes of the (day, address, family)
// key's first event) the distinct direct sources.
func bruteForce(events []event.Event, from, to time.Time, by stats.Dim) (uint64, uint64, map[string]int) {
	type dk struct {
		day    int64
		ip     netip.Addr
		family string
	}
	first := make(map[dk]*event.Event)
	for i := range events {
		e := &events[i]
		k := dk{store.DayOf(e.Timestamp), e.SrcIP.Unmap(), e.Family}
		if f, ok := first[k]; !ok || e.Timestamp.Before(f.Timestamp) {
			first[k] = e
		}
	}
	direct, dns := map[string]bool{}, map[string]bool{}
	rows := map[string]map[string]bool{}
	for i := range events {
		e := &events[i]
		if e.Timestamp.Before(from) || !e.Timestamp.Before(to) {
			continue
		}
		bits := store.EventBits(e)
		src := srcKey(e.SrcIP)
		switch {
		case bits&store.Direct != 0:
			direct[src] = true
			if by == "" {
				continue
			}
			f := first[dk{store.DayOf(e.Timestamp), e.SrcIP.Unmap(), e.Family}]
			key := map[stats.Dim]string{stats.ByCountry: f.SrcGeo, stats.ByASN: strconv.Itoa(int(f.SrcASN)), stats.ByFamily: f.Family, stats.ByCase: f.Case}[by]
			if key == "" {
				key = stats.Unknown
			}
			if rows[key] == nil {
				rows[key] = map[string]bool{}
			}
			rows[key][src] = true
		case bits == store.ProtoDNS:
			dns[src] = true
		}
	}
	var res uint64
	for s := range dns {
		if !direct[s] {
			res++
		}
	}
	out := map[string]int{}
	for k, m := range rows {
		out[k] = len(m)
	}
	return uint64(len(direct)), res, out
}

// TestHourlySetsExact compares every kind of window, on both stores, with
// a brute-force count of the raw events: aligned days, windows cut at
// whole hours, at odd seconds, inside one hour, the open day and an empty
// window; and checks that none reads an aggregate row, before and after a
// restart.
func TestHourlySetsExact(t *testing.T) {
	hourlyStores(t, func(t *testing.T, s hourlyStore) {
		now := hourlyDay0.Add(2*24*time.Hour + 15*time.Hour + 20*time.Minute + 7*time.Second)
		events := hourlyEvents(now)
		// Many small batches, each flushed: many blobs per part, merged
		// along the way.
		for lo := 0; lo < len(events); lo += 97 {
			if _, err := s.es.WriteBatch(t.Context(), &store.Batch{Events: events[lo:min(lo+97, len(events))]}); err != nil {
				t.Fatal(err)
			}
			if err := s.es.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		// A re-delivered batch changes nothing.
		if _, err := s.es.WriteBatch(t.Context(), &store.Batch{Events: events[:500]}); err != nil {
			t.Fatal(err)
		}
		if err := s.es.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		d := func(day int, hms string) time.Time {
			o, err := time.ParseDuration(hms)
			if err != nil {
				t.Fatal(err)
			}
			return hourlyDay0.AddDate(0, 0, day).Add(o)
		}
		windows := []struct {
			name     string
			from, to time.Time
		}{
			{"aligned", d(0, "0s"), d(2, "0s")},
			{"one day", d(1, "0s"), d(2, "0s")},
			{"cut at hours", d(0, "5h"), d(1, "17h")},
			{"24h cutting two days", d(1, "15h"), d(2, "15h")},
			{"cut at odd seconds", d(0, "5h17m3s"), d(1, "17h2m9s")},
			{"inside one hour", d(1, "10h10m"), d(1, "10h50m")},
			{"across one hour edge", d(1, "10h10m"), d(1, "11h50m")},
			{"open day", d(2, "0s"), now},
			{"open day to midnight", d(2, "0s"), d(3, "0s")},
			{"last 24 hours", now.Add(-24 * time.Hour), now},
			{"empty", d(2, "23h"), d(3, "0s")},
		}
		check := func(t *testing.T, s hourlyStore) {
			eng := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Cache: s.cache, Now: func() time.Time { return now }})
			for _, w := range windows {
				for _, by := range []stats.Dim{"", stats.ByCountry, stats.ByASN, stats.ByFamily, stats.ByCase} {
					r, err := eng.Stats(t.Context(), stats.Query{From: w.from, To: w.to, By: by})
					if err != nil {
						t.Fatalf("%s by %q: %v", w.name, by, err)
					}
					unique, res, rows := bruteForce(events, w.from, w.to, by)
					if r.UniqueIPs != unique || r.ResolverIPsExcluded != res {
						t.Errorf("%s by %q: unique %d resolvers %d, want %d %d", w.name, by, r.UniqueIPs, r.ResolverIPsExcluded, unique, res)
					}
					if by != "" {
						checkRows(t, w.name+" by "+string(by), r.Rows, rows)
					}
					if r.Work.Rows != 0 || r.Undecided != 0 {
						t.Errorf("%s by %q: read %d aggregate rows, %d undecided; want none", w.name, by, r.Work.Rows, r.Undecided)
					}
					// The open day up to now is its day part: no raw
					// event of the cut hour is scanned.
					if w.name == "open day" && r.Work.RawEvents != 0 {
						t.Errorf("open day by %q: %d raw events scanned; want the day part alone", by, r.Work.RawEvents)
					}
				}
			}
			// An empty window really is empty; a full one is not.
			if u, _, _ := bruteForce(events, windows[0].from, windows[0].to, ""); u == 0 {
				t.Fatal("no direct source in the aligned window")
			}
		}
		check(t, s)
		t.Run("after restart", func(t *testing.T) { check(t, s.reopen(t)) })
	})
}

// TestHourlySetsPurgedRaw: once a day's raw events are purged, a window
// cutting an hour of it counts that hour whole and says how many sources
// were undecided; whole hours stay exact.
func TestHourlySetsPurgedRaw(t *testing.T) {
	hourlyStores(t, func(t *testing.T, s hourlyStore) {
		now := hourlyDay0.Add(2*24*time.Hour + 15*time.Hour)
		events := hourlyEvents(now)
		s.write(t, events...)
		if _, err := s.es.PurgeEvents(t.Context(), hourlyDay0.AddDate(0, 0, 1)); err != nil {
			t.Fatal(err)
		}
		eng := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Now: func() time.Time { return now }})
		from, to := hourlyDay0.Add(5*time.Hour), hourlyDay0.Add(9*time.Hour)
		r, err := eng.Stats(t.Context(), stats.Query{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		if want, _, _ := bruteForce(events, from, to, ""); r.UniqueIPs != want || r.Undecided != 0 {
			t.Errorf("whole hours after purge: %d (%d undecided), want %d exactly", r.UniqueIPs, r.Undecided, want)
		}
		from = from.Add(30 * time.Minute)
		r, err = eng.Stats(t.Context(), stats.Query{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		exact, _, _ := bruteForce(events, from, to, "")
		whole, _, _ := bruteForce(events, from.Truncate(time.Hour), to, "")
		if r.UniqueIPs != whole || r.Undecided == 0 || exact == whole {
			t.Errorf("cut hour after purge: %d (%d undecided), want the whole hour's %d (exact %d) and some undecided", r.UniqueIPs, r.Undecided, whole, exact)
		}
	})
}

// TestHourlyBlocks: a window of many closed days reads blocks of them
// (built once, then from the cache), counts what the days' events say, and
// a late event in a closed day inside a block moves the count.
func TestHourlyBlocks(t *testing.T) {
	hourlyStores(t, func(t *testing.T, s hourlyStore) {
		day0, events := blockEvents()
		s.write(t, events...)
		now := day0.AddDate(0, 0, 45)
		eng := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Cache: s.cache, Now: func() time.Time { return now }})
		from, to := day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 40)
		// The same figures without blocks (each day from its sets).
		plain := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Now: func() time.Time { return now }})
		want, err := plain.Stats(t.Context(), stats.Query{From: from, To: to, By: stats.ByCountry})
		if err != nil {
			t.Fatal(err)
		}
		for run := range 2 {
			r, err := eng.Stats(t.Context(), stats.Query{From: from, To: to, By: stats.ByCountry})
			if err != nil {
				t.Fatal(err)
			}
			unique, res, rows := bruteForce(events, from, to, stats.ByCountry)
			if r.UniqueIPs != unique || r.ResolverIPsExcluded != res || r.EstimatedHosts != want.EstimatedHosts {
				t.Errorf("run %d: unique %d resolvers %d hosts %d, want %d %d %d", run, r.UniqueIPs, r.ResolverIPsExcluded, r.EstimatedHosts, unique, res, want.EstimatedHosts)
			}
			checkRows(t, "blocks by country", r.Rows, rows)
			// Days 1-7 one by one, then days 8-39 as one block of 32
			// (day 15008 is a multiple of 32 days): 8 pieces, not 39.
			if r.Work.Pieces != 8 || (run == 1 && r.Work.CachedParts == 0) {
				t.Errorf("run %d: %+v; want 8 pieces, the block from the cache on the second run", run, r.Work)
			}
		}
		late := event.Event{ID: "late", Timestamp: day0.AddDate(0, 0, 20).Add(time.Hour), Protocol: event.ProtoHTTP,
			SrcIP: netip.MustParseAddr("10.9.200.1"), Family: "rustock", Case: "c", SrcGeo: "US"}
		s.write(t, late)
		r, err := eng.Stats(t.Context(), stats.Query{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		if unique, _, _ := bruteForce(append(events, late), from, to, ""); r.UniqueIPs != unique {
			t.Errorf("after a late event: %d, want %d", r.UniqueIPs, unique)
		}
	})
}

// blockEvents are 3,000 events over 40 days from day 15000 since the epoch
// (2011-01-26), which day0 is.
func blockEvents() (day0 time.Time, events []event.Event) {
	day0 = time.Unix(15000*86400, 0).UTC()
	rng := rand.New(rand.NewPCG(40, 2))
	for i := range 3000 {
		e := event.Event{
			ID: "b" + strconv.Itoa(i), Timestamp: day0.Add(time.Duration(rng.Int64N(int64(40 * 24 * time.Hour)))),
			SrcIP: netip.AddrFrom4([4]byte{10, 9, byte(rng.IntN(8)), byte(rng.IntN(250))}), Family: "rustock", Case: "c",
			Protocol: []string{event.ProtoHTTP, event.ProtoDNS}[rng.IntN(2)],
		}
		e.SrcGeo = []string{"US", "DE"}[int(e.SrcIP.As4()[2])%2]
		if rng.IntN(4) == 0 {
			e.BotID = "id" + strconv.Itoa(rng.IntN(30))
		}
		events = append(events, e)
	}
	return day0, events
}

// TestBuildBlocks: blocks built ahead serve the first query of a long
// window from the cache, a second build finds nothing to do, and a late
// event makes the build redo the blocks that hold its day.
func TestBuildBlocks(t *testing.T) {
	hourlyStores(t, func(t *testing.T, s hourlyStore) {
		day0, events := blockEvents()
		s.write(t, events...)
		now := day0.AddDate(0, 0, 45)
		eng := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Cache: s.cache, Now: func() time.Time { return now }})
		n, err := eng.BuildBlocks(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Days 15000-15044 closed: blocks of 8 (15000 is 8·1875), 16 and 32
		// days that fit in them.
		if n == 0 {
			t.Fatal("no block built")
		}
		if again, err := eng.BuildBlocks(t.Context()); err != nil || again != 0 {
			t.Fatalf("second build: %d blocks, %v; want 0", again, err)
		}
		from, to := day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 40)
		r, err := eng.Stats(t.Context(), stats.Query{From: from, To: to, By: stats.ByCountry})
		if err != nil {
			t.Fatal(err)
		}
		unique, _, rows := bruteForce(events, from, to, stats.ByCountry)
		if r.UniqueIPs != unique {
			t.Errorf("unique %d, want %d", r.UniqueIPs, unique)
		}
		checkRows(t, "blocks built ahead", r.Rows, rows)
		if r.Work.CachedParts == 0 {
			t.Errorf("first query after BuildBlocks: %+v; want its blocks from the cache", r.Work)
		}
		late := event.Event{ID: "late", Timestamp: day0.AddDate(0, 0, 20).Add(time.Hour), Protocol: event.ProtoHTTP,
			SrcIP: netip.MustParseAddr("10.9.200.1"), Family: "rustock", Case: "c", SrcGeo: "US"}
		s.write(t, late)
		if n, err := eng.BuildBlocks(t.Context()); err != nil || n == 0 {
			t.Fatalf("after a late event: %d blocks rebuilt, %v; want some", n, err)
		}
		r, err = eng.Stats(t.Context(), stats.Query{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		if unique, _, _ := bruteForce(append(events, late), from, to, ""); r.UniqueIPs != unique {
			t.Errorf("after a late event: %d, want %d", r.UniqueIPs, unique)
		}
	})
}

// write stores events in one batch and flushes the aggregates.
func (s hourlyStore) write(t *testing.T, events ...event.Event) {
	t.Helper()
	if _, err := s.es.WriteBatch(t.Context(), &store.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	if err := s.es.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}
