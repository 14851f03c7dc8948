package cli

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/stats"
)

type statsFlags struct {
	from, to, by, baseFrom, baseTo, caseID, every string
	top                                           int
	json, csv                                     bool
}

// query turns the flags into a stats query; window is the default length
// of the window ending now (or at --to).
func (f *statsFlags) query(now time.Time, window time.Duration) (stats.Query, error) {
	var q stats.Query
	var err error
	q.To = now.UTC()
	if f.to != "" {
		if q.To, err = ParseTime(f.to); err != nil {
			return q, usagef("--to: %v", err)
		}
	}
	q.From = q.To.Add(-window)
	if f.from != "" {
		if q.From, err = ParseTime(f.from); err != nil {
			return q, usagef("--from: %v", err)
		}
	}
	if f.baseFrom != "" {
		if q.BaselineFrom, err = ParseTime(f.baseFrom); err != nil {
			return q, usagef("--baseline-from: %v", err)
		}
	}
	if f.baseTo != "" {
		if q.BaselineTo, err = ParseTime(f.baseTo); err != nil {
			return q, usagef("--baseline-to: %v", err)
		}
	}
	if q.By, err = stats.ParseDim(f.by); err != nil {
		return q, usagef("--by: %v", err)
	}
	q.Top, q.Case = f.top, f.caseID
	if err := q.Validate(); err != nil {
		return q, &UsageError{err}
	}
	if f.json && f.csv {
		return q, usagef("--json and --csv exclude each other")
	}
	return q, nil
}

func (f *statsFlags) register(cmd *cobra.Command, defaultWindow string) {
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", "window start, RFC 3339 or a date (default: "+defaultWindow+" before --to)")
	fl.StringVar(&f.to, "to", "", "window end, exclusive (default now; series: the coming UTC midnight)")
	fl.StringVar(&f.by, "by", "", "group rows by country, asn, family or case")
	fl.IntVar(&f.top, "top", 0, "keep the N largest rows (0: all); the rest is one line 'other'")
	fl.StringVar(&f.caseID, "case", "", "count only sources of this case")
	fl.BoolVar(&f.json, "json", false, "print one JSON document")
	fl.BoolVar(&f.csv, "csv", false, "print CSV")
}

// statsEngine loads the configuration and opens the store for analytics.
// The caller closes the returned store.
func (g *globals) statsEngine(cmd *cobra.Command) (*config.Config, *stats.Engine, *stores, error) {
	c, db, err := g.configuredStore(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, g.newStatsEngine(c, db), db, nil
}

// newStatsEngine is the analytics engine over the store db, its per-day
// cache in the store.
func (g *globals) newStatsEngine(c *config.Config, db *stores) *stats.Engine {
	o := db.statsOptions()
	o.Now, o.Logger = g.now, g.logger(c)
	return stats.New(o)
}

// nameASNs names the AS organisations of rows grouped by ASN from the
// configured geo data (the bundled data by default), through name
// (Result.NameASNs or Series.NameASNs); other groupings open nothing.
func (g *globals) nameASNs(c *config.Config, by stats.Dim, name func(func(uint32) string)) error {
	if by != stats.ByASN {
		return nil
	}
	db, err := app.OpenGeo(c, g.logger(c))
	if err != nil {
		return err
	}
	defer db.Close()
	name(db.ASOrg)
	return nil
}

func newStatsCmd(g *globals) *cobra.Command {
	var f statsFlags
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count distinct infected addresses in a window, by country, ASN, family or case",
		Long: `Count the distinct source addresses that made a direct connection to the
sinkhole in [--from, --to) (default: the last 24 hours), exactly; DNS query
sources are resolvers and are reported apart, never counted. With
--baseline-from/--baseline-to the reduction since the baseline, overall and
per row. estimated_hosts estimates machines behind the addresses; how, and
how wrong it can be, is in docs/counting.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(g.now(), 24*time.Hour)
			if err != nil {
				return err
			}
			c, eng, db, err := g.statsEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			r, err := eng.Stats(cmd.Context(), q)
			if errors.Is(err, stats.ErrTooLarge) {
				return usagef("%v", err) // the window is bounded like the API's
			}
			if err != nil {
				return err
			}
			if err := g.nameASNs(c, q.By, r.NameASNs); err != nil {
				return err
			}
			switch {
			case f.json:
				return writeJSON(g.stdout, r)
			case f.csv:
				return stats.WriteCSV(g.stdout, r)
			}
			return stats.WriteTable(g.stdout, r)
		},
	}
	f.register(cmd, "24 hours")
	fl := cmd.Flags()
	fl.StringVar(&f.baseFrom, "baseline-from", "", "baseline window start")
	fl.StringVar(&f.baseTo, "baseline-to", "", "baseline window end, exclusive")
	cmd.AddCommand(newStatsSeriesCmd(g))
	return cmd
}

func newStatsSeriesCmd(g *globals) *cobra.Command {
	var f statsFlags
	cmd := &cobra.Command{
		Use:   "series",
		Short: "The distinct-address count per day or week",
		Long: `Count distinct infected addresses in consecutive windows of one day or one
week from --from (default: 30 days, or 12 weeks, before --to), each counted
exactly as takedown stats counts it. --to defaults to the coming UTC
midnight, so the last step holds today so far.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			every, err := stats.ParseEvery(f.every)
			if err != nil {
				return usagef("--every: %v", err)
			}
			window := 30 * 24 * time.Hour
			if every == stats.Weekly {
				window = 12 * 7 * 24 * time.Hour
			}
			// Steps start at UTC midnight by default: whole days are read
			// from the per-day cache, cut days from raw events.
			end := g.now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
			q, err := f.query(end, window)
			if err != nil {
				return err
			}
			c, eng, db, err := g.statsEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			s, err := eng.Series(cmd.Context(), q, every)
			if errors.Is(err, stats.ErrTooLarge) {
				return usagef("%v", err)
			}
			if err != nil {
				return err
			}
			if err := g.nameASNs(c, q.By, s.NameASNs); err != nil {
				return err
			}
			switch {
			case f.json:
				return writeJSON(g.stdout, s)
			case f.csv:
				return stats.WriteSeriesCSV(g.stdout, s)
			}
			return stats.WriteSeriesTable(g.stdout, s)
		},
	}
	f.register(cmd, "30 days or 12 weeks")
	cmd.Flags().StringVar(&f.every, "every", "day", "step: day or week")
	return cmd
}
