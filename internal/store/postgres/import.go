package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/store"
)

// An import is one PostgreSQL transaction on one pooled connection, held
// from BeginImport to Commit or Rollback. Each batch runs WriteBatch's
// statements (writeBatchTx) in it: raw events, their aggregates and
// rollups, the health counters. Nothing is visible to other sessions
// before Commit; an error, a rollback or a client killed mid-import (the
// server rolls back the transaction of a closed connection) leaves the
// store as it was. Rows the import touched stay locked until it ends, so a
// collector writing the same (day, IP, family) keys waits for it: imports
// are meant for historical days.

var _ store.Importer = (*EventStore)(nil)

// BeginImport implements store.Importer.
func (s *EventStore) BeginImport(ctx context.Context) (store.Import, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin import: %w", err)
	}
	return &pgImport{s: s, tx: tx}, nil
}

type pgImport struct {
	s    *EventStore
	tx   pgx.Tx
	done bool // committed or rolled back
}

var _ store.Import = (*pgImport)(nil)

func (im *pgImport) Write(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	if im.done {
		return store.BatchResult{}, errors.New("import already ended")
	}
	cols, err := columnsOf(b)
	if err != nil {
		return store.BatchResult{}, errors.Join(err, im.Rollback())
	}
	stored, err := im.s.encodeEvents(ctx, b.Events, cols.records)
	if err != nil {
		return store.BatchResult{}, errors.Join(fmt.Errorf("import batch: %w", err), im.Rollback())
	}
	res, err := writeBatchTx(ctx, im.tx, b, cols, stored)
	if err != nil {
		return store.BatchResult{}, errors.Join(fmt.Errorf("import batch: %w", err), im.Rollback())
	}
	return res, nil
}

func (im *pgImport) Commit(ctx context.Context) error {
	if im.done {
		return errors.New("import already ended")
	}
	im.done = true
	if err := im.tx.Commit(ctx); err != nil {
		// A failed commit has rolled the transaction back.
		return fmt.Errorf("import: commit: %w", err)
	}
	return nil
}

func (im *pgImport) Rollback() error {
	if im.done {
		return nil
	}
	im.done = true
	if err := im.tx.Rollback(context.Background()); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("import: rollback: %w", err)
	}
	return nil
}
