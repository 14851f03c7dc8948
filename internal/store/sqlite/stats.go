package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
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
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT record FROM events WHERE `+sqlTimeRange, timeRange(from, to)...)
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

var _ stats.Sets = (*StatsStore)(nil)

// SetsFrom implements stats.Sets.
func (s *StatsStore) SetsFrom(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.SQL().QueryRowContext(ctx, `SELECT sets_from FROM stats_sets_state WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read first day with sets: %w", err)
	}
	return v, nil
}

// RawFrom implements stats.Sets: a seek at the start of the events'
// (day, ts, id) index.
func (s *StatsStore) RawFrom(ctx context.Context) (int64, bool, error) {
	var d sql.NullInt64
	if err := s.db.SQL().QueryRowContext(ctx, `SELECT MIN(day) FROM events`).Scan(&d); err != nil {
		return 0, false, fmt.Errorf("first day with raw events: %w", err)
	}
	return d.Int64, d.Valid, nil
}

// LoadSets implements stats.Sets: one statement, so one snapshot of the
// writer's transactions.
func (s *StatsStore) LoadSets(ctx context.Context, day int64, parts []string) (map[string][][]byte, error) {
	out := make(map[string][][]byte, len(parts))
	if len(parts) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(parts)+1)
	args = append(args, day)
	for _, p := range parts {
		args = append(args, p)
	}
	q := `SELECT part, data FROM stats_sets WHERE day = ? AND part IN (?` + strings.Repeat(",?", len(parts)-1) + `) ORDER BY id`
	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("load sets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var part string
		var b []byte
		if err := rows.Scan(&part, &b); err != nil {
			return nil, fmt.Errorf("load sets: %w", err)
		}
		out[part] = append(out[part], b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load sets: %w", err)
	}
	return out, nil
}

// sqlConn is what the set writer needs of the writer's connection.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writeSets adds what the aggregates touched bring to the hourly sets, in
// the writer's transaction on c, and merges the parts whose blobs piled
// up.
func writeSets(ctx context.Context, c sqlConn, touched []store.Touched) error {
	if len(touched) == 0 {
		return nil
	}
	var x stats.SetDelta
	x.Add(touched)
	parts, err := x.Parts()
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := c.ExecContext(ctx, `INSERT INTO stats_sets (day, part, data) VALUES (?, ?, ?)`, p.Day, p.Part, p.Data); err != nil {
			return fmt.Errorf("write sets: %w", err)
		}
		if err := compactSets(ctx, c, p.Day, p.Part); err != nil {
			return err
		}
	}
	return nil
}

// compactSets merges the newest blobs of one part into one when
// stats.MergeFrom says so (their sizes only are read: length() of a blob
// does not load it).
func compactSets(ctx context.Context, c sqlConn, day int64, part string) error {
	rows, err := c.QueryContext(ctx, `SELECT id, length(data) FROM stats_sets WHERE day = ? AND part = ? ORDER BY id`, day, part)
	if err != nil {
		return fmt.Errorf("write sets: %w", err)
	}
	var ids []int64
	var sizes []int
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return fmt.Errorf("write sets: %w", err)
		}
		ids, sizes = append(ids, id), append(sizes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("write sets: %w", err)
	}
	j := stats.MergeFrom(sizes)
	if j >= len(ids) {
		return nil
	}
	return mergeSets(ctx, c, day, part, ids[j])
}

// CompactClosedDays implements stats.SetsCompactor: a transaction per
// part, so that the event writer waits at most one part's merge.
func (s *StatsStore) CompactClosedDays(ctx context.Context, before int64) (int, error) {
	type part struct {
		day   int64
		part  string
		first int64
	}
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT day, part, MIN(id) FROM stats_sets WHERE day < ? GROUP BY day, part HAVING COUNT(*) > 1`, before)
	if err != nil {
		return 0, fmt.Errorf("merge sets: %w", err)
	}
	var todo []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.day, &p.part, &p.first); err != nil {
			rows.Close()
			return 0, fmt.Errorf("merge sets: %w", err)
		}
		todo = append(todo, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("merge sets: %w", err)
	}
	for i, p := range todo {
		tx, err := s.db.SQL().BeginTx(ctx, nil)
		if err != nil {
			return i, fmt.Errorf("merge sets: %w", err)
		}
		if err := mergeSets(ctx, tx, p.day, p.part, p.first); err != nil {
			tx.Rollback() //nolint:errcheck // the merge's error is the one to report
			return i, err
		}
		if err := tx.Commit(); err != nil {
			return i, fmt.Errorf("merge sets: %w", err)
		}
	}
	return len(todo), nil
}

// CompactClosedDays implements stats.SetsCompactor.
func (s *EventStore) CompactClosedDays(ctx context.Context, before int64) (int, error) {
	return NewStatsStore(s.db).CompactClosedDays(ctx, before)
}

// mergeSets merges the blobs of one part from id first on into one.
func mergeSets(ctx context.Context, c sqlConn, day int64, part string, first int64) error {
	rows, err := c.QueryContext(ctx, `SELECT id, data FROM stats_sets WHERE day = ? AND part = ? AND id >= ? ORDER BY id`, day, part, first)
	if err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	var blobs [][]byte
	var last int64
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&last, &b); err != nil {
			rows.Close()
			return fmt.Errorf("merge sets: %w", err)
		}
		blobs = append(blobs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	merged, err := stats.MergeSetBlobs(blobs)
	if err != nil {
		return fmt.Errorf("merge sets of day %d part %s: %w", day, part, err)
	}
	if _, err := c.ExecContext(ctx, `DELETE FROM stats_sets WHERE day = ? AND part = ? AND id >= ? AND id <= ?`, day, part, first, last); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	if _, err := c.ExecContext(ctx, `INSERT INTO stats_sets (day, part, data) VALUES (?, ?, ?)`, day, part, merged); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	return nil
}

// The event store reads its own hourly sets and raw events too, so that
// the one conformance suite (storetest) checks them on every backend.
var (
	_ stats.Sets          = (*EventStore)(nil)
	_ stats.RawEvents     = (*EventStore)(nil)
	_ stats.SetsCompactor = (*EventStore)(nil)
	_ stats.SetsCompactor = (*StatsStore)(nil)
)

// SetsFrom implements stats.Sets.
func (s *EventStore) SetsFrom(ctx context.Context) (int64, error) {
	return NewStatsStore(s.db).SetsFrom(ctx)
}

// RawFrom implements stats.Sets.
func (s *EventStore) RawFrom(ctx context.Context) (int64, bool, error) {
	return NewStatsStore(s.db).RawFrom(ctx)
}

// LoadSets implements stats.Sets.
func (s *EventStore) LoadSets(ctx context.Context, day int64, parts []string) (map[string][][]byte, error) {
	return NewStatsStore(s.db).LoadSets(ctx, day, parts)
}

// ScanEventSources implements stats.RawEvents.
func (s *EventStore) ScanEventSources(ctx context.Context, from, to time.Time, fn func(netip.Addr, string, store.Protocols) error) error {
	return NewStatsStore(s.db).ScanEventSources(ctx, from, to, fn)
}
