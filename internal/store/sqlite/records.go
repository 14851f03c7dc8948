package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Raw events at rest (store/record.go): packed ID, source address bytes
// and compact record, whose repeated strings are rows of event_strings.
//
// The writer's view of event_strings. Rows are added inside the batch's
// transaction, which may still roll back (a failed batch, an import
// rolled back): a reference to a row that was never committed, or whose
// number SQLite gave to another string afterwards, would make records
// unreadable. So the writer trusts only rows up to committed (read at
// the start of a transaction, or written by a transaction it saw commit)
// and reads the rows above it again at the start of every batch: that
// drops what a rollback undid and picks up what another process (an
// import run beside serve) added.
//
// An import holds one transaction for all its batches, and the write lock
// with it: nobody else adds rows meanwhile, and the rows it adds itself
// are in recent already (addStrings). So the import pins the view after
// its first read (held), and refresh does nothing until it commits or
// rolls back; reading the import's own rows again at every batch took a
// twentieth of a large import's CPU, and grew with it.
type writerStrings struct {
	base      map[string]uint64 // rows with id <= committed
	recent    map[string]uint64 // rows with id > committed, as of the batch
	committed uint64
	held      bool // recent is exact until the open transaction ends (an import)
}

func newWriterStrings() *writerStrings {
	return &writerStrings{base: map[string]uint64{}, recent: map[string]uint64{}}
}

func (w *writerStrings) ref(s string) (uint64, bool) {
	if r, ok := w.base[s]; ok {
		return r, true
	}
	r, ok := w.recent[s]
	return r, ok
}

// refresh rereads the rows above committed, inside the caller's
// transaction on conn.
func (w *writerStrings) refresh(ctx context.Context, conn *sql.Conn) error {
	if w.held {
		return nil
	}
	rows, err := conn.QueryContext(ctx, `SELECT id, s FROM event_strings WHERE id > ?`, int64(w.committed))
	if err != nil {
		return fmt.Errorf("read string table: %w", err)
	}
	defer rows.Close()
	clear(w.recent)
	for rows.Next() {
		var id int64
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			return fmt.Errorf("read string table: %w", err)
		}
		w.recent[s] = uint64(id)
	}
	return rows.Err()
}

// committedAll marks every row known as committed: called once the
// transaction that read or wrote them has committed.
func (w *writerStrings) committedAll() {
	w.held = false
	for s, r := range w.recent {
		w.base[s] = r
		w.committed = max(w.committed, r)
	}
	clear(w.recent)
}

// encodeEvents adds the strings of events missing from the table and
// returns the events' stored forms; inside the caller's transaction.
// jsonl are the events' JSON-lines records when the caller has them.
func (s *EventStore) encodeEvents(ctx context.Context, events []event.Event, jsonl [][]byte) ([]store.StoredEvent, error) {
	w := s.strs
	if err := w.refresh(ctx, s.conn); err != nil {
		return nil, err
	}
	// The events' strings first, then their templates, which refer to
	// them.
	if err := s.addStrings(ctx, store.MissingStrings(events, w.ref, store.MaxTableStrings-len(w.base)-len(w.recent))); err != nil {
		return nil, err
	}
	templates := store.Templates(events, w.ref)
	if err := s.addStrings(ctx, store.MissingTemplates(templates, w.ref, store.MaxTableStrings-len(w.base)-len(w.recent))); err != nil {
		return nil, err
	}
	return store.EncodeEventsWith(w.ref, events, jsonl, templates)
}

// addStrings adds strings to event_strings and to the writer's view,
// inside the caller's transaction.
func (s *EventStore) addStrings(ctx context.Context, missing []string) error {
	w := s.strs
	args := make([]any, 0, chunk)
	return eachChunk(len(missing), func(lo, hi int) error {
		args = args[:0]
		for _, str := range missing[lo:hi] {
			args = append(args, str)
		}
		rows, err := s.conn.QueryContext(ctx, fmt.Sprintf(`INSERT INTO event_strings (s) VALUES %s ON CONFLICT (s) DO NOTHING RETURNING id, s`, values(hi-lo, 1)), args...)
		if err != nil {
			return fmt.Errorf("add strings: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var str string
			if err := rows.Scan(&id, &str); err != nil {
				return fmt.Errorf("add strings: %w", err)
			}
			w.recent[str] = uint64(id)
		}
		return rows.Err()
	})
}

// loadStrings is the readers' StringTable.Load: rows are numbered in
// commit order (one writer at a time), so it reads every row above the
// highest it knows.
func (s *DB) loadStrings(ctx context.Context, t *store.StringTable, _ uint64) error {
	rows, err := s.db.QueryContext(ctx, `SELECT id, s FROM event_strings WHERE id > ?`, int64(t.MaxRef()))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var str string
		if err := rows.Scan(&id, &str); err != nil {
			return err
		}
		t.Add(uint64(id), str)
	}
	return rows.Err()
}

// strings returns the readers' string table of the database.
func (s *DB) strings() *store.StringTable {
	s.strsOnce.Do(func() { s.strs = store.NewStringTable(s.loadStrings) })
	return s.strs
}

// scanRecords runs q, which selects (seq, id, ts, record), and calls fn
// with each row's sequence number and JSON-lines record (byte for byte
// the one of the event stored).
func scanRecords(ctx context.Context, db *DB, q string, args []any, fn func(seq int64, rec []byte) error) error {
	rows, err := db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var lerr error
	lookup := db.strings().Lookup(ctx, &lerr)
	var (
		seq, ts int64
		id, rec []byte
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &id, &ts, &rec); err != nil {
			return err
		}
		out, err := store.DecodeRecord(id, ts, rec, lookup)
		if err != nil {
			if lerr != nil {
				return lerr
			}
			return fmt.Errorf("event at seq %d: %w", seq, err)
		}
		if err := fn(seq, out); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanDayEvents calls fn with every raw event of the UTC day starting at
// day whose source address lies in one of prefixes (every event of the
// day when prefixes is nil), found through the (day, ip) index: one
// range read per prefix, so a few thousand single addresses cost a few
// thousand index seeks, not a read of the day. Events stored before the
// address had its own column are read too and tested on their record.
// fn must not keep the event.
func scanDayEvents(ctx context.Context, db *DB, day time.Time, prefixes []netip.Prefix, fn func(*event.Event) error) error {
	d := store.DayOf(day)
	scan := func(q string, args ...any) error {
		st, err := db.stmt(ctx, q)
		if err != nil {
			return err
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return eachEvent(ctx, db, rows, func(_ int64, e *event.Event) error {
			if prefixes != nil && !covered(prefixes, e.SrcIP) {
				return nil
			}
			return fn(e)
		})
	}
	if prefixes == nil {
		if err := scan(`SELECT seq, id, ts, record FROM events WHERE day = ?`, d); err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
		return nil
	}
	if err := scan(`SELECT seq, id, ts, record FROM events WHERE day = ? AND ip IS NULL`, d); err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	for _, p := range prefixes {
		lo, hi := store.PrefixRange(p)
		if err := scan(`SELECT seq, id, ts, record FROM events WHERE day = ? AND ip BETWEEN ? AND ? AND length(ip) = ?`, d, lo, hi, len(lo)); err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
	}
	return nil
}

// eventsBySeq implements store.DetailReader over db: one rowid seek per
// number, in chunks of numbers sorted ascending.
func eventsBySeq(ctx context.Context, db *DB, seqs []int64, fn func(seq int64, e *event.Event) error) error {
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	const per = 512 // numbers per statement; a full one is prepared once
	args := make([]any, 0, per)
	var err error
	for lo := 0; lo < len(sorted) && err == nil; lo += per {
		err = func(lo, hi int) error {
			args = args[:0]
			for _, s := range sorted[lo:hi] {
				args = append(args, s)
			}
			q := `SELECT seq, id, ts, record FROM events WHERE seq IN (` + placeholders(hi-lo) + `) ORDER BY seq`
			var rows *sql.Rows
			if hi-lo == per {
				st, err := db.stmt(ctx, q)
				if err != nil {
					return err
				}
				rows, err = st.QueryContext(ctx, args...)
				if err != nil {
					return err
				}
			} else if rows, err = db.SQL().QueryContext(ctx, q, args...); err != nil {
				return err
			}
			defer rows.Close()
			return eachEvent(ctx, db, rows, fn)
		}(lo, min(lo+per, len(sorted)))
	}
	if err != nil {
		return fmt.Errorf("read events by number: %w", err)
	}
	return nil
}

// eachEvent calls fn with each event of rows, which select seq, id, ts,
// record. A record this version cannot read is skipped: it adds no detail
// to a report (whose key then has its other events read).
func eachEvent(ctx context.Context, db *DB, rows *sql.Rows, fn func(seq int64, e *event.Event) error) error {
	var lerr error
	lookup := db.strings().Lookup(ctx, &lerr)
	var (
		seq, ts int64
		id, rec sql.RawBytes // decoding keeps nothing of them
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &id, &ts, &rec); err != nil {
			return err
		}
		e, err := store.DecodeEventCached(id, ts, rec, lookup, &db.strings().Templates)
		if err != nil {
			if lerr != nil {
				return lerr
			}
			continue
		}
		if err := fn(seq, &e); err != nil {
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
