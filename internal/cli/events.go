package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/ingest"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/progress"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// importMemoryLimit is the Go heap's soft limit during an import (unless
// GOMEMLIMIT says otherwise). What an import holds live is some 60 to
// 150 MB (docs/events.md); without a limit the heap doubles between
// collections, and with SQLite's page cache outside it the process would
// pass the 512 MiB it may use.
const importMemoryLimit = 160 << 20

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Sinkhole events: import partner and historical data"}
	var format string
	var asJSON, quiet bool
	imp := &cobra.Command{
		Use:   "import FILE…",
		Short: "Import events (Shadowserver sinkhole CSV, header-driven, or this product's JSON lines); all or nothing, idempotent",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case ingest.FormatShadowserver, ingest.FormatJSONL:
			default:
				return usagef("--format must be %s or %s", ingest.FormatShadowserver, ingest.FormatJSONL)
			}
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			es, reg, closeStores, err := g.openImportStores(ctx, c)
			if err != nil {
				return err
			}
			defer closeStores()
			prepare, classifyErr, err := historicPrepare(ctx, c, g.logger(c), reg, es)
			if err != nil {
				return err
			}
			// The import's memory is bounded by its design (docs/events.md);
			// a soft limit makes the collector keep the heap near what is
			// live instead of letting it double between collections.
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(importMemoryLimit)
			}
			var meter *progress.Meter
			if !quiet {
				meter = progress.Start(progress.Options{Out: g.stderr, Label: "import", Total: ingest.TotalSize(args)})
			}
			res, err := ingest.Import(ctx, es, args, ingest.Options{Format: format, Prepare: prepare, Progress: meter, Stdin: g.stdin, SpoolDir: importSpoolDir(c)})
			meter.Stop()
			if err != nil {
				var ie *ingest.Error
				if errors.As(err, &ie) {
					return &UsageError{fmt.Errorf("%w\nnothing was imported", err)}
				}
				return fmt.Errorf("%w\nnothing was imported", err)
			}
			defer res.Close()
			// Committed. Here the import hands over to the evidence log:
			// res.Files names each file with its SHA-256 and row count (the
			// custody record), and res.EachFresh reads back the records of
			// the newly stored events (with ingest.Options.SpoolDir set),
			// without holding them in memory.
			evOut := g.stderr
			if quiet {
				evOut = io.Discard
			}
			if err := g.recordImport(ctx, c, es, res, actor(), evOut); err != nil {
				return fmt.Errorf("imported, but appending to the evidence log failed (the server appends what the log lacks at its next start): %w", err)
			}
			if err := classifyErr(); err != nil {
				return fmt.Errorf("imported, but reading the registry for classification failed: %w", err)
			}
			if asJSON {
				return writeJSON(g.stdout, map[string]any{"read": res.Read, "stored": res.Inserted, "already_stored": res.Duplicates, "files": res.Files})
			}
			fmt.Fprintf(g.stdout, "read %d events; stored %d new, %d already stored\n", res.Read, res.Inserted, res.Duplicates)
			return nil
		},
	}
	imp.Flags().StringVar(&format, "format", "", "shadowserver or jsonl (required)")
	imp.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	imp.Flags().BoolVar(&quiet, "quiet", false, "no progress on standard error")
	cmd.AddCommand(imp)
	return cmd
}

// openImportStores opens the event store an import writes to and the
// registry the events are classified against: both the configured
// store's (the SQLite store, or PostgreSQL with --db postgres://…).
// closeFn closes them.
func (g *globals) openImportStores(ctx context.Context, c *config.Config) (es store.Importer, reg registry.Store, closeFn func(), err error) {
	st, err := g.openStore(ctx, c)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := st.eventStore(ctx, sqlite.EventStoreOptions{})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	imp, ok := s.(store.Importer)
	if !ok {
		s.Close()
		st.Close()
		return nil, nil, nil, fmt.Errorf("the %s store cannot import events", st.engine())
	}
	return imp, st, func() { s.Close(); st.Close() }, nil
}

// historicPrepare is the pipeline's preparation of events that did not
// arrive live (imported, simulated, or consumed from sensors) for storing
// in es: enrichment from the configured geo databases and classification
// against the registry reg as it was on each event's day (the family
// rules already ran at the listener; the case is looked up here). caseErr
// reports the first registry read that failed along the way.
func historicPrepare(ctx context.Context, c *config.Config, log *slog.Logger, reg registry.Source, es store.EventStore) (prepare func(*event.Event) bool, caseErr func() error, err error) {
	geo, err := app.OpenGeo(c, log)
	if err != nil {
		return nil, nil, err
	}
	fillCase, caseErr := registry.HistoricCases(ctx, reg)
	p, err := pipeline.New(pipeline.Options{Queue: event.NewQueue(1), Store: es, Enricher: geo, FillCase: fillCase})
	if err != nil {
		return nil, nil, err
	}
	return p.Prepare, caseErr, nil
}
