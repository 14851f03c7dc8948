package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestImportConformance(t *testing.T) {
	storetest.RunImport(t, func(tb testing.TB) store.EventStore {
		_, s := openEvents(tb, filepath.Join(tb.TempDir(), FileName))
		return s
	})
	// An import holding more aggregate keys than MaxPending writes them in
	// several runs inside its transaction: the same end state, and the
	// same rollback.
	t.Run("SmallRuns", func(t *testing.T) {
		storetest.RunImport(t, func(tb testing.TB) store.EventStore {
			db, err := Open(tb.Context(), filepath.Join(tb.TempDir(), FileName))
			if err != nil {
				tb.Fatal(err)
			}
			s, err := NewEventStore(tb.Context(), db, EventStoreOptions{MaxPending: 50})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { s.Close(); db.Close() })
			return s
		})
	})
}
