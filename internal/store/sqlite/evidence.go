package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// SeqOf returns the storage sequence number of the event (its time and
// ID), or ok false when it is not stored (never, or purged).
func (s *EventStore) SeqOf(ctx context.Context, ts time.Time, id string) (seq int64, ok bool, err error) {
	err = s.db.SQL().QueryRowContext(ctx, `SELECT seq FROM events WHERE day = ? AND ts = ? AND id = ?`, store.DayOf(ts), ts.UnixNano(), event.PackID(id)).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return seq, err == nil, err
}

// RecordsAfter returns up to limit stored records with a sequence number
// above after, in storage order, and the last sequence number returned.
func (s *EventStore) RecordsAfter(ctx context.Context, after int64, limit int) (recs [][]byte, last int64, err error) {
	last = after
	err = scanRecords(ctx, s.db, `SELECT seq, id, ts, record FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, []any{after, limit}, func(seq int64, rec []byte) error {
		last = seq
		recs = append(recs, bytes.Clone(rec))
		return nil
	})
	if err != nil {
		return nil, after, err
	}
	return recs, last, nil
}
