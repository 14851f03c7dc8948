package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/ingest"
)

// importSpoolDir is where an import keeps the records of the events it
// newly stores until they are in the evidence log (ingest.Options.SpoolDir):
// the data dir, not a tmpfs that would hold them in memory. Empty when the
// evidence log is off.
func importSpoolDir(c *config.Config) string {
	if !c.Evidence.Enabled {
		return ""
	}
	return c.Data
}

// recordImport appends the events a committed import newly stored, and a
// custody record naming the files (SHA-256, rows) and the importing user,
// to the evidence log in the same run: `evidence export` right after the
// import contains them. It works while the server has the log open (the
// writer lock is taken batch by batch). On failure the events stay stored,
// and the server's start appends what the log lacks.
func recordImport(ctx context.Context, c *config.Config, res *ingest.Result, who string, stderr io.Writer) error {
	if !c.Evidence.Enabled {
		return nil
	}
	l, err := evidence.Open(ctx, evidenceDir(c), evidence.Options{CheckpointEvery: c.Evidence.CheckpointEvery.D()})
	if err != nil {
		return err
	}
	files := make([]evidence.ImportedFile, len(res.Files))
	for i, f := range res.Files {
		name := f.Name
		if abs, err := filepath.Abs(name); err == nil && name != "-" {
			name = abs
		}
		files[i] = evidence.ImportedFile{Name: name, SHA256: f.SHA256, Rows: f.Rows}
	}
	r, err := l.AppendImport(ctx, who, files, res.EachFresh)
	if err == nil {
		_, err = l.Checkpoint(ctx)
	}
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "evidence log: %d events appended, custody record at entry %d\n", r.Events, r.Custody)
	return nil
}
