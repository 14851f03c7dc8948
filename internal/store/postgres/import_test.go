package postgres

import (
	"testing"

	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestImportConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunImport(t, func(tb testing.TB) store.EventStore {
		s := openTest(tb, srv.NewDatabase(tb))
		return s
	})
}
