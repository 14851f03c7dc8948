package sqlite

import (
	"testing"

	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestNotifyConformance(t *testing.T) {
	storetest.RunNotify(t, func(tb testing.TB) (storetest.NotifyStore, store.EventStore) {
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
		return NewNotifyStore(db), es
	})
}
