package sqlite

import (
	"path/filepath"
	"sync"
	"testing"
)

// TestOpenConcurrently: processes that open one new database file at the
// same moment (serve and a command run beside it) all get it, each
// migration applied once.
func TestOpenConcurrently(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), FileName)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				db, err := Open(t.Context(), path)
				if err == nil {
					err = db.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		db, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		var rows, distinct int
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT count(*), count(DISTINCT component || '/' || version) FROM schema_migrations`).Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if rows != distinct || rows == 0 {
			t.Fatalf("round %d: %d migration rows, %d distinct", round, rows, distinct)
		}
	}
}
