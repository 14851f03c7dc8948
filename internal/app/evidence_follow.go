package app

import (
	"context"
	"errors"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store"
)

// The evidence log of a shared store (Options.EvidenceFollowsStore):
// events reach the store from other processes too (collectors, other
// serve nodes), so the log does not take the batches this process commits;
// it follows the store instead, appending every stored event after its
// newest one in the store's commit order (storedLog.RecordsAfter, which on
// PostgreSQL never passes a transaction still in progress), and only while
// this process holds the lease "evidence": one node appends at a time.
//
// The log itself is the store's (internal/evidence/shared.go): every
// node's directory is a replica, which this loop keeps up to date every
// second. A node that takes the lease over first brings its replica up to
// date, then follows the store from the log's newest event: its appends
// extend the log the previous writer wrote, and each stored event is in
// it once, in commit order. Should the previous writer still append (its
// lease lapsed while it was stalled), the store refuses one of the two
// appends at the same index, and the refused node reads its place again.

// evidenceFollowEvery is how often the follower reads the store, and
// evidenceLeaseFor how long its lease lasts: a dead writer is replaced
// within that.
const (
	evidenceFollowEvery = time.Second
	evidenceLeaseFor    = 15 * time.Second
)

// EvidenceLeaseName is the evidence writer's lease in the store.
const EvidenceLeaseName = "evidence"

// followEvidence runs until ctx ends.
func (a *App) followEvidence(ctx context.Context) error {
	sl, ok := a.opts.Events.(storedLog)
	if !ok || a.evidence == nil {
		return nil
	}
	leaser, _ := a.opts.Events.(store.Leaser)
	log := a.log.With("role", "evidence")
	if leaser != nil {
		defer func() {
			if err := leaser.ReleaseLease(context.WithoutCancel(ctx), EvidenceLeaseName, a.holder); err != nil {
				log.Warn("evidence: releasing the writer lease", "err", err)
			}
		}()
	}
	var after int64
	known := false // after is this log's newest event's sequence number
	writer := false
	t := time.NewTicker(evidenceFollowEvery)
	defer t.Stop()
	for {
		if leaser != nil {
			now := time.Now()
			ok, err := leaser.Lease(ctx, EvidenceLeaseName, a.holder, now.Add(evidenceLeaseFor), now)
			if err != nil && ctx.Err() == nil {
				log.Warn("evidence: taking the writer lease failed", "err", err)
			}
			if ok != writer {
				log.Info("evidence: writer lease", "held", ok)
				known = false // another writer may have run meanwhile: find our place again
			}
			writer = ok && err == nil
		} else {
			writer = true
		}
		if !writer || !known {
			// Another node appends, or this one is about to find its place:
			// the replica first takes what the log has.
			if err := a.evidence.Refresh(ctx); err != nil && ctx.Err() == nil {
				log.Warn("evidence: bringing the replica up to date failed", "err", err)
			}
		}
		if writer {
			if !known {
				var err error
				if after, known, err = a.evidencePlace(ctx, sl); err != nil && ctx.Err() == nil {
					log.Warn("evidence: finding the log's place in the store failed", "err", err)
				}
			}
			if known {
				n, last, err := a.appendAfter(ctx, sl, after)
				after = last
				if err != nil {
					known = false // find the place again, after what the log holds now
				}
				if errors.Is(err, evidence.ErrEntriesTaken) {
					log.Info("evidence: another node appended first; reading the place again", "err", err)
				} else if err != nil && ctx.Err() == nil {
					log.Warn("evidence: following the store failed", "err", err)
				} else if n > 0 {
					log.Debug("evidence: appended stored events", "events", n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// evidencePlace returns the sequence number of the log's newest event in
// the store (0 when the log holds none); ok is false when that event is no
// longer stored (purged), which stops the follower: appending from
// anywhere else would leave a gap or repeat events.
func (a *App) evidencePlace(ctx context.Context, sl storedLog) (int64, bool, error) {
	rec, found, err := a.evidence.LastRecord(func(r []byte) bool {
		_, err := event.UnmarshalJSONL(r)
		return err == nil
	})
	if err != nil || !found {
		return 0, err == nil, err
	}
	ev, _ := event.UnmarshalJSONL(rec)
	seq, ok, err := sl.SeqOf(ctx, ev.Timestamp, ev.ID)
	if err != nil {
		return 0, false, err
	}
	if !ok {
		a.log.Warn("evidence: the log's newest event is no longer stored (purged?); not appending stored events")
	}
	return seq, ok, nil
}

// appendAfter appends every stored event after sequence number after and
// returns how many and the newest one's number.
func (a *App) appendAfter(ctx context.Context, sl storedLog, after int64) (int, int64, error) {
	n := 0
	for {
		recs, last, err := sl.RecordsAfter(ctx, after, 4096)
		if err != nil || len(recs) == 0 {
			return n, after, err
		}
		if _, err := a.evidence.Append(ctx, recs); err != nil {
			return n, after, err
		}
		n += len(recs)
		after = last
	}
}
