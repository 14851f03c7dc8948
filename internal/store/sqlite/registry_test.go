package sqlite

import (
	"testing"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/storetest"
)

// The registry's behaviour is the conformance suite's, shared with the
// PostgreSQL store (internal/store/postgres/registry_test.go).
func TestRegistryConformance(t *testing.T) {
	storetest.RunRegistry(t, func(tb testing.TB) registry.Store {
		db, err := OpenDir(tb.Context(), tb.TempDir())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return db
	})
}
