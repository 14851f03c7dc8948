package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/selfcheck"
	"github.com/takedown/takedown/internal/store"
)

// EvidenceDir is the evidence log's folder in the data dir.
func EvidenceDir(data string) string { return filepath.Join(data, "evidence") }

// openEvidence opens the evidence log; it refuses to start when the log on
// disk does not extend its last checkpoint.
func (a *App) openEvidence(ctx context.Context) error {
	c := a.cfg.Load()
	if !c.Evidence.Enabled {
		return nil
	}
	l, err := evidence.Open(ctx, EvidenceDir(c.Data), evidence.Options{
		CheckpointEvery: c.Evidence.CheckpointEvery.D(), Logger: a.log.With("role", "evidence"), Registerer: a.opts.Registerer,
	})
	if err != nil {
		return fmt.Errorf("evidence log: %w", err)
	}
	a.evidence = l
	return nil
}

// committed appends the records a committed batch newly stored to the
// evidence log, exactly as stored. A failure is logged and counted by the
// log's metrics; the events stay stored.
func (a *App) committed(ctx context.Context, b *store.Batch, res store.BatchResult) {
	if a.evidence == nil {
		return
	}
	recs, err := b.EncodeRecords()
	if err != nil {
		a.log.Error("evidence: encode records", "err", err)
		return
	}
	fresh := make([][]byte, 0, res.Inserted)
	for i, r := range recs {
		if i < len(res.Fresh) && res.Fresh[i] {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return
	}
	if _, err := a.evidence.Append(context.WithoutCancel(ctx), fresh); err != nil {
		a.log.Error("evidence: append failed", "records", len(fresh), "err", err)
	}
}

// newSelfCheck builds the public self-check page when configured.
func (a *App) newSelfCheck(lookup selfcheck.Store) error {
	c := a.cfg.Load()
	if c.SelfCheck.Listen == "" || lookup == nil {
		return nil
	}
	tr, err := a.trust(c.SelfCheck.TrustedProxy)
	if err != nil {
		return fmt.Errorf("selfcheck.trusted_proxy: %w", err)
	}
	sc, err := selfcheck.New(selfcheck.Options{
		Listen: c.SelfCheck.Listen, Lookup: lookup, Days: c.SelfCheck.Days,
		TrustedProxies: tr, TrustForwardedFrom: tr,
		Registerer: a.opts.Registerer, Logger: a.log.With("role", "selfcheck"),
	})
	if err != nil {
		return fmt.Errorf("selfcheck: %w", err)
	}
	a.selfcheck = sc
	return nil
}

// retention purges raw events after pipeline.retention and aggregates after
// the longest order plus one year.
func (a *App) retention() *pipeline.Retention {
	return &pipeline.Retention{
		Store: a.opts.Events, Events: a.cfg.Load().Pipeline.Retention.D(),
		Aggregates: func() time.Duration {
			orders, err := a.opts.Registry.Orders(context.Background())
			if err != nil {
				return 0 // keep everything when unsure
			}
			var longest time.Duration
			for _, o := range orders {
				longest = max(longest, o.Expires.Sub(o.Effective))
			}
			if longest == 0 {
				return 0
			}
			return longest + 365*24*time.Hour
		},
		Logger: a.log.With("role", "retention"),
	}
}
