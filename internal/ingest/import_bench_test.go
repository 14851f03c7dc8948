package ingest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/store/sqlite"
)

// BenchmarkImport imports the Shadowserver report named by
// $TAKEDOWN_IMPORT_CSV (bench/import/gencsv writes one) into a new SQLite
// store per iteration: the profile of `takedown events import` without
// the command around it. Skipped without the file.
func BenchmarkImport(b *testing.B) {
	path := os.Getenv("TAKEDOWN_IMPORT_CSV")
	if path == "" {
		b.Skip("TAKEDOWN_IMPORT_CSV names no report")
	}
	for b.Loop() {
		dir := b.TempDir()
		db, err := sqlite.Open(b.Context(), filepath.Join(dir, sqlite.FileName))
		if err != nil {
			b.Fatal(err)
		}
		st, err := sqlite.NewEventStore(b.Context(), db, sqlite.EventStoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := Import(b.Context(), st, []string{path}, Options{Format: FormatShadowserver, SpoolDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Read), "rows/op")
		st.Close()
		db.Close()
	}
}
