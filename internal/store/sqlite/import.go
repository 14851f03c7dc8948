package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/takedown/takedown/internal/store"
)

// An import is one IMMEDIATE transaction on the writer connection, held
// (with s.mu) from BeginImport to Commit or Rollback. Its batches insert
// raw events and move the health counters exactly as WriteBatch does; the
// aggregates of its fresh events are kept apart from the store's pending
// ones and written inside the transaction, in sorted runs of at most
// importMaxPending keys (so memory stays bounded whatever the input's
// size) and once more at Commit, together with the watermark. So a commit
// makes events, aggregates, rollups, health counters and watermark move at
// once, and a rollback or a killed process (SQLite discards the
// uncommitted WAL frames) leaves all of them as they were: the watermark
// never covers an event whose aggregate is not written, nor one that is
// not stored.

// importMaxPending bounds the aggregate keys an import holds in memory
// before writing them in the transaction: some 250 bytes each, and a run
// being written takes as much again in copies and rollup folds, so about
// 25 MB at most, a small share of the import's memory budget
// (docs/events.md).
const importMaxPending = 50_000

// importCacheKiB is the writer's page cache during an import (negative:
// KiB, as PRAGMA cache_size takes it), half the usual: an import's memory
// must stay under its bound (docs/events.md), and a long transaction's
// dirty pages spill to the WAL when the cache is full. It costs speed
// (about a fifth more CPU in a 400,000-row import than with 128 MiB).
const importCacheKiB = -65536

var _ store.Importer = (*EventStore)(nil)

// BeginImport implements store.Importer. The store's pending aggregates
// are flushed first, so that the watermark written at Commit covers them.
// Other writers of this EventStore wait until the import ends.
func (s *EventStore) BeginImport(ctx context.Context) (store.Import, error) {
	s.mu.Lock()
	if err := s.flushLocked(ctx); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("begin import: %w", err)
	}
	var cache int64
	if err := s.conn.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("begin import: %w", err)
	}
	if _, err := s.conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size=%d`, importCacheKiB)); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("begin import: %w", err)
	}
	if _, err := s.conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		s.conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size=%d`, cache)) //nolint:errcheck // the begin error matters
		s.mu.Unlock()
		return nil, fmt.Errorf("begin import: %w", err)
	}
	im := &sqliteImport{s: s, latestDay: s.latestDay, cache: cache}
	// The string table as of the transaction's start, kept up to date by
	// the import's own additions until it ends (writerStrings.held).
	if err := s.strs.refresh(ctx, s.conn); err != nil {
		return nil, errors.Join(fmt.Errorf("begin import: %w", err), im.Rollback())
	}
	s.strs.held = true
	return im, nil
}

type sqliteImport struct {
	s         *EventStore
	agg       store.Aggregator // aggregates of fresh events not yet written
	maxSeq    int64            // sequence number of the last event inserted
	latestDay int64            // s.latestDay before the import, restored on rollback
	cache     int64            // the connection's cache_size before the import, restored after
	done      bool             // committed or rolled back; s.mu released
}

var _ store.Import = (*sqliteImport)(nil)

func (im *sqliteImport) Write(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	if im.done {
		return res, errors.New("import already ended")
	}
	for i := range b.Events {
		if err := store.CheckEvent(&b.Events[i]); err != nil {
			return res, errors.Join(err, im.Rollback())
		}
	}
	// The store encodes the events itself (compactly); JSON-lines records
	// the caller made are used where it needs them, and made there
	// otherwise.
	records := b.Records
	if len(records) != len(b.Events) {
		records = nil
	}
	ins, err := im.s.insertBatch(ctx, b, records)
	if err != nil {
		return res, errors.Join(fmt.Errorf("import batch: %w", err), im.Rollback())
	}
	im.maxSeq = max(im.maxSeq, ins.maxSeq)
	im.agg.AddSeq(ins.freshOnly(b.Events))
	if im.agg.Len() >= min(importMaxPending, im.s.opts.MaxPending) {
		if err := im.writeAggregates(ctx); err != nil {
			return res, errors.Join(err, im.Rollback())
		}
	}
	return ins.result(), nil
}

// writeAggregates writes the held aggregates inside the transaction and
// marks their keys known to the later runs of this transaction (the
// known sets are dropped on rollback).
func (im *sqliteImport) writeAggregates(ctx context.Context) error {
	deltas := im.agg.Take()
	if err := im.s.upsertAggregates(ctx, deltas); err != nil {
		return fmt.Errorf("import aggregates: %w", err)
	}
	for i := range deltas {
		if set := im.s.known[deltas[i].Key.Day]; set != nil {
			set[im.s.keyHash(&deltas[i].Key)] = struct{}{}
		}
	}
	return nil
}

func (im *sqliteImport) Commit(ctx context.Context) error {
	if im.done {
		return errors.New("import already ended")
	}
	s := im.s
	if err := im.writeAggregates(ctx); err != nil {
		return errors.Join(err, im.Rollback())
	}
	watermark := max(s.watermark, im.maxSeq)
	if _, err := s.conn.ExecContext(ctx, `UPDATE event_aggregate_state SET watermark = ? WHERE id = 1`, watermark); err != nil {
		return errors.Join(fmt.Errorf("import: update aggregate watermark: %w", err), im.Rollback())
	}
	if _, err := s.conn.ExecContext(ctx, `COMMIT`); err != nil {
		return errors.Join(fmt.Errorf("import: commit: %w", err), im.Rollback())
	}
	s.watermark = watermark
	s.strs.committedAll() // the string table rows the import added are committed
	im.done = true
	im.restoreCache()
	s.mu.Unlock()
	return nil
}

func (im *sqliteImport) Rollback() error {
	if im.done {
		return nil
	}
	s := im.s
	im.done = true
	defer s.mu.Unlock()
	s.strs.held = false // the next batch reads the table again: the rollback undid the import's rows
	// The known sets may hold keys written in the transaction.
	clear(s.known)
	s.latestDay = im.latestDay
	im.agg.Take()
	_, err := s.conn.ExecContext(context.Background(), `ROLLBACK`)
	im.restoreCache()
	if err != nil {
		return fmt.Errorf("import: rollback: %w", err)
	}
	return nil
}

// restoreCache gives the writer connection its page cache back.
func (im *sqliteImport) restoreCache() {
	im.s.conn.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA cache_size=%d`, im.cache)) //nolint:errcheck // only a cache size
}
