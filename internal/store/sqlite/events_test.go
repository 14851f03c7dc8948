package sqlite

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

func openEvents(tb testing.TB, path string) (*DB, *EventStore) {
	tb.Helper()
	db, err := Open(tb.Context(), path)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := NewEventStore(tb.Context(), db, EventStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(); db.Close() })
	return db, s
}

func TestEventStoreConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) store.EventStore {
		_, s := openEvents(tb, filepath.Join(tb.TempDir(), FileName))
		return s
	})
}

func TestEventStoreHealthSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, s := openEvents(t, path)
	e := event.Event{ID: "a", Timestamp: time.Date(2011, 3, 17, 1, 0, 0, 0, time.UTC), Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1")}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{e}, Received: 3, Dropped: 2}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db.Close()
	_, s2 := openEvents(t, path)
	h, err := s2.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h != (store.Health{Received: 3, Stored: 1, Dropped: 2}) {
		t.Fatalf("health after reopen %+v", h)
	}
	if r, err := s2.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{e}}); err != nil || r.Inserted != 0 {
		t.Fatalf("re-delivery after reopen: %+v %v", r, err)
	}
}
