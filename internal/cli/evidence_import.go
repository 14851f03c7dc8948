package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/ingest"
	"github.com/takedown/takedown/internal/store"
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
//
// On a shared PostgreSQL store the events are not appended here: the
// evidence writer (the serve node holding the lease, which follows the
// store in commit order) appends them to the deployment's log, and
// appending them here too would put them in it twice. The custody record
// still names the files and the user, with no event range, in that log.
func (g *globals) recordImport(ctx context.Context, c *config.Config, es store.Importer, res *ingest.Result, who string, stderr io.Writer) error {
	if !c.Evidence.Enabled {
		return nil
	}
	at, each := logAt{dir: evidenceDir(c)}, res.EachFresh
	if s, ok := es.(sharedEvidence); ok { // the import's own store
		at, each = g.sharedLog(ctx, c, s, stderr), func(func([][]byte) error) error { return nil }
	}
	at.opts.CheckpointEvery = c.Evidence.CheckpointEvery.D()
	l, err := evidence.Open(ctx, at.dir, at.opts)
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
	r, err := l.AppendImport(ctx, who, files, each)
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
