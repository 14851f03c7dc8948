package postgres

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Raw events at rest, as on SQLite (store/record.go): packed ID, source
// address bytes and compact record, whose repeated strings are rows of
// event_strings.
//
// Several collectors write at once. A batch's new strings are added in a
// short transaction of their own, committed before the batch's (ON
// CONFLICT DO NOTHING, in sorted order so that two collectors adding the
// same new strings cannot deadlock), and their numbers are then kept in
// the writer's cache for good: a string row is never deleted and sequence
// numbers are never reused, so a number read once from a committed row
// always means the same string, whatever becomes of the batch that needed
// it (a rolled-back batch leaves an unused row, which costs nothing).
// Adding them inside the batch's transaction, as this store first did,
// made a second collector meeting the same new string wait for the first
// one's whole batch to commit (bench/collectors_postgres measured a fifth
// of the second collector's time in those waits), and made every batch
// query the table again.

// writerStrings is the writer's cache of committed strings' numbers.
type writerStrings struct {
	mu sync.RWMutex
	m  map[string]uint64
}

func (w *writerStrings) lookup(s string) (uint64, bool) {
	w.mu.RLock()
	r, ok := w.m[s]
	w.mu.RUnlock()
	return r, ok
}

// commitStrings adds the table strings of events that the cache does not
// hold to event_strings, each in a transaction of its own, and caches
// their numbers; it returns the events' templates (store.Templates).
func (s *EventStore) commitStrings(ctx context.Context, events []event.Event) ([]string, error) {
	w := &s.wstrs
	add := func(strs []string) error {
		if len(strs) == 0 {
			return nil
		}
		refs := map[string]uint64{}
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return addStrings(ctx, tx, strs, refs) }); err != nil {
			return err
		}
		w.mu.Lock()
		maps.Copy(w.m, refs)
		w.mu.Unlock()
		return nil
	}
	// The events' strings first, then their templates, which refer to
	// them.
	if err := add(store.MissingStrings(events, w.lookup, store.MaxTableStrings)); err != nil {
		return nil, err
	}
	templates := store.Templates(events, w.lookup)
	return templates, add(store.MissingTemplates(templates, w.lookup, store.MaxTableStrings))
}

// addStrings adds strs to event_strings in tx and their numbers to refs.
func addStrings(ctx context.Context, tx pgx.Tx, strs []string, refs map[string]uint64) error {
	if len(strs) == 0 {
		return nil
	}
	slices.Sort(strs)
	if _, err := tx.Exec(ctx, `INSERT INTO event_strings (s) SELECT unnest($1::text[]) ON CONFLICT (s) DO NOTHING`, strs); err != nil {
		return fmt.Errorf("add strings: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT id, s FROM event_strings WHERE s = ANY($1::text[])`, strs)
	if err != nil {
		return fmt.Errorf("read strings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			return fmt.Errorf("read strings: %w", err)
		}
		refs[s] = uint64(id)
	}
	return rows.Err()
}

// encodeEvents returns the stored forms of events, their strings
// committed first (commitStrings).
func (s *EventStore) encodeEvents(ctx context.Context, events []event.Event, jsonl [][]byte) ([]store.StoredEvent, error) {
	templates, err := s.commitStrings(ctx, events)
	if err != nil {
		return nil, err
	}
	return store.EncodeEventsWith(s.wstrs.lookup, events, jsonl, templates)
}

// readerStrings is the readers' string table of a store, loaded on demand.
type readerStrings struct {
	once sync.Once
	t    *store.StringTable
}

func (s *EventStore) strings() *store.StringTable {
	s.strs.once.Do(func() {
		s.strs.t = store.NewStringTable(func(ctx context.Context, t *store.StringTable, ref uint64) error {
			var str string
			if err := s.pool.QueryRow(ctx, `SELECT s FROM event_strings WHERE id = $1`, int64(ref)).Scan(&str); err != nil {
				return err
			}
			t.Add(ref, str)
			return nil
		})
	})
	return s.strs.t
}

// ScanDayEvents calls fn with the raw events of the UTC day starting at
// day whose source address lies in one of prefixes (every event of the
// day when prefixes is nil), through the (day, ip) index; rows stored
// before the address had its column are read and tested on their record.
// fn must not keep the event.
func (s *EventStore) ScanDayEvents(ctx context.Context, day time.Time, prefixes []netip.Prefix, fn func(*event.Event) error) error {
	d := store.DayOf(day)
	q := `SELECT id, ts, record FROM events WHERE day = $1`
	args := []any{d}
	if prefixes != nil {
		q += ` AND (ip IS NULL`
		for _, p := range prefixes {
			lo, hi := store.PrefixRange(p)
			args = append(args, lo, hi)
			q += fmt.Sprintf(` OR (ip BETWEEN $%d AND $%d AND length(ip) = %d)`, len(args)-1, len(args), len(lo))
		}
		q += `)`
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	defer rows.Close()
	var lerr error
	lookup := s.strings().Lookup(ctx, &lerr)
	var (
		id, rec []byte
		ts      int64
	)
	for rows.Next() {
		if err := rows.Scan(&id, &ts, &rec); err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
		e, err := store.DecodeEventCached(id, ts, rec, lookup, &s.strings().Templates)
		if err != nil {
			if lerr != nil {
				return lerr
			}
			return fmt.Errorf("scan events: %w", err)
		}
		if prefixes != nil && !covered(prefixes, e.SrcIP) {
			continue
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

func covered(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
