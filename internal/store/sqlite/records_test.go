package sqlite

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

// recordCases are storetest's.
func recordCases() []event.Event { return storetest.RecordCases() }

// TestRecordsRoundTrip: events → stored → read back, through every reader
// of raw events, give the byte-identical JSON-lines records, in a second
// process's view too (a fresh open reads the string table from disk).
func TestRecordsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, s := openEvents(t, path)
	events := recordCases()
	want := make([][]byte, len(events))
	for i := range events {
		var err error
		if want[i], err = event.MarshalJSONL(&events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, s *EventStore) {
		recs, _, err := s.RecordsAfter(t.Context(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(want) {
			t.Fatalf("%d records back, want %d", len(recs), len(want))
		}
		for i := range recs {
			if !bytes.Equal(recs[i], want[i]) {
				t.Errorf("record %d changed\n got %s\nwant %s", i, recs[i], want[i])
			}
		}
		for i := range events {
			if _, ok, err := s.SeqOf(t.Context(), events[i].Timestamp, events[i].ID); !ok || err != nil {
				t.Errorf("SeqOf(%s) = %v, %v", events[i].ID, ok, err)
			}
		}
		// The scoped scan returns the prefix's events, whole.
		var got []string
		err = scanDayEvents(t.Context(), s.db, events[0].Timestamp, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/30")}, func(e *event.Event) error {
			rec, _ := event.MarshalJSONL(e)
			got = append(got, string(rec))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0] != string(want[0]) {
			t.Errorf("scan of 198.51.100.0/30: %d events, first %s", len(got), got)
		}
	}
	t.Run("same process", func(t *testing.T) { check(t, s) })
	s.Close()
	db.Close()
	_, s2 := openEvents(t, path)
	t.Run("reopened", func(t *testing.T) { check(t, s2) })
	// Re-delivery is recognised on the packed IDs.
	if r, err := s2.WriteBatch(t.Context(), &store.Batch{Events: events}); err != nil || r.Inserted != 0 {
		t.Fatalf("re-delivery: %+v %v", r, err)
	}
	// The compact records are small: the table holds the strings.
	var avg float64
	if err := s2.db.SQL().QueryRowContext(t.Context(), `SELECT AVG(length(record)) FROM events WHERE substr(record, 1, 1) != '{'`).Scan(&avg); err != nil {
		t.Fatal(err)
	}
	if avg > 60 { // their JSON-lines records average about 250
		t.Errorf("compact records average %.0f bytes", avg)
	}
}

// TestRecordsOldRows: rows written before the compact encoding (JSON
// records, text IDs, no ip) are migrated and read back unchanged.
func TestRecordsOldRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the compact encoding, with rows as it held
	// them: JSON records and text IDs.
	if _, err := db.SQL().ExecContext(t.Context(), `DROP INDEX events_day_ts_id; CREATE UNIQUE INDEX events_day_id ON events (day, id);
		DROP INDEX events_day_ip; ALTER TABLE events DROP COLUMN ip; DROP TABLE event_strings;
		ALTER TABLE event_day_ip DROP COLUMN org_ref; ALTER TABLE event_day_ip DROP COLUMN detail; ALTER TABLE event_day_ip DROP COLUMN detail_rank;
		DELETE FROM schema_migrations WHERE component = 'events' AND version >= 4`); err != nil {
		t.Fatal(err)
	}
	cases := recordCases()
	e := cases[0]
	rec, _ := event.MarshalJSONL(&e)
	for _, c := range cases {
		r, _ := event.MarshalJSONL(&c)
		if _, err := db.SQL().ExecContext(t.Context(), `INSERT INTO events (day, id, ts, record) VALUES (?, ?, ?, ?)`,
			store.DayOf(c.Timestamp), c.ID, c.Timestamp.UnixNano(), r); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	_, s := openEvents(t, path)
	recs, _, err := s.RecordsAfter(t.Context(), 0, 100)
	if err != nil || len(recs) != len(cases) || !bytes.Equal(recs[0], rec) {
		t.Fatalf("old rows read back as %q, %v", recs, err)
	}
	// The migration packed every text ID as PackID does.
	for _, c := range cases {
		if _, ok, err := s.SeqOf(t.Context(), c.Timestamp, c.ID); !ok || err != nil {
			t.Errorf("old row %q not found by its packed ID: %v", c.ID, err)
		}
	}
	var n int
	err = scanDayEvents(t.Context(), s.db, e.Timestamp, []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")}, func(*event.Event) error { n++; return nil })
	if err != nil || n != 1 {
		t.Fatalf("a row without ip: scoped scan found %d, %v", n, err)
	}
	if r, err := s.WriteBatch(t.Context(), &store.Batch{Events: cases}); err != nil || r.Inserted != 0 {
		t.Fatalf("re-delivery of old rows' events: %+v %v", r, err)
	}
}
