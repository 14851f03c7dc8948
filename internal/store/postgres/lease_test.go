package postgres

import (
	"testing"

	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestLeaseConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunLeases(t, func(tb testing.TB) (store.Leaser, func(testing.TB) store.Leaser) {
		dsn := srv.NewDatabase(tb)
		open := func(tb testing.TB) store.Leaser {
			db, err := Open(tb.Context(), dsn)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { db.Close() })
			return db
		}
		return open(tb), open
	})
}
