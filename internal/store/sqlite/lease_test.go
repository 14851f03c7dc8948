package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestLeaseConformance(t *testing.T) {
	storetest.RunLeases(t, func(tb testing.TB) (store.Leaser, func(testing.TB) store.Leaser) {
		path := filepath.Join(tb.TempDir(), "t.db")
		open := func(tb testing.TB) store.Leaser {
			db, err := Open(tb.Context(), path)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { db.Close() })
			return db
		}
		return open(tb), open
	})
}
