package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// SeqOf returns the storage sequence number of the event (its UTC day and
// ID), or ok false when it is not stored (never, or purged).
func (s *EventStore) SeqOf(ctx context.Context, ts time.Time, id string) (seq int64, ok bool, err error) {
	err = s.db.SQL().QueryRowContext(ctx, `SELECT seq FROM events WHERE day = ? AND id = ?`, store.DayOf(ts), id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return seq, err == nil, err
}

// RecordsAfter returns up to limit stored records with a sequence number
// above after, in storage order, and the last sequence number returned.
func (s *EventStore) RecordsAfter(ctx context.Context, after int64, limit int) (recs [][]byte, last int64, err error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT seq, record FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, after, err
	}
	defer rows.Close()
	last = after
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&last, &rec); err != nil {
			return nil, after, err
		}
		recs = append(recs, rec)
	}
	return recs, last, rows.Err()
}
