package store

import "context"

// Importer is an EventStore that takes an import of any size as one
// transaction: `takedown events import` writes every file of one call in
// batches through an Import and commits once at the end, so that the
// import is all or nothing (a bad row, an error or a killed process leaves
// the store as it was) without holding the input in memory.
type Importer interface {
	EventStore
	// BeginImport starts the transaction. Until Commit or Rollback, other
	// writers of the store wait (SQLite) or may wait on the rows the
	// import touched (PostgreSQL): imports are for historical and partner
	// data, run from the command line.
	BeginImport(ctx context.Context) (Import, error)
}

// Import is one open import transaction.
type Import interface {
	// Write stores a batch inside the transaction, as WriteBatch would:
	// events whose ID is stored already (before or earlier in this
	// import) are duplicates, and the health counters move. Nothing is
	// visible to readers before Commit. An error rolls the whole import
	// back; later calls fail.
	Write(ctx context.Context, b *Batch) (BatchResult, error)
	// Commit makes everything written durable at once, with the
	// aggregates of every event newly stored: after it, ScanDayIPs and
	// Rollups reflect the import.
	Commit(ctx context.Context) error
	// Rollback undoes everything written; it does nothing after Commit or
	// a failed Write, so it can be deferred.
	Rollback() error
}
