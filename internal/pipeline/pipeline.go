// Package pipeline turns the events that the listeners hand over into
// durable records: it drains the bounded event.Queue, gives each event an
// ID, enriches it (country, ASN, AS organisation), classifies it (family and
// case, through a hook), and writes it in batches to a store.EventStore,
// which aggregates per (day, IP, family) in the same transaction. It is not
// a message bus (see natsbus) and not analytics (it only counts its own
// health).
//
// Two goroutines, three with a Committed hook: the preparer drains the
// queue and fills a batch; the writer commits the previous batch meanwhile
// and flushes the aggregates on a cadence; the hook (the evidence log's
// append, which waits on an fsync) runs on the batch before, in commit
// order. Memory is bounded by three batches (enrichment caches decoded
// records per database, see geo), never by the event rate.
package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/budget"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/geo"
	"github.com/takedown/takedown/internal/store"
)

// Enricher answers what the IP databases say about an address; *geo.DB is
// one.
type Enricher interface {
	Lookup(addr netip.Addr) geo.Info
}

var _ Enricher = (*geo.DB)(nil)

// Options configures a Pipeline. Queue and Store are required.
type Options struct {
	Queue *event.Queue
	Store store.EventStore
	// Enricher fills src_geo, src_asn and src_org where they are empty;
	// nil leaves events as they are.
	Enricher Enricher
	// FillCase sets an event's family and case (the classifier and the
	// registry); it runs after enrichment. nil leaves them as they are.
	FillCase func(*event.Event)
	// IDs gives IDs to events that have none; nil makes a new generator.
	IDs *event.IDGen
	// BatchSize is the most events in one transaction (default 8192).
	BatchSize int
	// Linger is how long a batch waits for more events before it is
	// written, once it has one (default 20ms). It bounds how long an
	// event waits before it is durable under light load.
	Linger time.Duration
	// FlushEvery is how often the store's pending aggregates are written,
	// under load as when idle (default 1s): with the batch's linger and
	// commit, it bounds how long a stored event waits before stats, the
	// API, the dashboard and the self-check count it (visible.go).
	FlushEvery time.Duration
	// Flushed, if set, is called on the writer goroutine whenever stored
	// events became visible (a successful flush of the store's
	// aggregates, or a batch of a store that aggregates in its own
	// transaction), with their number (observed in
	// takedown_event_visible_seconds; 0 for a flush with none); tests
	// wait on it instead of a clock.
	Flushed func(events uint64)
	// Retries is how often a failed batch is retried before its events
	// are counted as dropped (default 2), with a backoff from 100ms.
	Retries int
	// DrainTimeout bounds how long Run, once ctx is done, keeps storing the
	// events already queued (default 10s); what is left is lost (and
	// counted as dropped if the store still answers).
	DrainTimeout time.Duration
	// Budget bounds what one source can make the pipeline store one by
	// one (docs/security.md); a zero Rate stores every contact.
	Budget budget.Options
	// Committed, if set, is called after every committed batch that stored
	// something new, with the batch and what it stored (the evidence log
	// appends the fresh records). It runs on a goroutine of its own, one
	// batch at a time in commit order, while the writer stores the next
	// batch and flushes: a slow hook holds the writer back only once two
	// batches wait for it, and never delays the aggregates' flush by
	// itself. Run returns after the last call.
	Committed func(ctx context.Context, b *store.Batch, res store.BatchResult)
	// Registerer receives the takedown_pipeline_* metrics; nil registers
	// none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // nil discards
	Now        func() time.Time
}

// Stats are the pipeline's counters since it started (the persisted totals
// since the data dir was created are the store's Health).
type Stats struct {
	Received   uint64 `json:"received"`   // offered to the queue
	Stored     uint64 `json:"stored"`     // newly and durably stored
	Duplicates uint64 `json:"duplicates"` // already stored (re-delivery)
	Dropped    uint64 `json:"dropped"`    // queue full or store failure
	Batches    uint64 `json:"batches"`    // committed
	Failed     uint64 `json:"failed"`     // batches given up
	Summarised uint64 `json:"summarised"` // contacts folded into summary records
	QueueLen   int    `json:"queue_len"`
	QueueCap   int    `json:"queue_cap"`
	// Commits and CommitTime are the successful store writes and the time
	// they took in all: what takedown_pipeline_batch_duration_seconds
	// counts and sums.
	Commits    uint64        `json:"commits"`
	CommitTime time.Duration `json:"commit_time_ns"`
}

// CommitSecondsAvg is the mean time of one store write, 0 before the first.
func (s Stats) CommitSecondsAvg() float64 {
	if s.Commits == 0 {
		return 0
	}
	return s.CommitTime.Seconds() / float64(s.Commits)
}

// Pipeline is the running chain from queue to store.
type Pipeline struct {
	opts Options
	log  *slog.Logger

	stored, duplicates, storeDropped, batches, failed atomic.Uint64
	invalid                                           atomic.Uint64 // events without a source address

	// Owned by the writer goroutine: the queue's and the producers'
	// counters at the last committed batch, and the drops (failed batches
	// and their invalid events) not yet persisted, in all and by listener.
	persistedReceived, persistedQueueDropped uint64
	persistedProducers                       map[string]producerCount
	pendingDropped                           uint64
	pendingListeners                         map[string]uint64

	batchSeconds prometheus.Histogram
	flushSeconds prometheus.Histogram // flushes of the store's aggregates
	visible      *visibility          // owned by the writer goroutine
	commits      atomic.Uint64        // successful store writes, as batchSeconds counts them
	commitNanos  atomic.Int64         // their total time, as batchSeconds sums it
	budget       *budget.Budget       // nil: none; owned by the preparer
}

// New returns a pipeline; it does nothing until Run.
func New(opts Options) (*Pipeline, error) {
	if opts.Queue == nil || opts.Store == nil {
		return nil, errors.New("pipeline needs a queue and a store")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 8192
	}
	if opts.Linger <= 0 {
		opts.Linger = 20 * time.Millisecond
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Second
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.IDs == nil {
		opts.IDs = event.NewIDGen()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pipeline{opts: opts, log: opts.Logger, pendingListeners: make(map[string]uint64), budget: budget.New(budgetOptions(opts)),
		visible: newVisibility()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.batchSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "takedown_pipeline_batch_duration_seconds", Help: "Time to commit one batch of events.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
	})
	p.flushSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "takedown_pipeline_flush_duration_seconds", Help: "Time to write the store's pending aggregates (one flush, every FlushEvery).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
	})
	if r := opts.Registerer; r != nil {
		q := opts.Queue
		cf := func(name, help string, f func() uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
		}
		for _, c := range []prometheus.Collector{
			cf("takedown_pipeline_events_received_total", "Events offered to the pipeline queue.", q.Received),
			cf("takedown_pipeline_events_stored_total", "Events newly and durably stored.", p.stored.Load),
			cf("takedown_pipeline_events_duplicate_total", "Events already stored (re-delivered).", p.duplicates.Load),
			cf("takedown_pipeline_events_dropped_total", "Events dropped: queue full or store failure.", func() uint64 { return q.Dropped() + p.storeDropped.Load() + p.invalid.Load() }),
			cf("takedown_pipeline_batches_total", "Batches committed.", p.batches.Load),
			cf("takedown_pipeline_events_summarised_total", "Contacts beyond their source's budget, stored only inside summary records.", p.budget.Summarised),
			cf("takedown_pipeline_batches_failed_total", "Batches given up after retries.", p.failed.Load),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_pipeline_queue_length_events", Help: "Events waiting in the queue."}, func() float64 { return float64(q.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_pipeline_queue_capacity_events", Help: "Capacity of the queue."}, func() float64 { return float64(q.Cap()) }),
			p.batchSeconds,
			p.flushSeconds,
			p.visible.hist,
		} {
			if err := r.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// budgetOptions returns the budget's options, on the pipeline's clock.
func budgetOptions(o Options) budget.Options {
	b := o.Budget
	if b.Now == nil {
		b.Now = o.Now
	}
	return b
}

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	q := p.opts.Queue
	return Stats{
		Received: q.Received(), Stored: p.stored.Load(), Duplicates: p.duplicates.Load(),
		Dropped: q.Dropped() + p.storeDropped.Load() + p.invalid.Load(), Batches: p.batches.Load(), Failed: p.failed.Load(), Summarised: p.budget.Summarised(),
		QueueLen: q.Len(), QueueCap: q.Cap(),
		Commits: p.commits.Load(), CommitTime: time.Duration(p.commitNanos.Load()),
	}
}

// Prepare runs the stages before storage on one event, in place: ID,
// timestamp in UTC, enrichment of empty fields, classification. The
// importer uses it for partner files too.
//
// It reports false for an event no store would take (no source address):
// Run counts such an event as dropped.
func (p *Pipeline) Prepare(e *event.Event) bool {
	if !e.SrcIP.IsValid() {
		return false
	}
	if e.ID == "" {
		e.ID = p.opts.IDs.Next()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = p.opts.Now()
	}
	e.Timestamp = e.Timestamp.UTC()
	if p.opts.Enricher != nil && (e.SrcGeo == "" || e.SrcASN == 0) {
		in := p.opts.Enricher.Lookup(e.SrcIP)
		if e.SrcGeo == "" {
			e.SrcGeo = in.Country
		}
		if e.SrcASN == 0 {
			e.SrcASN, e.SrcOrg = in.ASN, in.Org
		}
	}
	if p.opts.FillCase != nil {
		p.opts.FillCase(e)
	}
	if strings.ContainsRune(e.BotID, '\n') {
		e.BotID = strings.ReplaceAll(e.BotID, "\n", " ")
	}
	return true
}

// batch is the unit handed from the preparer to the writer: the events
// and their JSON-lines records, encoded by the preparer so that the writer
// spends its time in the store, and the events the preparer dropped as
// invalid since the previous batch, in all and by listener.
type batch struct {
	events   []event.Event
	records  [][]byte
	invalid  uint64
	invalidL map[string]uint64
	// committed and res are what write stored, for the Committed hook;
	// committed is nil when there is nothing to hand it.
	committed *store.Batch
	res       store.BatchResult
}

func newBatch(n int) *batch {
	return &batch{events: make([]event.Event, 0, n), records: make([][]byte, 0, n)}
}

func (b *batch) reset() {
	clear(b.records) // let the records go
	b.events, b.records = b.events[:0], b.records[:0]
	b.invalid = 0
	clear(b.invalidL)
	b.committed, b.res = nil, store.BatchResult{}
}

// add appends e to b if it prepares and encodes, else counts it as
// dropped. A contact beyond its source's budget goes into its summary
// instead (see internal/budget).
func (p *Pipeline) add(b *batch, e *event.Event) {
	b.events = append(b.events, *e)
	last := &b.events[len(b.events)-1]
	if p.Prepare(last) {
		if p.budget != nil && !p.budget.Admit(last) {
			b.events = b.events[:len(b.events)-1]
			return
		}
		if rec, err := event.MarshalJSONL(last); err == nil {
			b.records = append(b.records, rec)
			return
		}
	}
	p.invalid.Add(1)
	b.invalid++
	if b.invalidL == nil {
		b.invalidL = make(map[string]uint64)
	}
	b.invalidL[store.ListenerOf(last)]++
	b.events = b.events[:len(b.events)-1]
}

// addSummaries appends the summaries that are due at now (all of them if
// all is set) to b, already prepared. It reports whether it added any.
func (p *Pipeline) addSummaries(b *batch, all bool) bool {
	if p.budget == nil || (!all && !p.budget.Due()) {
		return false
	}
	sums := p.budget.Take()
	for i := range sums {
		rec, err := event.MarshalJSONL(&sums[i])
		if err != nil {
			// Cannot happen for an event that encoded before; counted as
			// dropped like any event that does not encode.
			p.invalid.Add(1)
			b.invalid++
			continue
		}
		b.events, b.records = append(b.events, sums[i]), append(b.records, rec)
	}
	return len(sums) > 0
}

// Run drains the queue until ctx is done, then stores what is still queued
// (within DrainTimeout) and returns nil. It returns an error only if the
// writer cannot persist counters at the very end.
func (p *Pipeline) Run(ctx context.Context) error {
	batches := make(chan *batch) // unbuffered: one batch filling, one writing
	free := make(chan *batch, 3) // filling, writing, and in the Committed hook
	for range cap(free) {
		free <- newBatch(p.opts.BatchSize)
	}
	done := make(chan struct{})
	wctx, cancelWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWriter()
	go func() {
		defer close(done)
		// The Committed hook runs on the batches after the writer is done
		// with them, in order; it gives them back to the preparer.
		recycle := func(b *batch) {
			b.reset()
			free <- b
		}
		var hooks chan *batch
		if p.opts.Committed != nil {
			hooks = make(chan *batch, 1)
			hooked := make(chan struct{})
			go func() {
				defer close(hooked)
				for b := range hooks {
					p.opts.Committed(wctx, b.committed, b.res)
					recycle(b)
				}
			}()
			defer func() {
				close(hooks)
				<-hooked
			}()
		}
		// Aggregates are flushed on a fixed cadence, under load as when
		// idle: a store that holds them in memory (SQLite) would otherwise
		// keep figures stale for its own, much longer, schedule. A flush
		// with nothing pending costs a lock.
		tick := time.NewTicker(p.opts.FlushEvery)
		defer tick.Stop()
		tickFlush := func() {
			if err := p.flush(wctx); err != nil {
				p.log.Warn("aggregate flush failed, retrying later", "err", err)
			}
		}
		for {
			select {
			case b, ok := <-batches:
				if !ok {
					if err := p.flush(wctx); err != nil {
						p.log.Error("aggregates not flushed at shutdown; rebuilt on next start", "err", err)
					}
					return
				}
				p.write(wctx, b)
				if b.committed == nil || hooks == nil {
					recycle(b)
					continue
				}
				// Waiting for the hook (two batches behind) does not
				// stop the flushes: figures stay fresh.
				for queued := false; !queued; {
					select {
					case hooks <- b:
						queued = true
					case <-tick.C:
						tickFlush()
					}
				}
			case <-tick.C:
				tickFlush()
			}
		}
	}()

	q := p.opts.Queue.C()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	b := <-free
	send := func() {
		batches <- b
		b = <-free
	}
	// The summaries of sources over their budget are looked at on every
	// batch and on a tick, so they are stored when traffic stops too.
	var sumTick <-chan time.Time
	if p.budget != nil {
		t := time.NewTicker(min(time.Second, p.budget.SummaryEvery()))
		defer t.Stop()
		sumTick = t.C
	}
	stopping := false
	for !stopping {
		select {
		case <-ctx.Done():
			stopping = true
		case <-sumTick:
			if p.addSummaries(b, false) {
				linger.Stop()
				send()
			}
		case e := <-q:
			if len(b.events) == 0 {
				linger.Reset(p.opts.Linger)
			}
			p.add(b, &e)
			// Take what is already waiting without another select.
			for len(b.events) < p.opts.BatchSize {
				select {
				case e := <-q:
					p.add(b, &e)
					continue
				default:
				}
				break
			}
			if len(b.events) >= p.opts.BatchSize {
				linger.Stop()
				send()
			}
		case <-linger.C:
			p.addSummaries(b, false)
			if len(b.events) > 0 {
				send()
			}
		}
	}
	linger.Stop()
	// Shutdown: store what the listeners already handed over.
	deadline := time.AfterFunc(p.opts.DrainTimeout, cancelWriter)
	defer deadline.Stop()
	for n := p.opts.Queue.Len(); n > 0; n-- {
		e := <-q
		p.add(b, &e)
		if len(b.events) >= p.opts.BatchSize {
			send()
		}
	}
	p.addSummaries(b, true)
	batches <- b // possibly empty: persists the last counters
	close(batches)
	<-done
	if p.pendingDropped > 0 {
		return errors.New("pipeline stopped with dropped events not persisted")
	}
	return nil
}

// flush writes the store's pending aggregates and observes the events they
// make visible. It runs on the writer goroutine.
func (p *Pipeline) flush(ctx context.Context) error {
	start := time.Now()
	if err := p.opts.Store.Flush(ctx); err != nil {
		return err
	}
	p.flushSeconds.Observe(time.Since(start).Seconds())
	p.afterFlush()
	return nil
}

// afterFlush observes the stored events waiting for their aggregates as
// visible now and tells Flushed.
func (p *Pipeline) afterFlush() {
	n := p.visible.visible(p.opts.Now())
	if p.opts.Flushed != nil {
		p.opts.Flushed(n)
	}
}

// producerCount is one producer's counters at one instant.
type producerCount struct{ received, dropped uint64 }

// producerCounts reads the counters of the queue's producers.
func (p *Pipeline) producerCounts() map[string]producerCount {
	prods := p.opts.Queue.Producers()
	out := make(map[string]producerCount, len(prods))
	for _, pr := range prods {
		out[pr.Name] = producerCount{pr.Received(), pr.Dropped()}
	}
	return out
}

// listenerDeltas returns, per listener, what the producers counted since
// the last committed batch (now against persistedProducers), then the
// pending drops and the extra drops given; listeners that changed nothing
// are left out. A name may come more than once: store.ListenerChanges adds
// them up and sorts them.
func (p *Pipeline) listenerDeltas(now map[string]producerCount, extra ...map[string]uint64) []store.ListenerDelta {
	var out []store.ListenerDelta
	for name, c := range now {
		if was := p.persistedProducers[name]; c != was {
			out = append(out, store.ListenerDelta{Name: name, Received: c.received - was.received, Dropped: c.dropped - was.dropped})
		}
	}
	for _, m := range append(extra, p.pendingListeners) {
		for name, n := range m {
			if n > 0 {
				out = append(out, store.ListenerDelta{Name: name, Dropped: n})
			}
		}
	}
	return out
}

// write commits one batch with the counters accumulated since the last
// commit, in all and per listener; on failure it retries, then counts the
// batch as dropped.
func (p *Pipeline) write(ctx context.Context, pb *batch) {
	events := pb.events
	q := p.opts.Queue
	// The producers and the queue are read one after the other: the totals
	// and the listeners' sum may differ by the offers in flight meanwhile,
	// which the next batch carries.
	prods := p.producerCounts()
	recv, qdrop := q.Received(), q.Dropped()
	b := &store.Batch{
		Events:    events,
		Records:   pb.records,
		Received:  recv - p.persistedReceived,
		Dropped:   qdrop - p.persistedQueueDropped + pb.invalid + p.pendingDropped,
		Listeners: p.listenerDeltas(prods, pb.invalidL),
	}
	persisted := func() {
		p.persistedReceived, p.persistedQueueDropped, p.persistedProducers, p.pendingDropped = recv, qdrop, prods, 0
		clear(p.pendingListeners)
	}
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		start := time.Now()
		res, err := p.opts.Store.WriteBatch(ctx, b)
		if err == nil {
			took := time.Since(start)
			p.batchSeconds.Observe(took.Seconds())
			p.commits.Add(1)
			p.commitNanos.Add(int64(took))
			persisted()
			p.visible.stored(events, res.Fresh)
			if lag, ok := p.opts.Store.(aggregateLag); ok && lag.PendingAggregates() == 0 {
				// Aggregated in the batch's own transaction (or flushed
				// by the store on its own): visible now.
				p.afterFlush()
			}
			p.stored.Add(uint64(res.Inserted))
			p.duplicates.Add(uint64(res.Duplicates))
			if res.Inserted > 0 {
				pb.committed, pb.res = b, res // for the Committed hook
			}
			if len(events) > 0 {
				p.batches.Add(1)
			}
			return
		}
		if attempt >= p.opts.Retries || ctx.Err() != nil || errors.Is(err, store.ErrBadEvent) {
			p.log.Error("event batch not stored, events dropped", "events", len(events), "attempts", attempt+1, "err", err)
			p.failed.Add(1)
			p.storeDropped.Add(uint64(len(events)))
			lost := make(map[string]uint64)
			for i := range events {
				lost[store.ListenerOf(&events[i])]++
			}
			// Persist the loss and what was received now, in a batch of
			// counters only, if the store can take it; else they ride on the
			// next batch.
			c := &store.Batch{Received: b.Received, Dropped: b.Dropped + uint64(len(events)), Listeners: p.listenerDeltas(prods, pb.invalidL, lost)}
			if _, err := p.opts.Store.WriteBatch(ctx, c); err == nil {
				persisted()
				return
			}
			p.pendingDropped += uint64(len(events)) + pb.invalid
			for _, m := range []map[string]uint64{pb.invalidL, lost} {
				for name, n := range m {
					p.pendingListeners[name] += n
				}
			}
			return
		}
		p.log.Warn("event batch failed, retrying", "events", len(events), "attempt", attempt+1, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff *= 4
	}
}
