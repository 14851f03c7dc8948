package postgres

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

// TestRecordsRoundTrip: events of every protocol, imported ones and one
// kept as JSON lines, stored and read back, give the byte-identical
// JSON-lines records, from a second connection pool too (which loads the
// string table from the database); rows of the schema before the compact
// encoding are migrated (IDs packed) and read unchanged.
func TestRecordsRoundTrip(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	s := openTest(t, dsn)
	events := storetest.RecordCases()
	want := map[string][]byte{}
	for i := range events {
		rec, err := event.MarshalJSONL(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		if !event.CompactLossless(&events[i]) {
			// Kept as its JSON-lines record, which an event reader
			// decodes as it always has (timestamp in UTC).
			e, err := event.UnmarshalJSONL(rec)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ = event.MarshalJSONL(&e)
		}
		want[events[i].ID] = rec
	}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, s *EventStore, prefixes []netip.Prefix, n int) {
		got := 0
		err := s.ScanDayEvents(t.Context(), events[0].Timestamp, prefixes, func(e *event.Event) error {
			rec, err := event.MarshalJSONL(e)
			if err != nil {
				return err
			}
			if !bytes.Equal(rec, want[e.ID]) {
				t.Errorf("record changed\n got %s\nwant %s", rec, want[e.ID])
			}
			got++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%d events back, want %d", got, n)
		}
	}
	check(t, s, nil, len(events))
	check(t, s, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/30")}, 3)
	s2 := openTest(t, dsn)
	check(t, s2, nil, len(events))
	if r, err := s2.WriteBatch(t.Context(), &store.Batch{Events: events}); err != nil || r.Inserted != 0 {
		t.Fatalf("re-delivery: %+v %v", r, err)
	}
	var avg float64
	if err := s.pool.QueryRow(t.Context(), `SELECT AVG(length(record)) FROM events WHERE get_byte(record, 0) != 123`).Scan(&avg); err != nil {
		t.Fatal(err)
	}
	if avg > 60 { // their JSON-lines records average about 250
		t.Errorf("compact records average %.0f bytes", avg)
	}
}

func TestRecordsOldRows(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	s := openTest(t, dsn)
	// Back to the schema before the compact encoding, with rows as it held
	// them: JSON records and text IDs.
	_, err := s.pool.Exec(t.Context(), `DROP TRIGGER events_writer_mark ON events; DROP FUNCTION events_writer_mark(); ALTER TABLE events DROP COLUMN seq;
		DROP INDEX events_day_ip; ALTER TABLE events DROP COLUMN ip; DROP TABLE event_strings;
		ALTER TABLE events ALTER COLUMN id TYPE TEXT USING ''; DELETE FROM events;
		DELETE FROM schema_migrations WHERE component = 'events' AND version >= 6`)
	if err != nil {
		t.Fatal(err)
	}
	cases := storetest.RecordCases()
	for _, c := range cases {
		rec, _ := event.MarshalJSONL(&c)
		if _, err := s.pool.Exec(t.Context(), `INSERT INTO events (day, id, ts, record) VALUES ($1, $2, $3, $4)`,
			store.DayOf(c.Timestamp), c.ID, c.Timestamp.UnixNano(), rec); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openTest(t, dsn)
	n := 0
	err = s.ScanDayEvents(t.Context(), cases[0].Timestamp, []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")}, func(e *event.Event) error {
		want, _ := event.MarshalJSONL(&cases[0])
		got, _ := event.MarshalJSONL(e)
		if !bytes.Equal(got, want) {
			t.Errorf("old row read back as %s", got)
		}
		n++
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("old rows: %d found, %v", n, err)
	}
	// The migration packed every text ID as PackID does: re-delivery
	// finds them.
	if r, err := s.WriteBatch(t.Context(), &store.Batch{Events: cases}); err != nil || r.Inserted != 0 {
		t.Fatalf("re-delivery of old rows' events: %+v %v", r, err)
	}
}
