package sqlite

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

func openEvents(tb testing.TB, path string) (*DB, *EventStore) {
	tb.Helper()
	db, err := Open(tb.Context(), path)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := NewEventStore(tb.Context(), db, EventStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(); db.Close() })
	return db, s
}

func TestEventStoreConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) store.EventStore {
		_, s := openEvents(tb, filepath.Join(tb.TempDir(), FileName))
		return s
	})
}

func TestEventStoreHealthSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, s := openEvents(t, path)
	e := event.Event{ID: "a", Timestamp: time.Date(2011, 3, 17, 1, 0, 0, 0, time.UTC), Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1"), Listener: "http:127.0.0.1:8080"}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{e}, Received: 3, Dropped: 2,
		Listeners: []store.ListenerDelta{{Name: "http:127.0.0.1:8080", Received: 3, Dropped: 2}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db.Close()
	_, s2 := openEvents(t, path)
	h, err := s2.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := store.Health{Received: 3, Stored: 1, Dropped: 2,
		Listeners: []store.ListenerHealth{{Name: "http:127.0.0.1:8080", Received: 3, Stored: 1, Dropped: 2}}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("health after reopen %+v", h)
	}
	if r, err := s2.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{e}}); err != nil || r.Inserted != 0 {
		t.Fatalf("re-delivery after reopen: %+v %v", r, err)
	}
}

// TestEventStoreRebuildsAggregatesAfterCrash stops the writer without a
// flush, as kill -9 would, and checks that reopening rebuilds the
// aggregates from the stored events, once.
func TestEventStoreRebuildsAggregatesAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewEventStore(t.Context(), db, EventStoreOptions{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	mk := func(id string, ip string) event.Event {
		return event.Event{ID: id, Timestamp: day.Add(time.Hour), Protocol: "http", SrcIP: netip.MustParseAddr(ip), Family: "rustock"}
	}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{mk("1", "192.0.2.1"), mk("2", "192.0.2.2")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{mk("3", "192.0.2.1"), mk("4", "192.0.2.3")}}); err != nil {
		t.Fatal(err)
	}
	// Crash: the second batch's aggregates are only in memory.
	s.conn.Close()
	db.Close()

	_, s2 := openEvents(t, path)
	hits := map[string]uint64{}
	err = s2.ScanDayIPs(t.Context(), day, day.Add(24*time.Hour), func(a *store.DayIP) error {
		hits[a.IP.String()] = a.Hits
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"192.0.2.1": 2, "192.0.2.2": 1, "192.0.2.3": 1}
	if len(hits) != len(want) {
		t.Fatalf("aggregates %v, want %v", hits, want)
	}
	for ip, n := range want {
		if hits[ip] != n {
			t.Fatalf("aggregates %v, want %v", hits, want)
		}
	}
	rs, err := s2.Rollups(t.Context(), day, day.Add(24*time.Hour))
	if err != nil || len(rs) != 1 || rs[0].IPs != 3 || rs[0].Hits != 4 {
		t.Fatalf("rollups %+v %v", rs, err)
	}
}

// TestEventStoreFullDisk fills the database to its page limit (what a full
// disk looks like to SQLite): the failing batch reports it clearly and
// changes nothing, the database stays intact, and writing resumes once
// there is room.
func TestEventStoreFullDisk(t *testing.T) {
	db, s := openEvents(t, filepath.Join(t.TempDir(), FileName))
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	var pages int64
	if err := s.conn.QueryRowContext(t.Context(), `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.conn.ExecContext(t.Context(), fmt.Sprintf(`PRAGMA max_page_count=%d`, pages+40)); err != nil {
		t.Fatal(err)
	}
	batch := func(n int) *store.Batch {
		evs := make([]event.Event, 200)
		for i := range evs {
			evs[i] = event.Event{ID: fmt.Sprintf("%d-%d", n, i), Timestamp: day.Add(time.Duration(i) * time.Second), Protocol: "http",
				SrcIP: netip.AddrFrom4([4]byte{10, byte(n), byte(i), 1}), HTTPAgent: strings.Repeat("x", 300)}
		}
		return &store.Batch{Events: evs, Received: 200}
	}
	var full error
	n := 0
	for ; n < 100 && full == nil; n++ {
		_, full = s.WriteBatch(t.Context(), batch(n))
	}
	if full == nil || !strings.Contains(full.Error(), "full") {
		t.Fatalf("after %d batches: err %v, want a disk-full error", n, full)
	}
	h, err := s.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Stored != uint64(200*(n-1)) || h.Received != h.Stored {
		t.Fatalf("health %+v after %d good batches: the failed batch changed it", h, n-1)
	}
	var ok string
	if err := db.SQL().QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q %v", ok, err)
	}
	if _, err := s.conn.ExecContext(t.Context(), `PRAGMA max_page_count=1073741823`); err != nil {
		t.Fatal(err)
	}
	if r, err := s.WriteBatch(t.Context(), batch(n)); err != nil || r.Inserted != 200 {
		t.Fatalf("after room was made: %+v %v", r, err)
	}
}

// TestEventStoreKnownKeys covers the two aggregate write paths: plain
// inserts for keys known to be new, upserts for the rest, and the fallback
// when the in-memory key set is wrong.
func TestEventStoreKnownKeys(t *testing.T) {
	_, s := openEvents(t, filepath.Join(t.TempDir(), FileName))
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	n := 0
	write := func(ips ...string) {
		t.Helper()
		var evs []event.Event
		for _, ip := range ips {
			n++
			evs = append(evs, event.Event{ID: fmt.Sprint(n), Timestamp: day.Add(time.Duration(n) * time.Minute), Protocol: "tcp", SrcIP: netip.MustParseAddr(ip)})
		}
		if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	write("192.0.2.1", "192.0.2.2", "2001:db8::2")
	write("192.0.2.1", "192.0.2.3") // .1 known: upserted; .3 new: inserted
	// A wrong key set (as if it had missed .2 and 2001:db8::2): .4 is
	// inserted, the others conflict and are upserted instead.
	clear(s.known[store.DayOf(day)])
	write("192.0.2.2", "192.0.2.4", "2001:db8::2")
	hits := map[string]uint64{}
	if err := s.ScanDayIPs(t.Context(), day, day.Add(24*time.Hour), func(a *store.DayIP) error {
		hits[a.IP.String()] = a.Hits
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"192.0.2.1": 2, "192.0.2.2": 2, "192.0.2.3": 1, "192.0.2.4": 1, "2001:db8::2": 2}
	for ip, h := range want {
		if hits[ip] != h {
			t.Fatalf("hits %v, want %v", hits, want)
		}
	}
	rs, err := s.Rollups(t.Context(), day, day.Add(24*time.Hour))
	if err != nil || len(rs) != 1 || rs[0].IPs != 5 || rs[0].Hits != 8 {
		t.Fatalf("rollups %+v %v; want 5 IPs, 8 hits", rs, err)
	}
}

// TestEventStoreOrgAsRef checks that an aggregate's organisation is stored
// as a ref into event_strings, by the live writer and by an import, and
// that every reader gets the text back, from refs and from rows written
// before (org as text, org_ref 0).
func TestEventStoreOrgAsRef(t *testing.T) {
	db, s := openEvents(t, filepath.Join(t.TempDir(), FileName))
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	mk := func(id, ip, org string) event.Event {
		return event.Event{ID: id, Timestamp: day.Add(time.Hour), Protocol: "http", SrcIP: netip.MustParseAddr(ip),
			Family: "rustock", SrcASN: 64500, SrcOrg: org, SrcGeo: "US"}
	}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{mk("1", "192.0.2.1", "Example Telecom Ltd."), mk("2", "192.0.2.2", "Example Telecom Ltd.")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	im, err := s.BeginImport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Write(t.Context(), &store.Batch{Events: []event.Event{mk("3", "192.0.2.3", "Imported Networks Inc.")}}); err != nil {
		t.Fatal(err)
	}
	if err := im.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A row as written before org_ref existed.
	if _, err := db.SQL().ExecContext(t.Context(), `INSERT INTO event_day_ip (day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols)
		VALUES (?, ?, 'rustock', '', 'US', 64500, 'Old Row Org', 0, 0, 1, 2)`, day.Unix(), []byte{192, 0, 2, 4}); err != nil {
		t.Fatal(err)
	}
	var text, refs int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT count(*) FILTER (WHERE org != ''), count(*) FILTER (WHERE org_ref != 0) FROM event_day_ip`).Scan(&text, &refs); err != nil {
		t.Fatal(err)
	}
	if text != 1 || refs != 3 {
		t.Fatalf("%d rows keep the organisation as text, %d as a ref; want 1 and 3", text, refs)
	}
	want := map[string]string{"192.0.2.1": "Example Telecom Ltd.", "192.0.2.2": "Example Telecom Ltd.", "192.0.2.3": "Imported Networks Inc.", "192.0.2.4": "Old Row Org"}
	for name, scan := range map[string]func(fn func(*store.DayIP) error) error{
		"ScanDayIPs": func(fn func(*store.DayIP) error) error {
			return s.ScanDayIPs(t.Context(), day, day.Add(24*time.Hour), fn)
		},
		"ScanDayIPsSelect": func(fn func(*store.DayIP) error) error {
			sel := &store.Selection{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
			return s.ScanDayIPsSelect(t.Context(), day, day.Add(24*time.Hour), sel, nil, fn)
		},
	} {
		got := map[string]string{}
		if err := scan(func(a *store.DayIP) error { got[a.IP.String()] = a.Org; return nil }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: organisations %v, want %v", name, got, want)
		}
	}
}
