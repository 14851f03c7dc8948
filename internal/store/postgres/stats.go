package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// The analytics' reads (package stats): the hourly sets every collector
// maintains in its batches' transactions, the first day with raw events
// and the raw events of the cut hours of a window.
var (
	_ stats.Cache         = (*EventStore)(nil)
	_ stats.SetsCompactor = (*EventStore)(nil)
	_ stats.Sets          = (*EventStore)(nil)
	_ stats.RawEvents     = (*EventStore)(nil)
	_ stats.Source        = (*EventStore)(nil)
)

// statsMigrations is the analytics' part of the schema, applied after the
// events schema (migrate); append only.
var statsMigrations = []string{
	// The raw events of the at most two hours a window cuts are read
	// through this index (ScanEventSources), not by a scan of their day.
	`CREATE INDEX IF NOT EXISTS events_ts ON events (ts);`,
	// Blocks of closed days (internal/stats/blocks.go), keyed as SQLite's
	// stats_day_sets (internal/store/sqlite/schema_stats.go): a cache.
	`CREATE TABLE stats_day_sets (
		day BIGINT NOT NULL,
		part TEXT NOT NULL,
		fp BIGINT NOT NULL,
		data BYTEA NOT NULL,
		PRIMARY KEY (day, part)
	);`,
}

// SetsFrom implements stats.Sets.
func (s *EventStore) SetsFrom(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT sets_from FROM stats_sets_state WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read first day with sets: %w", err)
	}
	return v, nil
}

// LoadSets implements stats.Sets: one statement, so one snapshot.
func (s *EventStore) LoadSets(ctx context.Context, day int64, parts []string) (map[string][][]byte, error) {
	out := make(map[string][][]byte, len(parts))
	rows, err := s.pool.Query(ctx, `SELECT part, data FROM stats_sets WHERE day = $1 AND part = ANY($2) ORDER BY id`, day, parts)
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

// Fingerprints implements stats.Cache: the contacts aggregated per day,
// from the rollups.
func (s *EventStore) Fingerprints(ctx context.Context, from, to time.Time) (map[int64]uint64, error) {
	rows, err := s.pool.Query(ctx, `SELECT day, SUM(hits)::bigint FROM event_rollups WHERE day >= $1 AND day < $2 GROUP BY day`,
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
func (s *EventStore) LoadDayPart(ctx context.Context, day int64, part string, fp uint64) ([]byte, bool, error) {
	var b []byte
	var have int64
	err := s.pool.QueryRow(ctx, `SELECT fp, data FROM stats_day_sets WHERE day = $1 AND part = $2`, day, part).Scan(&have, &b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("load cached day sets: %w", err)
	}
	return b, uint64(have) == fp, nil
}

// SaveDay implements stats.Cache.
func (s *EventStore) SaveDay(ctx context.Context, day int64, fp uint64, parts map[string][]byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM stats_day_sets WHERE day = $1`, day); err != nil {
			return err
		}
		for part, b := range parts {
			if _, err := tx.Exec(ctx, `INSERT INTO stats_day_sets (day, part, fp, data) VALUES ($1, $2, $3, $4)
				ON CONFLICT (day, part) DO UPDATE SET fp = excluded.fp, data = excluded.data`, day, part, int64(fp), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save day sets: %w", err)
	}
	return nil
}

// RawFrom implements stats.Sets: a seek at the start of the events' key.
func (s *EventStore) RawFrom(ctx context.Context) (int64, bool, error) {
	var d *int64
	if err := s.pool.QueryRow(ctx, `SELECT MIN(day) FROM events`).Scan(&d); err != nil {
		return 0, false, fmt.Errorf("first day with raw events: %w", err)
	}
	if d == nil {
		return 0, false, nil
	}
	return *d, true, nil
}

// ScanEventSources implements stats.RawEvents, through the events' ts
// index.
func (s *EventStore) ScanEventSources(ctx context.Context, from, to time.Time, fn func(netip.Addr, string, store.Protocols) error) error {
	rows, err := s.pool.Query(ctx, `SELECT record FROM events WHERE ts >= $1 AND ts < $2`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("scan raw events: %w", err)
	}
	defer rows.Close()
	var lerr error
	lookup := s.strings().Lookup(ctx, &lerr)
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&rec); err != nil {
			return fmt.Errorf("scan raw events: %w", err)
		}
		e, err := store.DecodeSource(rec, lookup)
		if err != nil {
			return fmt.Errorf("scan raw events: decode record: %w", errors.Join(lerr, err))
		}
		if err := fn(e.SrcIP.Unmap(), e.Family, store.EventBits(&e)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// writeSets adds what the aggregates touched bring to the hourly sets, in
// the batch's transaction, and merges the parts whose blobs piled up. Of
// collectors finding the same part to merge, one does (an advisory lock
// tried, not waited for); a merge that raced a write loses nothing, since
// adding an address twice changes nothing.
func writeSets(ctx context.Context, tx pgx.Tx, touched []store.Touched) error {
	if len(touched) == 0 {
		return nil
	}
	var x stats.SetDelta
	x.Add(touched)
	parts, err := x.Parts()
	if err != nil {
		return err
	}
	n := len(parts)
	days, names, data := make([]int64, n), make([]string, n), make([][]byte, n)
	for i, p := range parts {
		days[i], names[i], data[i] = p.Day, p.Part, p.Data
	}
	if _, err := tx.Exec(ctx, `INSERT INTO stats_sets (day, part, data) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])`, days, names, data); err != nil {
		return fmt.Errorf("write sets: %w", err)
	}
	// The sizes of the touched parts' blobs (octet_length does not fetch
	// a TOASTed value), to merge their newest ones as stats.MergeFrom says.
	rows, err := tx.Query(ctx, `SELECT s.day, s.part, s.id, octet_length(s.data) FROM stats_sets s
		JOIN unnest($1::bigint[], $2::text[]) AS w(day, part) ON s.day = w.day AND s.part = w.part
		ORDER BY s.day, s.part, s.id`, days, names)
	if err != nil {
		return fmt.Errorf("write sets: %w", err)
	}
	type merge struct {
		stats.SetPart
		first int64
	}
	var todo []merge
	var cur stats.SetPart
	var ids []int64
	var sizes []int
	flush := func() {
		if j := stats.MergeFrom(sizes); j < len(ids) {
			todo = append(todo, merge{cur, ids[j]})
		}
		ids, sizes = ids[:0], sizes[:0]
	}
	for rows.Next() {
		var p stats.SetPart
		var id int64
		var n int
		if err := rows.Scan(&p.Day, &p.Part, &id, &n); err != nil {
			rows.Close()
			return fmt.Errorf("write sets: %w", err)
		}
		if len(ids) > 0 && (p.Day != cur.Day || p.Part != cur.Part) {
			flush()
		}
		cur = p
		ids, sizes = append(ids, id), append(sizes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("write sets: %w", err)
	}
	flush()
	for _, m := range todo {
		if err := compactSets(ctx, tx, m.Day, m.Part, m.first); err != nil {
			return err
		}
	}
	return nil
}

// CompactClosedDays implements stats.SetsCompactor: a transaction per
// part; a part another node is merging is left to it.
func (s *EventStore) CompactClosedDays(ctx context.Context, before int64) (int, error) {
	type part struct {
		day   int64
		part  string
		first int64
	}
	rows, err := s.pool.Query(ctx, `SELECT day, part, MIN(id) FROM stats_sets WHERE day < $1 GROUP BY day, part HAVING COUNT(*) > 1`, before)
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
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return compactSets(ctx, tx, p.day, p.part, p.first) })
		if err != nil {
			return i, err
		}
	}
	return len(todo), nil
}

// compactSets merges the committed blobs of one part from id first on
// into one, unless another collector is at it.
func compactSets(ctx context.Context, tx pgx.Tx, day int64, part string, first int64) error {
	var mine bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1::int, hashtext($2))`, int32(day/86400), part).Scan(&mine); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	if !mine {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id, data FROM stats_sets WHERE day = $1 AND part = $2 AND id >= $3 ORDER BY id`, day, part, first)
	if err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	var ids []int64
	var blobs [][]byte
	for rows.Next() {
		var id int64
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			rows.Close()
			return fmt.Errorf("merge sets: %w", err)
		}
		ids, blobs = append(ids, id), append(blobs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	merged, err := stats.MergeSetBlobs(blobs)
	if err != nil {
		return fmt.Errorf("merge sets of day %d part %s: %w", day, part, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM stats_sets WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO stats_sets (day, part, data) VALUES ($1, $2, $3)`, day, part, merged); err != nil {
		return fmt.Errorf("merge sets: %w", err)
	}
	return nil
}
