package sqlite

import (
	"context"
	"sync"
	"time"
)

// The event store's writer does not checkpoint the WAL itself (its
// connection has wal_autocheckpoint=0): a goroutine of the store does, on
// a connection of its own, every CheckpointEvery (EventStoreOptions), with
// PASSIVE checkpoints, which wait for no reader and no writer. SQLite's
// automatic checkpoint ran inside the writer's commits whenever the WAL
// passed 1,000 pages (4 MB), several times a second under load: a sixth
// of the writer's time in bench/scale, on the one goroutine every event
// waits for, and each hot page (the aggregates' B-tree pages, touched by
// every flush) copied back once per 4 MB of WAL instead of once per
// period. The WAL now holds about one period of writes. The database's
// other writers (registry, API, notifications) keep SQLite's automatic
// checkpoint; the last connection to close checkpoints what is left.
type checkpointer struct {
	stop, done chan struct{}
	once       sync.Once
}

func startCheckpointer(db *DB, every time.Duration) *checkpointer {
	c := &checkpointer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			// An error (another process checkpointing, say) leaves the
			// frames for the next period.
			db.SQL().ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`) //nolint:errcheck // see above
		}
	}()
	return c
}

// close stops the goroutine; it may be called more than once.
func (c *checkpointer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
