package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/registry"
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
	opts := evidence.Options{
		CheckpointEvery: c.Evidence.CheckpointEvery.D(), Logger: a.log.With("role", "evidence"), Registerer: a.opts.Registerer,
	}
	if a.opts.EvidenceFollowsStore {
		// A shared store holds the deployment's one log; this node's
		// directory is its replica (internal/evidence/shared.go).
		opts.Shared, _ = a.opts.Events.(evidence.SharedStore)
	}
	l, err := evidence.Open(ctx, EvidenceDir(c.Data), opts)
	if err != nil {
		return fmt.Errorf("evidence log: %w", err)
	}
	a.evidence = l
	a.closers = append(a.closers, l.Close)
	return nil
}

// committed appends the records a committed batch newly stored to the
// evidence log, exactly as stored. A failure is logged and counted by the
// log's metrics; the events stay stored.
func (a *App) committed(ctx context.Context, b *store.Batch, res store.BatchResult) {
	if a.evidence == nil || a.opts.EvidenceFollowsStore {
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

// Recorded is the evidence hook for batches stored outside the pipeline
// (the demo's simulated history): it appends what res marks as newly stored.
func (a *App) Recorded(ctx context.Context, b *store.Batch, res store.BatchResult) {
	a.committed(ctx, b, res)
}

// newSelfCheck builds the public self-check page when configured.
func (a *App) newSelfCheck(lookup selfcheck.Store) error {
	c := a.cfg.Load()
	if c.SelfCheck.Listen == "" || lookup == nil {
		return nil
	}
	// The page's trust lists are exactly what is configured: loopback is
	// never added (not even by TrustProxyFromLoopback; the demo's simulator
	// beacons to the sinkholes, not to the page), and PROXY headers and
	// X-Forwarded-For are trusted from separate lists.
	proxies, err := parseTrust(c.SelfCheck.TrustedProxy)
	if err != nil {
		return fmt.Errorf("selfcheck.trusted_proxy: %w", err)
	}
	forwarders, err := parseTrust(c.SelfCheck.TrustedForwarders)
	if err != nil {
		return fmt.Errorf("selfcheck.trusted_forwarders: %w", err)
	}
	sc, err := selfcheck.New(selfcheck.Options{
		Listen: c.SelfCheck.Listen, Lookup: lookup, Days: c.SelfCheck.Days,
		TrustedProxies: proxies, TrustedForwarders: forwarders,
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
	// One node of a deployment purges at a time (docs/operations.md).
	leaser, _ := a.opts.Events.(store.Leaser)
	return &pipeline.Retention{
		Store: a.opts.Events, Events: a.cfg.Load().Pipeline.Retention.D(),
		Aggregates: func() time.Duration {
			st, ok := a.opts.Registry.(interface {
				Orders(context.Context) ([]registry.OrderSummary, error)
			})
			if !ok {
				return 0 // keep everything when unsure
			}
			orders, err := st.Orders(context.Background())
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
		Lease:  leaser, Holder: a.holder,
	}
}

// storedLog is what the evidence reconciliation needs of the event store.
type storedLog interface {
	SeqOf(ctx context.Context, ts time.Time, id string) (int64, bool, error)
	RecordsAfter(ctx context.Context, after int64, limit int) ([][]byte, int64, error)
}

// reconcileEvidence appends the stored events the evidence log does not
// hold yet: those committed after the log's newest event record (a crash
// between a batch's commit and its append leaves them out). It runs at
// start, before any listener.
func (a *App) reconcileEvidence(ctx context.Context) error {
	sl, ok := a.opts.Events.(storedLog)
	if a.evidence == nil || !ok {
		return nil
	}
	after, ok, err := a.evidencePlace(ctx, sl)
	if err != nil || !ok {
		return err // !ok: the newest event was purged, and evidencePlace said so
	}
	appended, _, err := a.appendAfter(ctx, sl, after)
	if err != nil {
		return err
	}
	if appended > 0 {
		a.log.Info("evidence: appended stored events the log did not hold", "events", appended)
	}
	return nil
}
