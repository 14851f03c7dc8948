package postgres

import (
	"context"
	"fmt"
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
// Several collectors write at once, so a batch takes its strings' numbers
// from the database inside its own transaction: it adds the strings it
// needs (ON CONFLICT DO NOTHING, in sorted order so that two collectors
// adding the same new strings cannot deadlock) and reads their numbers
// back. Nothing is cached across transactions on the write side, so a
// rolled-back transaction can leave no reference behind; a row it added
// and that rolled back is simply not there. Sequence numbers are never
// reused, so a number read once always means the same string.

// batchStrings adds the table strings of events to event_strings in tx and
// returns their numbers.
func batchStrings(ctx context.Context, tx pgx.Tx, events []event.Event) (map[string]uint64, error) {
	refs := map[string]uint64{}
	known := func(s string) (uint64, bool) { r, ok := refs[s]; return r, ok }
	// The events' strings first, then their templates, which refer to
	// them.
	if err := addStrings(ctx, tx, store.MissingStrings(events, known, store.MaxTableStrings), refs); err != nil {
		return nil, err
	}
	if err := addStrings(ctx, tx, store.MissingTemplates(events, known, store.MaxTableStrings), refs); err != nil {
		return nil, err
	}
	return refs, nil
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

// encodeEventsTx returns the stored forms of events, inside tx.
func encodeEventsTx(ctx context.Context, tx pgx.Tx, events []event.Event, jsonl [][]byte) ([]store.StoredEvent, error) {
	refs, err := batchStrings(ctx, tx, events)
	if err != nil {
		return nil, err
	}
	return store.EncodeEventsWith(func(s string) (uint64, bool) { r, ok := refs[s]; return r, ok }, events, jsonl)
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
