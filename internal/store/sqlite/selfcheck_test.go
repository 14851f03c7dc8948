package sqlite

import (
	"testing"

	"github.com/takedown/takedown/internal/store/storetest"
)

func TestLookupConformance(t *testing.T) {
	storetest.RunLookup(t, func(tb testing.TB) storetest.LookupStore {
		db, err := OpenDir(tb.Context(), tb.TempDir())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		es, err := NewEventStore(tb.Context(), db, EventStoreOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { es.Close() })
		return es
	})
}
