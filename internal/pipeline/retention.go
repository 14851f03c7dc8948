package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// DefaultEventRetention is how long raw events are kept by default.
const DefaultEventRetention = 30 * 24 * time.Hour

// Retention purges raw events older than Events and aggregates older than
// Aggregates (the longest order plus one year by default: the caller
// computes it from the registry), once at start and then every Every.
type Retention struct {
	Store  store.EventStore
	Events time.Duration // default DefaultEventRetention
	// Aggregates returns how long aggregates are kept; nil or a result
	// <= 0 keeps them forever.
	Aggregates func() time.Duration
	Every      time.Duration // default 1h
	Logger     *slog.Logger  // nil discards
	Now        func() time.Time
}

// PurgeOnce runs one purge at now and returns what it deleted.
func (r *Retention) PurgeOnce(ctx context.Context) (events, aggregates int64, err error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	keep := r.Events
	if keep <= 0 {
		keep = DefaultEventRetention
	}
	t := now().UTC()
	// Pending aggregates first: events must be aggregated before they go.
	if err := r.Store.Flush(ctx); err != nil {
		return 0, 0, err
	}
	if events, err = r.Store.PurgeEvents(ctx, t.Add(-keep)); err != nil {
		return events, 0, err
	}
	if r.Aggregates != nil {
		if a := r.Aggregates(); a > 0 {
			aggregates, err = r.Store.PurgeAggregates(ctx, t.Add(-a))
		}
	}
	return events, aggregates, err
}

// Run purges until ctx is done; failures are logged and retried at the
// next tick. It returns nil.
func (r *Retention) Run(ctx context.Context) error {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := r.Every
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ev, agg, err := r.PurgeOnce(ctx)
		if err != nil {
			log.Error("retention purge failed", "err", err)
		} else if ev > 0 || agg > 0 {
			log.Info("retention purge", "events", ev, "aggregates", agg)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
