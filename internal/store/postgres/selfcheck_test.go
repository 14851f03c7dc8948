package postgres

import (
	"testing"

	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestLookupConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunLookup(t, func(tb testing.TB) storetest.LookupStore {
		return openTest(tb, srv.NewDatabase(tb))
	})
}
