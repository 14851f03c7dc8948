package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/ingest"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Sinkhole events: import partner and historical data"}
	var format string
	var asJSON bool
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
			evs, err := ingest.ReadFiles(args, format)
			if err != nil {
				var ie *ingest.Error
				if errors.As(err, &ie) {
					return &UsageError{fmt.Errorf("%w\nnothing was imported", err)}
				}
				return err
			}
			ctx := cmd.Context()
			st, err := g.openStore(ctx, c)
			if err != nil {
				return err
			}
			defer st.Close()
			es, err := sqlite.NewEventStore(ctx, st, sqlite.EventStoreOptions{})
			if err != nil {
				return err
			}
			defer es.Close()
			prepare, classifyErr, err := historicPrepare(ctx, c, g.logger(c), st, es)
			if err != nil {
				return err
			}
			res, err := ingest.Store(ctx, es, evs, prepare)
			if err != nil {
				return err
			}
			if err := classifyErr(); err != nil {
				return fmt.Errorf("imported, but reading the registry for classification failed: %w", err)
			}
			if asJSON {
				return writeJSON(g.stdout, map[string]any{"read": len(evs), "stored": res.Inserted, "already_stored": res.Duplicates})
			}
			fmt.Fprintf(g.stdout, "read %d events; stored %d new, %d already stored\n", len(evs), res.Inserted, res.Duplicates)
			return nil
		},
	}
	imp.Flags().StringVar(&format, "format", "", "shadowserver or jsonl (required)")
	imp.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(imp)
	return cmd
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
