package notify

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// detailReads reads the events a store names by number (store.DetailReader)
// while Collect still scans the aggregates: the numbers are queued in
// batches of detailBatch and read by detailReaders goroutines, each on a
// connection of its own from the store's pool. Read one after the other,
// a /16's day (4,000 rows) spent about as long reading its details as
// scanning its aggregates, with the second core idle (bench/report).
type detailReads struct {
	ctx     context.Context // the readers'; done when one failed
	g       *errgroup.Group
	q       chan []seqKey
	pending []seqKey

	mu      sync.Mutex
	details map[store.DayKey]event.Event // written by the readers under mu
}

type seqKey struct {
	seq int64
	key store.DayKey
}

const (
	detailBatch   = 512 // numbers per read (sqlite: one prepared statement)
	detailReaders = 2
)

func startDetailReads(ctx context.Context, dr store.DetailReader, details map[store.DayKey]event.Event) *detailReads {
	g, gctx := errgroup.WithContext(ctx)
	d := &detailReads{ctx: gctx, g: g, q: make(chan []seqKey, 2*detailReaders), details: details}
	for range detailReaders {
		g.Go(func() error {
			keys := make(map[int64]store.DayKey, detailBatch)
			seqs := make([]int64, 0, detailBatch)
			for batch := range d.q {
				clear(keys)
				seqs = seqs[:0]
				for _, sk := range batch {
					keys[sk.seq] = sk.key
					seqs = append(seqs, sk.seq)
				}
				err := dr.EventsBySeq(gctx, seqs, func(seq int64, e *event.Event) error {
					// The event must still be the key's: a number the
					// store named that now holds another event (it cannot,
					// but a record is outside input) gives no detail.
					k, ok := keys[seq]
					if ok && e.SrcIP.Unmap() == k.IP && e.Family == k.Family && store.DayOf(e.Timestamp) == k.Day && store.EventBits(e)&store.Direct != 0 {
						d.mu.Lock()
						d.details[k] = *e
						d.mu.Unlock()
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	return d
}

// add queues the read of event seq as key's detail.
func (d *detailReads) add(seq int64, key store.DayKey) {
	d.pending = append(d.pending, seqKey{seq, key})
	if len(d.pending) == detailBatch {
		d.send()
	}
}

func (d *detailReads) send() {
	if len(d.pending) == 0 {
		return
	}
	select {
	case d.q <- d.pending:
	case <-d.ctx.Done(): // a reader failed: wait returns its error
	}
	d.pending = make([]seqKey, 0, detailBatch)
}

// wait reads what is still queued and returns when every reader is done;
// the details map is the caller's again then.
func (d *detailReads) wait() error {
	d.send()
	close(d.q)
	return d.g.Wait()
}
