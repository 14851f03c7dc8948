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
	// Lease, when set, makes one process of a deployment purge at a time
	// (several nodes on one PostgreSQL): a round runs only while Holder
	// holds the lease "retention", taken for two rounds and renewed each
	// round, so a holder that dies is replaced within two rounds.
	Lease  store.Leaser
	Holder string
}

// leaseName is the retention role's lease.
const leaseName = "retention"

// Round is one round of Run, rounds every apart: it takes or renews the
// lease (when there is one), then purges. ran is false when another
// process holds the lease.
func (r *Retention) Round(ctx context.Context, every time.Duration) (ran bool, events, aggregates int64, err error) {
	if r.Lease != nil {
		now := time.Now
		if r.Now != nil {
			now = r.Now
		}
		t := now()
		ok, err := r.Lease.Lease(ctx, leaseName, r.Holder, t.Add(2*every), t)
		if err != nil || !ok {
			return false, 0, 0, err
		}
	}
	events, aggregates, err = r.PurgeOnce(ctx)
	return true, events, aggregates, err
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
	if r.Lease != nil {
		defer func() {
			// Hand over at once rather than after the lease expires.
			if err := r.Lease.ReleaseLease(context.WithoutCancel(ctx), leaseName, r.Holder); err != nil {
				log.Warn("retention: releasing the lease", "err", err)
			}
		}()
	}
	for {
		ran, ev, agg, err := r.Round(ctx, every)
		switch {
		case err != nil:
			log.Error("retention purge failed", "err", err)
		case !ran:
			log.Debug("retention: another node holds the lease")
		case ev > 0 || agg > 0:
			log.Info("retention purge", "events", ev, "aggregates", agg)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
