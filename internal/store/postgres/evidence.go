package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// The evidence log's reads of the raw events (app's storedLog), as on
// SQLite (sqlite/evidence.go): SeqOf finds an event's sequence number,
// RecordsAfter returns the events stored after one, in storage order.
//
// Storage order is seq, which events_seq_seq hands out as rows are
// inserted (the events migration that adds it, in postgres.go). Unlike
// SQLite's, whose one writer commits in seq order, several collectors
// insert at once here, and a transaction may commit after another that
// took larger numbers. A reader that returned everything committed would
// then move its cursor past numbers that are still to be committed, and
// never return those events. RecordsAfter therefore returns only numbers
// below a horizon that no transaction still in progress, nor any to come,
// can hold:
//
//   - Every transaction that inserts events first makes a writer mark,
//     in a statement trigger that runs before any row is numbered: it
//     takes a number m from the sequence and then holds a shared
//     advisory lock whose key carries m (evidenceMarkSpace<<48 | m) until
//     it ends. All its rows are numbered above m, and its mark is seen in
//     pg_locks for as long as those rows may still commit.
//   - The reader reads, in this order, each in a statement of its own:
//     the sequence's last value L; the smallest mark M in pg_locks; then
//     the rows numbered below min(L+1, M), with a snapshot taken after
//     both.
//
// A transaction whose mark the reader saw numbers its rows above M. One
// that took its mark's number after L was read numbers its rows above L.
// One that took its number before L was read but locked it only after
// the reader looked at pg_locks numbers its rows after that, so above L
// too (the sequence caches nothing: numbers come out in order). Any other
// writer had ended before the reader looked at pg_locks, and its rows are
// in the later snapshot or were rolled back. So a row numbered below the
// horizon that the reader does not see never will exist, and the cursor
// never passes an event that commits later. A long transaction (an
// import) holds the horizon back until it ends: RecordsAfter then returns
// less, never skips. This was chosen over numbering rows at commit time
// (a deferred trigger rewriting every row of a batch under a lock held
// through the commit), which would double the writes of the largest
// table and serialise the collectors' commits; here writers pay one
// sequence number and one uncontended lock per transaction.
//
// Marks and pg_locks are the primary's: RecordsAfter must not read a
// standby.

// evidenceMarkSpace is the top 16 bits of a writer mark's advisory lock
// key ("se", for sequence), as in events_writer_mark. The sequence number
// is its low 48 bits.
const evidenceMarkSpace = 0x7365

// SeqOf returns the storage sequence number of the event (its UTC day and
// ID), or ok false when it is not stored (never, or purged).
func (s *EventStore) SeqOf(ctx context.Context, ts time.Time, id string) (seq int64, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT seq FROM events WHERE day = $1 AND id = $2`, store.DayOf(ts), event.PackID(id)).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("event sequence number: %w", err)
	}
	return seq, true, nil
}

// RecordsAfter returns up to limit stored records with a sequence number
// above after, in storage order, and the last sequence number returned
// (after when none is). Records of transactions still in progress, and
// any numbered after them, wait for those transactions to end (see
// above).
func (s *EventStore) RecordsAfter(ctx context.Context, after int64, limit int) (recs [][]byte, last int64, err error) {
	horizon, err := s.evidenceHorizon(ctx)
	if err != nil {
		return nil, after, fmt.Errorf("stored records: %w", err)
	}
	if horizon <= after+1 {
		return nil, after, nil
	}
	var lim *int64 // NULL: no limit, as a negative one is on SQLite
	if limit >= 0 {
		l := int64(limit)
		lim = &l
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, id, ts, record FROM events WHERE seq > $1 AND seq < $2 ORDER BY seq LIMIT $3`, after, horizon, lim)
	if err != nil {
		return nil, after, fmt.Errorf("stored records: %w", err)
	}
	defer rows.Close()
	var lerr error
	lookup := s.strings().Lookup(ctx, &lerr)
	last = after
	var (
		seq, ts int64
		id, rec []byte
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &id, &ts, &rec); err != nil {
			return nil, after, fmt.Errorf("stored records: %w", err)
		}
		out, err := store.DecodeRecord(id, ts, rec, lookup)
		if err != nil {
			if lerr != nil {
				return nil, after, lerr
			}
			return nil, after, fmt.Errorf("event at seq %d: %w", seq, err)
		}
		recs = append(recs, bytes.Clone(out))
		last = seq
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("stored records: %w", err)
	}
	return recs, last, nil
}

// evidenceHorizon returns the smallest sequence number that a transaction
// in progress or yet to start may still commit: every number below it
// that is not stored now never will be. The two reads are separate
// statements, in this order, and the caller's read of the rows comes
// after both (see above).
func (s *EventStore) evidenceHorizon(ctx context.Context) (int64, error) {
	var last int64
	var called bool
	if err := s.pool.QueryRow(ctx, `SELECT last_value, is_called FROM events_seq_seq`).Scan(&last, &called); err != nil {
		return 0, err
	}
	horizon := last // not called: last_value is the next number
	if called {
		horizon = last + 1
	}
	var mark *int64
	err := s.pool.QueryRow(ctx, `SELECT MIN(((classid::bigint << 32) | objid::bigint) & ((1::bigint << 48) - 1)) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint >> 16 = $1
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, evidenceMarkSpace).Scan(&mark)
	if err != nil {
		return 0, err
	}
	if mark != nil && *mark < horizon {
		horizon = *mark
	}
	return horizon, nil
}
