package postgres

import (
	"testing"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestSharedEvidenceConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunSharedEvidence(t, func(tb testing.TB) (evidence.SharedStore, func(testing.TB) evidence.SharedStore) {
		dsn := srv.NewDatabase(tb)
		again := func(tb testing.TB) evidence.SharedStore { return openTest(tb, dsn) }
		return again(tb), again
	})
}
