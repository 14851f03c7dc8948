package postgres

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
)

func seqEvents(prefix string, n int) []event.Event {
	var evs []event.Event
	for i := range n {
		evs = append(evs, event.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Timestamp: time.Date(2011, 3, 17, 10, i, 0, 0, time.UTC),
			Protocol: event.ProtoHTTP, SrcIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Family: "rustock", Case: "case-1"})
	}
	return evs
}

// sameSeqRecords fails unless recs are the records of evs, in order.
func sameSeqRecords(tb testing.TB, what string, recs [][]byte, evs ...[]event.Event) {
	tb.Helper()
	var want [][]byte
	for _, e := range slices.Concat(evs...) {
		rec, err := event.MarshalJSONL(&e)
		if err != nil {
			tb.Fatal(err)
		}
		want = append(want, rec)
	}
	if !slices.EqualFunc(recs, want, bytes.Equal) {
		tb.Fatalf("%s: records\n got %s\nwant %s", what, bytes.Join(recs, nil), bytes.Join(want, nil))
	}
}

func recordsAfterAll(tb testing.TB, s *EventStore, after int64) ([][]byte, int64) {
	tb.Helper()
	recs, last, err := s.RecordsAfter(tb.Context(), after, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	return recs, last
}

func seqOfEvent(tb testing.TB, s *EventStore, e *event.Event) int64 {
	tb.Helper()
	seq, ok, err := s.SeqOf(tb.Context(), e.Timestamp, e.ID)
	if err != nil || !ok {
		tb.Fatalf("SeqOf(%s) = %v, %v", e.ID, ok, err)
	}
	return seq
}

// writerMarks counts the writer marks held on the store's database.
func writerMarks(tb testing.TB, s *EventStore) int {
	tb.Helper()
	var n int
	err := s.pool.QueryRow(tb.Context(), `SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint >> 16 = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, evidenceMarkSpace).Scan(&n)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// openWriter begins a transaction on s that inserts evs as a collector's
// batch does first, and leaves it open: a collector between inserting its
// events and committing. (A whole batch would also lock the health
// counters, which every other batch waits for.)
func openWriter(tb testing.TB, s *EventStore, evs []event.Event) pgx.Tx {
	tb.Helper()
	tx, err := s.pool.Begin(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tx.Rollback(context.Background()) })
	insertEvents(tb, tx, evs)
	return tx
}

// insertEvents inserts evs into events in tx in one statement, as JSON-lines
// records (which readers return as they are).
func insertEvents(tb testing.TB, tx pgx.Tx, evs []event.Event) {
	tb.Helper()
	var days, tss []int64
	var ids, ips, recs [][]byte
	for _, e := range evs {
		rec, err := event.MarshalJSONL(&e)
		if err != nil {
			tb.Fatal(err)
		}
		days, tss = append(days, store.DayOf(e.Timestamp)), append(tss, e.Timestamp.UnixNano())
		ids, ips, recs = append(ids, event.PackID(e.ID)), append(ips, e.SrcIP.AsSlice()), append(recs, rec)
	}
	if _, err := tx.Exec(tb.Context(), sqlInsertEvents, days, ids, tss, ips, recs); err != nil {
		tb.Fatal(err)
	}
}

// TestRecordsAfterConcurrentWriters: a collector's transaction takes
// sequence numbers and stays open while another node's batch, numbered
// after it, commits. RecordsAfter must not return the later batch yet:
// its cursor would pass the open transaction's numbers, whose events
// would then never be returned. Once the first transaction commits, the
// cursor resumes and returns both, in sequence order.
func TestRecordsAfterConcurrentWriters(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	a, b := openTest(t, dsn), openTest(t, dsn) // two nodes
	ctx := t.Context()
	before := seqEvents("before", 2)
	if _, err := b.WriteBatch(ctx, &store.Batch{Events: before}); err != nil {
		t.Fatal(err)
	}
	if n := writerMarks(t, b); n != 0 {
		t.Fatalf("%d writer marks held after a committed batch", n)
	}

	early, early2, late := seqEvents("early", 3), seqEvents("early2", 2), seqEvents("late", 3)
	tx := openWriter(t, a, early)
	if _, err := b.WriteBatch(ctx, &store.Batch{Events: late}); err != nil {
		t.Fatal(err)
	}
	recs, last := recordsAfterAll(t, b, 0)
	sameSeqRecords(t, "while an earlier writer is open", recs, before)
	if last != seqOfEvent(t, b, &before[1]) {
		t.Fatalf("last %d, want the last committed event before the open writer", last)
	}
	// A second statement of the same transaction makes no second mark.
	insertEvents(t, tx, early2)
	if n := writerMarks(t, b); n != 1 {
		t.Fatalf("%d writer marks held by one open transaction, want 1", n)
	}
	if recs, l := recordsAfterAll(t, b, last); len(recs) != 0 || l != last {
		t.Fatalf("while an earlier writer is open: %d more records, last %d", len(recs), l)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The scenario: the open transaction's events are numbered below the
	// batch that committed first.
	if e, l := seqOfEvent(t, b, &early[2]), seqOfEvent(t, b, &late[0]); e >= l {
		t.Fatalf("test: the open transaction's events (%d) are not numbered below the later batch's (%d)", e, l)
	}
	recs, last = recordsAfterAll(t, b, last)
	sameSeqRecords(t, "after the earlier writer committed", recs, early, late, early2)

	// A writer that rolls back holds the cursor only while it is open.
	tx = openWriter(t, a, seqEvents("rolled-back", 2))
	after := seqEvents("after", 2)
	if _, err := a.WriteBatch(ctx, &store.Batch{Events: after}); err != nil {
		t.Fatal(err)
	}
	if recs, l := recordsAfterAll(t, a, last); len(recs) != 0 || l != last {
		t.Fatalf("while a writer is open: %d records, last %d", len(recs), l)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ = recordsAfterAll(t, a, last)
	sameSeqRecords(t, "after the writer rolled back", recs, after)
	if n := writerMarks(t, a); n != 0 {
		t.Fatalf("%d writer marks held after every writer ended", n)
	}
}

// TestEventsSeqMigration: events stored before the sequence number
// existed are numbered by time, below every event stored after.
func TestEventsSeqMigration(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	s := openTest(t, dsn)
	version := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "CREATE SEQUENCE events_seq_seq") }) + 1
	if version != len(migrations) {
		t.Fatalf("test: the sequence is migration %d of %d; undo the later ones too", version, len(migrations))
	}
	old := seqEvents("old", 4)
	stored := []event.Event{old[2], old[0], old[3], old[1]} // not in time order
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: stored}); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the sequence.
	_, err := s.pool.Exec(t.Context(), fmt.Sprintf(`DROP TRIGGER events_writer_mark ON events; DROP FUNCTION events_writer_mark();
		ALTER TABLE events DROP COLUMN seq; DELETE FROM schema_migrations WHERE component = 'events' AND version = %d`, version))
	if err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dsn)
	recs, last := recordsAfterAll(t, s, 0)
	sameSeqRecords(t, "migrated rows", recs, old)
	if first := seqOfEvent(t, s, &old[0]); first != 1 {
		t.Errorf("the oldest event is numbered %d, want 1", first)
	}
	newer := seqEvents("new", 1)
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: newer}); err != nil {
		t.Fatal(err)
	}
	recs, _ = recordsAfterAll(t, s, last)
	sameSeqRecords(t, "after the migrated rows", recs, newer)
}
