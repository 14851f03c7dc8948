package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// StatsStore is the analytics' part of the embedded store: the cache of
// closed days' address sets (table stats_day_sets) and the scan of raw
// events for windows that cut a day. It reads the pipeline's tables and
// writes only its own.
type StatsStore struct {
	db *DB
}

var (
	_ stats.Cache     = (*StatsStore)(nil)
	_ stats.RawEvents = (*StatsStore)(nil)
)

// NewStatsStore returns the analytics' store of db.
func NewStatsStore(db *DB) *StatsStore { return &StatsStore{db: db} }

// Fingerprints implements stats.Cache: the number of events aggregated per
// day, read from the daily rollups (their hits add up to the day's
// aggregate hits, and rise with every stored event of the day).
func (s *StatsStore) Fingerprints(ctx context.Context, from, to time.Time) (map[int64]uint64, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT day, SUM(hits) FROM event_rollups WHERE day >= ? AND day < ? GROUP BY day`,
		store.DayOf(from), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read day fingerprints: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]uint64)
	for rows.Next() {
		var day, hits int64
		if err := rows.Scan(&day, &hits); err != nil {
			return nil, fmt.Errorf("read day fingerprints: %w", err)
		}
		if hits > 0 {
			out[day] = uint64(hits)
		}
	}
	return out, rows.Err()
}

// LoadDayPart implements stats.Cache.
func (s *StatsStore) LoadDayPart(ctx context.Context, day int64, part string, fp uint64) ([]byte, bool, error) {
	var b []byte
	var have int64
	err := s.db.SQL().QueryRowContext(ctx, `SELECT fp, data FROM stats_day_sets WHERE day = ? AND part = ?`, day, part).Scan(&have, &b)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("load cached day sets: %w", err)
	}
	if uint64(have) != fp {
		return nil, false, nil
	}
	return b, true, nil
}

// SaveDay implements stats.Cache.
func (s *StatsStore) SaveDay(ctx context.Context, day int64, fp uint64, parts map[string][]byte) error {
	tx, err := s.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save day sets: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, `DELETE FROM stats_day_sets WHERE day = ?`, day); err != nil {
		return fmt.Errorf("save day sets: %w", err)
	}
	for part, b := range parts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO stats_day_sets (day, part, fp, data) VALUES (?, ?, ?, ?)`, day, part, int64(fp), b); err != nil {
			return fmt.Errorf("save day sets: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save day sets: %w", err)
	}
	return nil
}

// ScanEventSources implements stats.RawEvents.
func (s *StatsStore) ScanEventSources(ctx context.Context, from, to time.Time, fn func(netip.Addr, string, store.Protocols) error) error {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT record FROM events WHERE day >= ? AND day <= ? AND ts >= ? AND ts < ?`,
		store.DayOf(from), store.DayOf(to), from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("scan raw events: %w", err)
	}
	defer rows.Close()
	var rec []byte
	var lerr error
	lookup := s.db.strings().Lookup(ctx, &lerr)
	for rows.Next() {
		if err := rows.Scan(&rec); err != nil {
			return fmt.Errorf("scan raw events: %w", err)
		}
		// Only the protocol, source, family and unverified flag are
		// decoded (records.go).
		e, err := store.DecodeSource(rec, lookup)
		if err != nil {
			return fmt.Errorf("scan raw events: decode record: %w", errors.Join(lerr, err))
		}
		bits := store.ProtocolBit(e.Protocol)
		if e.Unverified {
			bits = store.ProtoUnverified
		}
		if err := fn(e.SrcIP.Unmap(), e.Family, bits); err != nil {
			return err
		}
	}
	return rows.Err()
}

// PurgeStats deletes cached day sets of UTC days before before.
func (s *StatsStore) PurgeStats(ctx context.Context, before time.Time) (int64, error) {
	r, err := s.db.SQL().ExecContext(ctx, `DELETE FROM stats_day_sets WHERE day < ?`, store.DayOf(before))
	if err != nil {
		return 0, fmt.Errorf("purge cached day sets: %w", err)
	}
	return r.RowsAffected()
}

// StatsStore is also a read-only stats.Source, for commands that must not
// open the writer (NewEventStore re-aggregates pending events on open,
// which only the process that writes may do).
var _ stats.Source = (*StatsStore)(nil)

// ScanDayIPs reads the (day, IP, family) aggregates of days in [from, to)
// in the order of store.EventStore.ScanDayIPs.
func (s *StatsStore) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	return scanDayIPs(ctx, s.db, from, to, fn)
}

// Health reads the pipeline's persisted counters, per listener too.
func (s *StatsStore) Health(ctx context.Context) (store.Health, error) {
	return readHealth(ctx, s.db)
}

// CountEvents counts the raw events stored with a timestamp in [from, to).
func (s *StatsStore) CountEvents(ctx context.Context, from, to time.Time) (int64, error) {
	return countEvents(ctx, s.db, from, to)
}
