package postgres

import (
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestEventStoreConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.Run(t, func(tb testing.TB) store.EventStore {
		s := openTest(tb, srv.NewDatabase(tb))
		return s
	})
}

func TestMigrateTwice(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	for range 2 {
		s := openTest(t, dsn)
		s.Close()
	}
}

// openTest opens the store at dsn, closed in tb.Cleanup, and returns its
// event store.
func openTest(tb testing.TB, dsn string) *EventStore {
	tb.Helper()
	db, err := Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db.Events()
}

// A node refuses a store whose schema a newer build migrated, naming the
// component, and changes nothing.
func TestRefusesNewerSchema(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	s := openTest(t, dsn)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (component, version) VALUES ('registry', 999)`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), dsn)
	if err == nil || !strings.Contains(err.Error(), "component registry is at schema version 999, newer than this build knows") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}
