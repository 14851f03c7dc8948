package backup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// Result says what Restore brought back.
type Result struct {
	Manifest Manifest
	Health   store.Health // the restored store's counters (SQLite only)
	Entries  uint64       // the restored evidence log's entries
	Appended int          // stored events appended to the log (see the package comment)
}

// Restore unpacks backup file into the empty or new data dir data,
// checks it against its manifest, opens the store (bringing its schema up
// to this build's), opens the evidence log (which re-hashes it against
// every checkpoint and rebuilds its index) and appends to the log the
// stored events it lacks. On a failure before the store and log open, the
// data dir is left empty.
func Restore(ctx context.Context, file, data string, lg *slog.Logger) (Result, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	var res Result
	m, err := Extract(file, data)
	if err != nil {
		return res, err
	}
	res.Manifest = m
	var es *sqlite.EventStore
	if _, err := os.Stat(filepath.Join(data, sqlite.FileName)); err == nil {
		db, err := sqlite.OpenDir(ctx, data)
		if err != nil {
			return res, fmt.Errorf("restore: open the store: %w", err)
		}
		defer db.Close()
		var qc string
		if err := db.SQL().QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&qc); err != nil || qc != "ok" {
			return res, fmt.Errorf("restore: the store fails SQLite's quick_check: %s %v", qc, err)
		}
		if es, err = sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{}); err != nil {
			return res, fmt.Errorf("restore: open the event store: %w", err)
		}
		defer es.Close()
		if res.Health, err = es.Health(ctx); err != nil {
			return res, err
		}
	}
	evDir := filepath.Join(data, evidenceDir)
	if evidence.Exists(evDir) {
		l, err := evidence.Open(ctx, evDir, evidence.Options{Logger: lg})
		if err != nil {
			return res, fmt.Errorf("restore: the evidence log: %w", err)
		}
		if es != nil {
			res.Appended, err = appendStored(ctx, l, es, lg)
		}
		res.Entries = l.Size()
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return res, fmt.Errorf("restore: the evidence log: %w", err)
		}
	}
	return res, nil
}

// storedLog is what appendStored needs of the event store.
type storedLog interface {
	SeqOf(ctx context.Context, ts time.Time, id string) (int64, bool, error)
	RecordsAfter(ctx context.Context, after int64, limit int) ([][]byte, int64, error)
}

// appendStored appends the stored events committed after the log's newest
// event record: those stored while the backup was taken. It applies the
// rule the server applies at start (app.reconcileEvidence), here so that a
// restored data dir is complete before any server runs on it.
func appendStored(ctx context.Context, l *evidence.Log, sl storedLog, lg *slog.Logger) (int, error) {
	rec, found, err := l.LastRecord(func(r []byte) bool {
		_, err := event.UnmarshalJSONL(r)
		return err == nil
	})
	if err != nil {
		return 0, err
	}
	var after int64
	if found {
		ev, _ := event.UnmarshalJSONL(rec)
		seq, ok, err := sl.SeqOf(ctx, ev.Timestamp, ev.ID)
		if err != nil {
			return 0, err
		}
		if !ok {
			lg.Warn("restore: the log's newest event is not in the store (purged?); not appending")
			return 0, nil
		}
		after = seq
	}
	appended := 0
	for {
		recs, last, err := sl.RecordsAfter(ctx, after, 4096)
		if err != nil {
			return appended, err
		}
		if len(recs) == 0 {
			return appended, nil
		}
		if _, err := l.Append(ctx, recs); err != nil {
			return appended, err
		}
		appended += len(recs)
		after = last
	}
}
