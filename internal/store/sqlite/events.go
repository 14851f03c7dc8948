package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Durability of a committed batch. The opener runs SQLite in WAL mode with
// synchronous=NORMAL: a committed transaction is in the WAL file (in the
// operating system's page cache) before Commit returns, so it survives the
// process being killed (kill -9, a crash, an OOM kill); only a power loss
// or kernel crash can undo the last transactions before the next
// checkpoint. FullSync (synchronous=FULL) fsyncs the WAL on every commit
// and makes a batch survive power loss too, at the cost of one fsync per
// batch.

// Aggregates. Upserting a batch's keys into a table of millions of
// (day, IP, family) rows touches a different page for almost every key, and
// SQLite writes each touched page to the WAL on commit: per batch, that is
// megabytes written for kilobytes of change. So the store keeps the
// aggregate deltas of committed batches in memory and writes them in one
// sorted run per FlushEvery (or when MaxPending keys are held), with the
// rowid of the last event they include (the watermark) in the same
// transaction. On open, events after the watermark are aggregated again:
// a crash loses no aggregate and counts none twice.

// EventStoreOptions configures an EventStore.
type EventStoreOptions struct {
	// FullSync makes every committed batch survive power loss, not only a
	// killed process (see above).
	FullSync bool
	// FlushEvery is the longest time aggregates lag the stored events
	// under load (default 30s); WriteBatch flushes when it has passed. The
	// longer it is, the more events each aggregate row write covers (a
	// source beaconing every minute is written once per run, not once per
	// beacon), and the more events a restart after a crash re-aggregates.
	FlushEvery time.Duration
	// MaxPending is the most (day, IP, family) keys held before a flush
	// (default 1,000,000, about 150 MB).
	MaxPending int
	// CheckpointEvery is how often the store's goroutine checkpoints the
	// WAL (checkpoint.go; default 1s).
	CheckpointEvery time.Duration
	Now             func() time.Time
}

// EventStore is the SQLite store.EventStore, in the same database as the
// rest of the embedded store. Writes go through one connection, one
// transaction per batch.
type EventStore struct {
	db    *DB
	opts  EventStoreOptions
	mu    sync.Mutex // serialises writers on conn; guards all below
	conn  *sql.Conn
	stmts map[stmtKey]*sql.Stmt // multi-row statements prepared on conn

	pending   store.Aggregator // deltas of committed events not yet flushed
	watermark int64            // rowid of the last event in pending (or flushed)
	lastFlush time.Time

	// known holds, for the latest two days, a hash of every (ip, family)
	// key already in event_day_ip: a key not in it is new unless another
	// writer added it, and is written with INSERT OR IGNORE, much cheaper
	// than an upsert (upsertAggregates). A hash
	// collision only sends a new key down the upsert path.
	known     map[int64]map[uint64]struct{}
	seed      maphash.Seed
	latestDay int64

	strs *writerStrings // the writer's view of event_strings (records.go)
	ckpt *checkpointer
}

type stmtKey struct {
	query string
	rows  int
}

var _ store.EventStore = (*EventStore)(nil)

// NewEventStore returns the event store of db. Close it before db.
func NewEventStore(ctx context.Context, db *DB, opts EventStoreOptions) (*EventStore, error) {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("event store connection: %w", err)
	}
	// A large page cache for the writer: aggregate upserts touch index
	// pages all over the tables, and rereading them costs a syscall each.
	// The WAL is checkpointed by the store's own goroutine (checkpoint.go).
	for _, pragma := range []string{`PRAGMA cache_size=-131072`, `PRAGMA temp_store=MEMORY`, `PRAGMA wal_autocheckpoint=0`} {
		if _, err := conn.ExecContext(ctx, pragma); err != nil {
			conn.Close()
			return nil, fmt.Errorf("event store %s: %w", pragma, err)
		}
	}
	if opts.FullSync {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous=FULL`); err != nil {
			conn.Close()
			return nil, fmt.Errorf("event store synchronous=FULL: %w", err)
		}
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 30 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1_000_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = time.Second
	}
	s := &EventStore{db: db, opts: opts, conn: conn, stmts: make(map[stmtKey]*sql.Stmt), lastFlush: opts.Now(),
		known: make(map[int64]map[uint64]struct{}), seed: maphash.MakeSeed(), strs: newWriterStrings()}
	if err := s.recover(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	s.ckpt = startCheckpointer(db, opts.CheckpointEvery)
	return s, nil
}

// recover aggregates the events stored after the watermark (the batches
// committed before a crash whose aggregates were still in memory).
func (s *EventStore) recover(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.conn.QueryRowContext(ctx, `SELECT watermark FROM event_aggregate_state WHERE id = 1`).Scan(&s.watermark); err != nil {
		return fmt.Errorf("read aggregate watermark: %w", err)
	}
	rows, err := s.conn.QueryContext(ctx, `SELECT rowid, id, ts, record FROM events WHERE rowid > ? ORDER BY rowid`, s.watermark)
	if err != nil {
		return fmt.Errorf("recover aggregates: %w", err)
	}
	defer rows.Close()
	var buf []event.Event
	var seqs []int64
	var lerr error
	lookup := s.db.strings().Lookup(ctx, &lerr)
	for rows.Next() {
		var id, rec []byte
		var ts int64
		if err := rows.Scan(&s.watermark, &id, &ts, &rec); err != nil {
			return fmt.Errorf("recover aggregates: %w", err)
		}
		e, err := store.DecodeEvent(id, ts, rec, lookup)
		if err != nil {
			err = errors.Join(lerr, err)
			return fmt.Errorf("recover aggregates: event at rowid %d: %w", s.watermark, err)
		}
		buf, seqs = append(buf, e), append(seqs, s.watermark)
		if len(buf) == 4096 {
			s.pending.AddSeq(buf, seqs)
			buf, seqs = buf[:0], seqs[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("recover aggregates: %w", err)
	}
	rows.Close()
	s.pending.AddSeq(buf, seqs)
	return s.flushLocked(ctx)
}

// Flush implements store.EventStore.
func (s *EventStore) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked(ctx)
}

// PendingAggregates returns the number of (day, IP, family) keys held in
// memory and not yet flushed: 0 means every stored event counts in the
// aggregates (the pipeline's accept-to-visible histogram asks).
func (s *EventStore) PendingAggregates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.Len()
}

func (s *EventStore) flushLocked(ctx context.Context) error {
	s.lastFlush = s.opts.Now()
	if s.pending.Len() == 0 {
		return nil
	}
	deltas := s.pending.Take()
	err := s.inTx(ctx, func() error {
		if err := s.upsertAggregates(ctx, deltas); err != nil {
			return err
		}
		if _, err := s.conn.ExecContext(ctx, `UPDATE event_aggregate_state SET watermark = ? WHERE id = 1`, s.watermark); err != nil {
			return fmt.Errorf("update aggregate watermark: %w", err)
		}
		return nil
	})
	if err != nil {
		// Keep the deltas for the next try; nothing was written. The
		// known sets may have been loaded in the failed transaction:
		// start them afresh.
		s.pending.AddDeltas(deltas)
		clear(s.known)
		return fmt.Errorf("flush aggregates: %w", err)
	}
	for i := range deltas {
		if set := s.known[deltas[i].Key.Day]; set != nil {
			set[s.keyHash(&deltas[i].Key)] = struct{}{}
		}
	}
	return nil
}

func (s *EventStore) keyHash(k *store.DayKey) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	b := k.IP.As16()
	h.Write(b[:])
	h.WriteString(k.Family)
	return h.Sum64()
}

// knownSet returns the key set of day, loading it from the table the first
// time, or nil for a day older than the two latest (imports of old data),
// whose keys all take the upsert path. Callers hold s.mu.
func (s *EventStore) knownSet(ctx context.Context, day int64) (map[uint64]struct{}, error) {
	if day > s.latestDay {
		s.latestDay = day
		for d := range s.known {
			if d < day-86400 {
				delete(s.known, d)
			}
		}
	}
	if day < s.latestDay-86400 {
		return nil, nil
	}
	if set, ok := s.known[day]; ok {
		return set, nil
	}
	rows, err := s.conn.QueryContext(ctx, `SELECT ip, family FROM event_day_ip WHERE day = ?`, day)
	if err != nil {
		return nil, fmt.Errorf("load aggregate keys: %w", err)
	}
	defer rows.Close()
	set := make(map[uint64]struct{})
	for rows.Next() {
		var ip []byte
		var k store.DayKey
		if err := rows.Scan(&ip, &k.Family); err != nil {
			return nil, fmt.Errorf("load aggregate keys: %w", err)
		}
		k.IP, _ = netip.AddrFromSlice(ip)
		set[s.keyHash(&k)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load aggregate keys: %w", err)
	}
	s.known[day] = set
	return set, nil
}

// inTx runs fn in one immediate transaction on the writer connection. The
// transaction is run by hand so that the cached statements run on the
// connection directly (database/sql would re-prepare them for a *sql.Tx).
func (s *EventStore) inTx(ctx context.Context, fn func() error) error {
	if _, err := s.conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(); err != nil {
		s.conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`) //nolint:errcheck // fn's error is what matters
		return err
	}
	if _, err := s.conn.ExecContext(ctx, `COMMIT`); err != nil {
		s.conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`) //nolint:errcheck // the commit error is what matters
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close releases the writer connection.
func (s *EventStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ferr := s.flushLocked(context.Background())
	for _, st := range s.stmts {
		st.Close()
	}
	s.ckpt.close()
	return errors.Join(ferr, s.conn.Close())
}

// stmt returns query (with one %s for the VALUES list) for rows rows of
// cols values, prepared on the writer connection. Statements for full
// chunks are kept; others are closed by done. Callers hold s.mu.
func (s *EventStore) stmt(ctx context.Context, query string, rows, cols int) (st *sql.Stmt, done func(), err error) {
	k := stmtKey{query, rows}
	if st, ok := s.stmts[k]; ok {
		return st, func() {}, nil
	}
	st, err = s.conn.PrepareContext(ctx, fmt.Sprintf(query, values(rows, cols)))
	if err != nil {
		return nil, nil, err
	}
	if rows == chunk {
		s.stmts[k] = st
		return st, func() {}, nil
	}
	return st, func() { st.Close() }, nil
}

// Rows per multi-row statement: fewer, larger statements cost far less
// per row than one statement per row.
const chunk = 128

const (
	// OR IGNORE, not ON CONFLICT DO NOTHING: the latter keeps NOT NULL's
	// ABORT, so SQLite copied every page the multi-row statement touched to
	// a statement journal, to undo it half way (a twelfth of an import's
	// CPU). No value bound here is ever NULL (int64s and non-nil []bytes;
	// ip may be NULL anyway), so the only conflict OR IGNORE can meet is
	// the one it is for: an event already stored.
	sqlInsertEvents = `INSERT OR IGNORE INTO events (day, id, ts, ip, record) VALUES %s`
	sqlUpsertDayIPs = `INSERT INTO event_day_ip (day, ip, family, case_id, country, asn, org, org_ref, first_seen, last_seen, hits, protocols, bot_ids, detail, detail_rank)
		VALUES %s
		ON CONFLICT (day, ip, family) DO UPDATE SET
			-- store.Delta.FoldDetail; a key from before details (-2) stays so
			detail = CASE
				WHEN detail = -2 OR excluded.detail_rank < detail_rank THEN detail
				WHEN excluded.detail_rank > detail_rank THEN excluded.detail
				WHEN detail_rank > 0 THEN -1
				ELSE detail END,
			detail_rank = max(detail_rank, excluded.detail_rank),
			first_seen = min(first_seen, excluded.first_seen),
			last_seen = max(last_seen, excluded.last_seen),
			hits = hits + excluded.hits,
			prev_protocols = protocols,
			protocols = protocols | excluded.protocols
		RETURNING day, ip, family, case_id, country, asn, protocols, prev_protocols, bot_ids`
	// OR IGNORE, for the reason sqlInsertEvents gives (a plain INSERT
	// needed a savepoint or a statement journal per statement, a twentieth
	// of an import's CPU); RETURNING tells which keys it inserted.
	sqlInsertDayIPs = `INSERT OR IGNORE INTO event_day_ip (day, ip, family, case_id, country, asn, org, org_ref, first_seen, last_seen, hits, protocols, bot_ids, detail, detail_rank) VALUES %s
		RETURNING day, ip, family`
	sqlSetBotIDs     = `UPDATE event_day_ip SET bot_ids = ? WHERE day = ? AND ip = ? AND family = ?`
	sqlUpsertRollups = `INSERT INTO event_rollups (day, country, asn, family, case_id, ips, resolver_ips, hits)
		VALUES %s
		ON CONFLICT (day, country, asn, family, case_id) DO UPDATE SET
			ips = ips + excluded.ips,
			resolver_ips = resolver_ips + excluded.resolver_ips,
			hits = hits + excluded.hits`
	sqlAddHealth     = `UPDATE event_health SET received = received + ?, stored = stored + ?, dropped = dropped + ?, summarised = summarised + ? WHERE id = 1`
	sqlAddSummarised = `INSERT INTO event_day_summarised (day, contacts) VALUES (?, ?)
		ON CONFLICT (day) DO UPDATE SET contacts = contacts + excluded.contacts`
	sqlAddListenerHealth = `INSERT INTO event_listener_health (name, received, stored, dropped) VALUES %s
		ON CONFLICT (name) DO UPDATE SET
			received = received + excluded.received,
			stored = stored + excluded.stored,
			dropped = dropped + excluded.dropped`
)

// values returns "(?,…),(?,…)…": rows groups of cols placeholders.
func values(rows, cols int) string {
	one := "(" + strings.Repeat("?,", cols-1) + "?)"
	return strings.Repeat(one+",", rows-1) + one
}

// eachChunk calls fn with the statement for n rows of cols values, in
// chunks of at most chunk rows.
func eachChunk(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += chunk {
		if err := fn(lo, min(lo+chunk, n)); err != nil {
			return err
		}
	}
	return nil
}

type eventKey struct {
	day int64
	id  string // packed (event.PackID)
}

// WriteBatch implements store.EventStore.
func (s *EventStore) WriteBatch(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	for i := range b.Events {
		if err := store.CheckEvent(&b.Events[i]); err != nil {
			return res, err
		}
	}
	// Encode before taking the lock and the transaction.
	records, err := b.EncodeRecords()
	if err != nil {
		return res, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var ins inserted
	err = s.inTx(ctx, func() error {
		var err error
		ins, err = s.insertBatch(ctx, b, records)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("store batch: %w", err)
	}
	s.strs.committedAll()
	// Committed: fold the newly inserted events into the pending
	// aggregates.
	s.watermark = max(s.watermark, ins.maxSeq)
	s.pending.AddSeq(ins.freshOnly(b.Events))
	if s.pending.Len() >= s.opts.MaxPending || s.opts.Now().Sub(s.lastFlush) >= s.opts.FlushEvery {
		// The batch is stored whatever happens here: a failed flush keeps
		// the deltas for the next one.
		s.flushLocked(ctx) //nolint:errcheck // retried on the next batch, Flush or Close
	}
	return ins.result(), nil
}

// inserted is what insertBatch did: the sequence numbers of the batch's
// events (0 for those already stored), which of them it inserted (made
// once from seqs), how many, and the number of the last one (0: none).
type inserted struct {
	seqs   []int64
	fresh  []bool
	n      int
	maxSeq int64
}

// freshOnly returns the events insertBatch inserted, and their sequence
// numbers.
func (ins *inserted) freshOnly(events []event.Event) ([]event.Event, []int64) {
	if ins.n == len(events) {
		return events, ins.seqs
	}
	fe, fs := make([]event.Event, 0, ins.n), make([]int64, 0, ins.n)
	for i := range events {
		if ins.fresh[i] {
			fe, fs = append(fe, events[i]), append(fs, ins.seqs[i])
		}
	}
	return fe, fs
}

// result is the batch's store.BatchResult.
func (ins *inserted) result() store.BatchResult {
	res := store.BatchResult{Inserted: ins.n, Duplicates: len(ins.seqs) - ins.n}
	if len(ins.seqs) > 0 {
		res.Fresh = ins.fresh
	}
	return res
}

// insertBatch inserts b's events (records are their encoded records) and
// moves the health counters, inside the transaction the caller opened on
// the writer connection: WriteBatch's, or an import's (import.go).
// Callers hold s.mu.
func (s *EventStore) insertBatch(ctx context.Context, b *store.Batch, records [][]byte) (inserted, error) {
	seqs := make([]int64, len(b.Events))
	var count int
	var maxSeq int64 // the last number before this batch, then of its last insert
	if err := s.conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&maxSeq); err != nil {
		return inserted{}, fmt.Errorf("insert events: %w", err)
	}
	stored, err := s.encodeEvents(ctx, b.Events, records)
	if err != nil {
		return inserted{}, fmt.Errorf("insert events: %w", err)
	}
	args := make([]any, 0, chunk*5)
	err = eachChunk(len(b.Events), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			se := &stored[i]
			args = append(args, se.Day, se.ID, se.TS, se.IP, se.Record)
		}
		st, done, err := s.stmt(ctx, sqlInsertEvents, hi-lo, 5)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		defer done()
		r, err := st.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		if n == 0 {
			return nil
		}
		last, err := r.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		count += int(n)
		prev := maxSeq
		maxSeq = last
		if int(n) == hi-lo {
			// The common case: every row was new, numbered in order up
			// to last (not from prev: AUTOINCREMENT spends numbers on
			// rows an earlier statement found stored).
			for i := lo; i < hi; i++ {
				seqs[i] = last - int64(hi-1-i)
			}
			return nil
		}
		// Some were already stored: the rows this statement inserted
		// are those with sequence numbers after prev.
		rows, err := s.conn.QueryContext(ctx, `SELECT seq, day, id FROM events WHERE seq > ? AND seq <= ?`, prev, last)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		defer rows.Close()
		mine := make(map[eventKey]int64, n)
		for rows.Next() {
			var k eventKey
			var id []byte
			var seq int64
			if err := rows.Scan(&seq, &k.day, &id); err != nil {
				return fmt.Errorf("insert events: %w", err)
			}
			k.id = string(id)
			mine[k] = seq
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		for i := lo; i < hi; i++ {
			k := eventKey{stored[i].Day, string(stored[i].ID)}
			if seq, ok := mine[k]; ok {
				delete(mine, k) // a copy later in the chunk is a duplicate
				seqs[i] = seq
			}
		}
		return nil
	})
	if err != nil {
		return inserted{}, err
	}
	fresh := make([]bool, len(seqs))
	for i, q := range seqs {
		fresh[i] = q != 0
	}
	byDay, summarised := store.SummarisedByDay(b.Events, fresh)
	if _, err := s.conn.ExecContext(ctx, sqlAddHealth, int64(b.Received), int64(count), int64(b.Dropped), int64(summarised)); err != nil {
		return inserted{}, fmt.Errorf("update health: %w", err)
	}
	for day, n := range byDay {
		if _, err := s.conn.ExecContext(ctx, sqlAddSummarised, day, int64(n)); err != nil {
			return inserted{}, fmt.Errorf("update summarised contacts: %w", err)
		}
	}
	if ch := store.ListenerChanges(b, fresh); len(ch) > 0 {
		args := make([]any, 0, 4*len(ch))
		for _, c := range ch {
			args = append(args, c.Name, int64(c.Received), int64(c.Stored), int64(c.Dropped))
		}
		if _, err := s.conn.ExecContext(ctx, fmt.Sprintf(sqlAddListenerHealth, values(len(ch), 4)), args...); err != nil {
			return inserted{}, fmt.Errorf("update listener health: %w", err)
		}
	}
	if count == 0 {
		maxSeq = 0
	}
	return inserted{seqs: seqs, fresh: fresh, n: count, maxSeq: maxSeq}, nil
}

func (s *EventStore) upsertAggregates(ctx context.Context, all []store.Delta) error {
	if len(all) == 0 {
		return nil
	}
	// The organisations are refs into event_strings (appendDeltaArgs):
	// the writer's view of it as of this transaction, which holds the
	// strings of the events these deltas came from once they committed
	// (or, in an import, in this same transaction).
	if err := s.strs.refresh(ctx, s.conn); err != nil {
		return err
	}
	fold := store.NewRollupFold()
	// Keys known to be new first, with INSERT OR IGNORE; the rest, and any
	// of those that were not new after all, are upserted.
	var fresh, deltas []store.Delta
	for i := range all {
		d := &all[i]
		set, err := s.knownSet(ctx, d.Key.Day)
		if err != nil {
			return err
		}
		if set == nil {
			deltas = append(deltas, *d)
			continue
		}
		if _, ok := set[s.keyHash(&d.Key)]; ok {
			deltas = append(deltas, *d)
			continue
		}
		fresh = append(fresh, *d)
	}
	args := make([]any, 0, chunk*deltaCols)
	var got []store.DayKey
	err := eachChunk(len(fresh), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			args = s.appendDeltaArgs(args, &fresh[i])
		}
		st, done, err := s.stmt(ctx, sqlInsertDayIPs, hi-lo, deltaCols)
		if err != nil {
			return fmt.Errorf("insert aggregates: %w", err)
		}
		defer done()
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("insert aggregates: %w", err)
		}
		defer rows.Close()
		// The keys inserted; one not among them was there already (the
		// known set was stale) and is upserted instead. They are looked
		// at only then: nearly always all are inserted.
		got = got[:0]
		for rows.Next() {
			var k store.DayKey
			var ip sql.RawBytes
			if err := rows.Scan(&k.Day, &ip, &k.Family); err != nil {
				return fmt.Errorf("insert aggregates: %w", err)
			}
			k.IP, _ = netip.AddrFromSlice(ip)
			got = append(got, k)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert aggregates: %w", err)
		}
		var inserted map[store.DayKey]bool
		if len(got) < hi-lo {
			inserted = make(map[store.DayKey]bool, len(got))
			for _, k := range got {
				inserted[k] = true
			}
		}
		for i := lo; i < hi; i++ {
			d := &fresh[i]
			if inserted != nil && !inserted[d.Key] {
				deltas = append(deltas, *d)
				continue
			}
			fold.Inserted(d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fold.Expect(deltas)
	err = eachChunk(len(deltas), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			args = s.appendDeltaArgs(args, &deltas[i])
		}
		st, done, err := s.stmt(ctx, sqlUpsertDayIPs, hi-lo, deltaCols)
		if err != nil {
			return fmt.Errorf("upsert aggregates: %w", err)
		}
		defer done()
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("upsert aggregates: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				u                  store.UpsertedRow
				asn, after, before int64
			)
			if err := rows.Scan(&u.Day, &u.IP, &u.Family, &u.Case, &u.Country, &asn, &after, &before, &u.BotIDs); err != nil {
				return fmt.Errorf("upsert aggregates: %w", err)
			}
			u.ASN, u.Before, u.After = uint32(asn), store.Protocols(before), store.Protocols(after)
			if err := fold.Upserted(u); err != nil {
				return fmt.Errorf("upsert aggregates: %w", err)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, u := range fold.BotIDUpdates() {
		if _, err := s.conn.ExecContext(ctx, sqlSetBotIDs, u.IDs, u.Day, u.IP, u.Family); err != nil {
			return fmt.Errorf("update bot ids: %w", err)
		}
	}
	// The hourly sets move in the same transaction as the aggregates.
	if err := writeSets(ctx, s.conn, fold.Touched()); err != nil {
		return err
	}
	rollups := fold.Rollups()
	return eachChunk(len(rollups), func(lo, hi int) error {
		args = args[:0]
		for _, r := range rollups[lo:hi] {
			k := r.Key
			args = append(args, k.Day, k.Country, int64(k.ASN), k.Family, k.Case, r.IPs, r.ResolverIPs, r.Hits)
		}
		st, done, err := s.stmt(ctx, sqlUpsertRollups, hi-lo, 8)
		if err != nil {
			return fmt.Errorf("upsert rollups: %w", err)
		}
		defer done()
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("upsert rollups: %w", err)
		}
		return nil
	})
}

// Health implements store.EventStore.
func (s *EventStore) Health(ctx context.Context) (store.Health, error) {
	return readHealth(ctx, s.db)
}

// sqlHealth reads the totals (the row whose name is NULL) and every
// listener's counters in one statement, so from one snapshot.
const sqlHealth = `SELECT NULL, received, stored, dropped, summarised FROM event_health WHERE id = 1
	UNION ALL SELECT name, received, stored, dropped, 0 FROM event_listener_health`

// readHealth reads the persisted counters, listeners sorted by name.
func readHealth(ctx context.Context, db *DB) (store.Health, error) {
	st, err := db.stmt(ctx, sqlHealth)
	if err != nil {
		return store.Health{}, fmt.Errorf("read health: %w", err)
	}
	rows, err := st.QueryContext(ctx)
	if err != nil {
		return store.Health{}, fmt.Errorf("read health: %w", err)
	}
	defer rows.Close()
	return store.ScanHealth(rows)
}

// deltaCols is the number of values appendDeltaArgs appends per delta.
const deltaCols = 15

// appendDeltaArgs appends d's deltaCols values in the column order of
// sqlInsertDayIPs and sqlUpsertDayIPs.
func (s *EventStore) appendDeltaArgs(args []any, d *store.Delta) []any {
	org, ref := d.Org, int64(0)
	if r, ok := s.strs.ref(org); ok && org != "" {
		org, ref = "", int64(r)
	}
	return append(args, d.Key.Day, d.Key.IP.AsSlice(), d.Key.Family, d.Case, d.Country, int64(d.ASN), org, ref,
		d.FirstSeen, d.LastSeen, int64(d.Hits), int64(d.Protocols), store.JoinBotIDs(d.BotIDs), d.Detail, d.DetailRank)
}

// PurgeEvents implements store.EventStore.
func (s *EventStore) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.purge(ctx, `DELETE FROM events WHERE day < ?`, before)
	if err != nil {
		return n, err
	}
	_, err = s.purge(ctx, `DELETE FROM event_day_summarised WHERE day < ?`, before)
	return n, err
}

// PurgeAggregates implements store.EventStore.
func (s *EventStore) PurgeAggregates(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.purge(ctx, `DELETE FROM event_day_ip WHERE day < ?`, before)
	if err != nil {
		return n, err
	}
	if _, err = s.purge(ctx, `DELETE FROM event_rollups WHERE day < ?`, before); err != nil {
		return n, err
	}
	_, err = s.purge(ctx, `DELETE FROM stats_sets WHERE day < ?`, before)
	return n, err
}

func (s *EventStore) purge(ctx context.Context, q string, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.conn.ExecContext(ctx, q, store.DayOf(before))
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return r.RowsAffected()
}

// ScanDayIPs implements store.EventStore.
func (s *EventStore) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	return scanDayIPs(ctx, s.db, from, to, fn)
}

// scanDayIPs is ScanDayIPs over db, for the event store and the stats
// store alike.
func scanDayIPs(ctx context.Context, db *DB, from, to time.Time, fn func(*store.DayIP) error) error {
	st, err := db.stmt(ctx, `SELECT `+dayIPColumns+` FROM event_day_ip WHERE day >= ? AND day < ? ORDER BY day, ip, family`)
	if err != nil {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	rows, err := st.QueryContext(ctx, from.Unix(), to.Unix())
	if err != nil {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	defer rows.Close()
	if err := scanDayIPRows(ctx, db, rows, fn); err != nil {
		return err
	}
	return rows.Err()
}

// Rollups implements store.EventStore.
func (s *EventStore) Rollups(ctx context.Context, from, to time.Time) ([]store.Rollup, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT day, country, asn, family, case_id, ips, resolver_ips, hits
		FROM event_rollups WHERE day >= ? AND day < ? ORDER BY day, country, asn, family, case_id`, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	return store.ScanRollups(rows)
}

// CountEvents implements store.EventStore.
func (s *EventStore) CountEvents(ctx context.Context, from, to time.Time) (int64, error) {
	return countEvents(ctx, s.db, from, to)
}

// countEvents is CountEvents over db, for the event store and the stats
// store alike.
func countEvents(ctx context.Context, db *DB, from, to time.Time) (int64, error) {
	var n int64
	lo, hi := store.WholeDays(from, to)
	err := db.SQL().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM events WHERE `+sqlTimeRange+`)
		+ (SELECT COALESCE(SUM(contacts), 0) FROM event_day_summarised WHERE day >= ? AND day < ?)`,
		append(timeRange(from, to), lo, hi)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// EventsBySeq implements store.DetailReader.
func (s *EventStore) EventsBySeq(ctx context.Context, seqs []int64, fn func(seq int64, e *event.Event) error) error {
	return eventsBySeq(ctx, s.db, seqs, fn)
}

// sqlTimeRange selects the raw events with from <= ts < to, bound by
// timeRange: a range of the (day, ts, id) index written as row values,
// which SQLite reads as one range of the index (day is ts's UTC day, so
// (day, ts) order is ts order).
const sqlTimeRange = `(day, ts) >= (?, ?) AND (day, ts) < (?, ?)`

func timeRange(from, to time.Time) []any {
	return []any{store.DayOf(from), from.UnixNano(), store.DayOf(to), to.UnixNano()}
}
