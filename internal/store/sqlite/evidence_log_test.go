package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestSharedEvidenceConformance(t *testing.T) {
	storetest.RunSharedEvidence(t, func(tb testing.TB) (evidence.SharedStore, func(testing.TB) evidence.SharedStore) {
		path := filepath.Join(tb.TempDir(), "t.db")
		again := func(tb testing.TB) evidence.SharedStore {
			db, err := Open(tb.Context(), path)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { db.Close() })
			return db
		}
		return again(tb), again
	})
}
