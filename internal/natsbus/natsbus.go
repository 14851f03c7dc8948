// Package natsbus carries events from many sensors to collectors over NATS
// JetStream, for `takedown sensor` and `takedown collector`. A sensor's
// Publisher drains its local event queue into a stream; a Collector pulls
// from one durable consumer (several collectors share the work), stores a
// batch and only then acknowledges it. Event IDs make every redelivery
// harmless: JetStream drops a re-published ID within its duplicate window,
// and the store ignores an ID it already holds. It is not the pipeline's
// storage (see pipeline and store) and not a general message bus.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown/takedown/internal/budget"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Defaults.
const (
	DefaultStream   = "TAKEDOWN_EVENTS"
	DefaultSubject  = "takedown.events" // a sensor publishes on <subject>.<sensor>
	DefaultConsumer = "collector"
)

// StreamOptions names and sizes the stream.
type StreamOptions struct {
	Stream   string // default DefaultStream
	Subject  string // default DefaultSubject
	Replicas int    // 1, or 3 in a JetStream cluster
	// MaxAge bounds how long unconsumed events wait (default 7 days).
	MaxAge time.Duration
	// Duplicates is JetStream's window for dropping a re-published event
	// ID (default 10 minutes).
	Duplicates time.Duration
}

func (o *StreamOptions) defaults() {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 10 * time.Minute
	}
}

// EnsureStream returns the stream, creating it with opts if it does not
// exist. An existing stream is left as it is: its replicas and limits are
// the operator's (a sensor started with other options must not shrink a
// replicated stream).
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	opts.defaults()
	s, err := js.Stream(ctx, opts.Stream)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("jetstream stream %s: %w", opts.Stream, err)
	}
	s, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       opts.Stream,
		Subjects:   []string{opts.Subject + ".>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Replicas:   opts.Replicas,
		MaxAge:     opts.MaxAge,
		Duplicates: opts.Duplicates,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.Stream(ctx, opts.Stream) // another sensor created it meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream stream %s: %w", opts.Stream, err)
	}
	return s, nil
}

// sensorToken makes a sensor name safe as one subject token.
func sensorToken(s string) string {
	if s == "" {
		return "default"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

// PublisherOptions configures a Publisher. JS and Queue are required.
type PublisherOptions struct {
	JS     jetstream.JetStream
	Queue  *event.Queue
	Stream StreamOptions
	Sensor string       // names the sensor in the subject and in events without one
	IDs    *event.IDGen // nil makes one
	Batch  int          // events published before waiting for their acks (default 1024)
	// RetryFor is how long a batch's unacknowledged events are published
	// again before they are dropped (counted): long enough to outlast a
	// JetStream leader election after a node dies (default 60s).
	RetryFor time.Duration
	Logger   *slog.Logger  // nil discards
	Backoff  time.Duration // first retry delay, doubled up to 2s (default 200ms)
	// Budget bounds what one source can make the sensor publish one by
	// one (see internal/budget); a zero Rate publishes every contact.
	Budget budget.Options
}

// Publisher drains a sensor's queue into the stream.
type Publisher struct {
	opts                       PublisherOptions
	subject                    string
	log                        *slog.Logger
	published, dropped, failed atomic.Uint64
	budget                     *budget.Budget // nil: none; owned by Run
}

// NewPublisher returns a publisher; it does nothing until Run.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if opts.JS == nil || opts.Queue == nil {
		return nil, errors.New("natsbus publisher needs JetStream and a queue")
	}
	opts.Stream.defaults()
	if opts.IDs == nil {
		opts.IDs = event.NewIDGen()
	}
	if opts.Batch <= 0 {
		opts.Batch = 1024
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = time.Minute
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	p := &Publisher{opts: opts, subject: opts.Stream.Subject + "." + sensorToken(opts.Sensor), log: opts.Logger, budget: budget.New(opts.Budget)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Published is the number of events the stream acknowledged.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Dropped is the number of events given up after RetryFor of failed publishes.
func (p *Publisher) Dropped() uint64 { return p.dropped.Load() }

// Summarised is the number of contacts folded into summary records beyond
// the first of each (the budget).
func (p *Publisher) Summarised() uint64 { return p.budget.Summarised() }

// admit keeps the events of batch[from:] that the budget stores one by one
// (all without a budget) and returns the batch.
func (p *Publisher) admit(batch []event.Event, from int) []event.Event {
	if p.budget == nil {
		return batch
	}
	out := batch[:from]
	for i := from; i < len(batch); i++ {
		e := &batch[i]
		if e.Timestamp.IsZero() {
			e.Timestamp = time.Now().UTC()
		}
		if p.budget.Admit(e) {
			out = append(out, *e)
		}
	}
	return out
}

// summaries returns batch with the budget's summaries appended when they
// are due (all of them if all is set).
func (p *Publisher) summaries(batch []event.Event, all bool) []event.Event {
	if p.budget == nil || (!all && !p.budget.Due()) {
		return batch
	}
	return append(batch, p.budget.Take()...)
}

// Run publishes until ctx is done, then publishes what is still queued
// (bounded by the retries) and returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	q := p.opts.Queue.C()
	batch := make([]event.Event, 0, p.opts.Batch)
	wctx := context.WithoutCancel(ctx)
	var sumTick <-chan time.Time
	if p.budget != nil {
		t := time.NewTicker(min(time.Second, p.budget.SummaryEvery()))
		defer t.Stop()
		sumTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			batch = batch[:0]
			for n := p.opts.Queue.Len(); n > 0; n-- {
				batch = p.admit(append(batch, <-q), len(batch))
				if len(batch) == p.opts.Batch {
					p.publish(wctx, batch)
					batch = batch[:0]
				}
			}
			p.publish(wctx, p.summaries(batch, true))
			return nil
		case <-sumTick:
			p.publish(wctx, p.summaries(batch[:0], false))
		case e := <-q:
			batch = append(batch[:0], e)
		more:
			for len(batch) < p.opts.Batch {
				select {
				case e := <-q:
					batch = append(batch, e)
				default:
					break more
				}
			}
			// A batch in flight is seen through even if ctx ends now.
			p.publish(wctx, p.summaries(p.admit(batch, 0), false))
		}
	}
}

// publish sends a batch asynchronously and waits for every ack; events
// whose publish failed are retried with the same message ID (so a publish
// that did reach the stream is not stored twice).
func (p *Publisher) publish(ctx context.Context, batch []event.Event) {
	if len(batch) == 0 {
		return
	}
	type pending struct {
		data []byte
		id   string
	}
	todo := make([]pending, 0, len(batch))
	for i := range batch {
		e := &batch[i]
		if e.ID == "" {
			e.ID = p.opts.IDs.Next()
		}
		if e.Sensor == "" {
			e.Sensor = p.opts.Sensor
		}
		if e.Timestamp.IsZero() {
			e.Timestamp = time.Now().UTC()
		}
		b, err := event.MarshalJSONL(e)
		if err != nil {
			p.dropped.Add(1)
			p.log.Error("event not encodable, dropped", "id", e.ID, "err", err)
			continue
		}
		todo = append(todo, pending{b, e.ID})
	}
	backoff := p.opts.Backoff
	giveUp := time.Now().Add(p.opts.RetryFor)
	for attempt := 1; len(todo) > 0; attempt++ {
		futures := make([]jetstream.PubAckFuture, len(todo))
		var failed []pending
		for i, m := range todo {
			f, err := p.opts.JS.PublishAsync(p.subject, m.data, jetstream.WithMsgID(m.id))
			if err != nil {
				failed = append(failed, m)
				continue
			}
			futures[i] = f
		}
		for i, f := range futures {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
				p.published.Add(1)
			case <-f.Err():
				failed = append(failed, todo[i])
			case <-ctx.Done():
				failed = append(failed, todo[i])
			}
		}
		if len(failed) == 0 {
			return
		}
		if !time.Now().Before(giveUp) || ctx.Err() != nil {
			p.dropped.Add(uint64(len(failed)))
			p.failed.Add(1)
			p.log.Error("events not published, dropped", "events", len(failed), "attempts", attempt)
			return
		}
		p.log.Warn("events not published, retrying", "events", len(failed), "attempt", attempt)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 2*time.Second)
		todo = failed
	}
}

// CollectorOptions configures a Collector. JS and Store are required.
type CollectorOptions struct {
	JS       jetstream.JetStream
	Store    store.EventStore
	Stream   StreamOptions
	Consumer string // durable consumer name, shared by all collectors (default DefaultConsumer)
	// Prepare enriches and classifies an event before storage
	// (pipeline.Pipeline.Prepare); false drops it. nil stores as received.
	Prepare func(*event.Event) bool
	Batch   int           // messages per fetch and per store transaction (default 4096)
	MaxWait time.Duration // how long a fetch waits for a full batch (default 200ms)
	// AckWait is how long JetStream waits for an ack before redelivering
	// (default 60s): longer than a batch's commit.
	AckWait time.Duration
	Logger  *slog.Logger // nil discards
}

// Collector consumes the stream into a store.
type Collector struct {
	opts                           CollectorOptions
	log                            *slog.Logger
	stored, duplicates, bad, nakks atomic.Uint64
	redelivered, batches           atomic.Uint64
}

// NewCollector returns a collector; it does nothing until Run.
func NewCollector(opts CollectorOptions) (*Collector, error) {
	if opts.JS == nil || opts.Store == nil {
		return nil, errors.New("natsbus collector needs JetStream and a store")
	}
	opts.Stream.defaults()
	if opts.Consumer == "" {
		opts.Consumer = DefaultConsumer
	}
	if opts.Batch <= 0 {
		opts.Batch = 4096
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 200 * time.Millisecond
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 60 * time.Second
	}
	c := &Collector{opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Stored is the number of events this collector newly stored.
func (c *Collector) Stored() uint64 { return c.stored.Load() }

// Duplicates is the number of redelivered events already stored.
func (c *Collector) Duplicates() uint64 { return c.duplicates.Load() }

// Redelivered is the number of messages JetStream delivered more than once
// (an ack lost or late, a batch refused, a collector stopped mid-batch).
func (c *Collector) Redelivered() uint64 { return c.redelivered.Load() }

// Batches is the number of batches stored and acknowledged.
func (c *Collector) Batches() uint64 { return c.batches.Load() }

// Refused is the number of batches the store refused; their messages were
// negatively acknowledged and come back.
func (c *Collector) Refused() uint64 { return c.nakks.Load() }

// Terminated is the number of messages never storable (undecodable,
// without an id, refused by Prepare), terminated instead of redelivered.
func (c *Collector) Terminated() uint64 { return c.bad.Load() }

// Run consumes until ctx is done. A batch is acknowledged only after the
// store committed it; a batch the store refuses is negatively acknowledged
// and comes back. It returns nil on cancellation.
func (c *Collector) Run(ctx context.Context) error {
	s, err := EnsureStream(ctx, c.opts.JS, c.opts.Stream)
	if err != nil {
		return err
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       c.opts.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.opts.AckWait,
		MaxAckPending: 4 * c.opts.Batch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("jetstream consumer %s: %w", c.opts.Consumer, err)
	}
	events := make([]event.Event, 0, c.opts.Batch)
	msgs := make([]jetstream.Msg, 0, c.opts.Batch)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(c.opts.Batch, jetstream.FetchMaxWait(c.opts.MaxWait))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.log.Warn("jetstream fetch failed, retrying", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		events, msgs = events[:0], msgs[:0]
		var received uint64
		listeners := make(map[string]uint64) // first deliveries per listener
		var redelivered []int                // indexes in events of redelivered messages
		for m := range batch.Messages() {
			e, err := event.UnmarshalJSONL(m.Data())
			if err == nil && c.opts.Prepare != nil && !c.opts.Prepare(&e) {
				err = errors.New("event refused by the pipeline")
			}
			if err == nil && e.ID == "" {
				err = errors.New("event has no id")
			}
			if err != nil {
				// Never storable: terminate it rather than redeliver forever.
				c.bad.Add(1)
				c.log.Error("undecodable event message terminated", "subject", m.Subject(), "err", err)
				m.Term() //nolint:errcheck // best effort
				continue
			}
			if md, err := m.Metadata(); err == nil {
				if md.NumDelivered == 1 {
					received++
					listeners[store.ListenerOf(&e)]++
				} else {
					c.redelivered.Add(1)
					redelivered = append(redelivered, len(events))
				}
			}
			events = append(events, e)
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		// Store with a context that survives cancellation: a batch that is
		// being committed finishes, and is then acknowledged.
		wctx := context.WithoutCancel(ctx)
		res, err := c.opts.Store.WriteBatch(wctx, &store.Batch{Events: events, Received: received, Listeners: receivedBy(listeners)})
		if err != nil {
			c.nakks.Add(1)
			c.log.Error("event batch not stored, redelivery requested", "events", len(events), "err", err)
			for _, m := range msgs {
				m.NakWithDelay(time.Second) //nolint:errcheck // unacked messages are redelivered anyway
			}
			continue
		}
		c.stored.Add(uint64(res.Inserted))
		c.duplicates.Add(uint64(res.Duplicates))
		// A redelivered message is counted as received only when it turns
		// out new: its first delivery never committed (its collector
		// died), so nothing counted it. Otherwise health would show fewer
		// events received than stored.
		late := make(map[string]uint64)
		var lateN uint64
		for _, i := range redelivered {
			if i < len(res.Fresh) && res.Fresh[i] {
				lateN++
				late[store.ListenerOf(&events[i])]++
			}
		}
		if lateN > 0 {
			if _, err := c.opts.Store.WriteBatch(wctx, &store.Batch{Received: lateN, Listeners: receivedBy(late)}); err != nil {
				c.log.Warn("counting redelivered events as received", "events", lateN, "err", err)
			}
		}
		for _, m := range msgs {
			// An ack that is lost only causes a redelivery, which the
			// store recognises.
			m.Ack() //nolint:errcheck // see above
		}
		c.batches.Add(1)
	}
	if err := c.opts.Store.Flush(context.WithoutCancel(ctx)); err != nil {
		c.log.Error("aggregates not flushed at shutdown; rebuilt on next start", "err", err)
	}
	return nil
}

// receivedBy turns first deliveries per listener into a batch's listener
// deltas. A sensor's own drops (its queue full, a publish given up) never
// reach the collector: they are in the sensor's metrics only.
func receivedBy(m map[string]uint64) []store.ListenerDelta {
	out := make([]store.ListenerDelta, 0, len(m))
	for name, n := range m {
		out = append(out, store.ListenerDelta{Name: name, Received: n})
	}
	return out
}

// publishAckTimeout bounds the wait for one publish's acknowledgement.
const publishAckTimeout = 5 * time.Second

// Connect dials NATS with reconnects forever (the sensor and the collector
// ride out a server restart) and returns the connection and its JetStream
// context.
func Connect(url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.Name("takedown")}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	// A publish whose ack never comes (its stream leader died with it in
	// flight) fails after publishAckTimeout and is published again,
	// instead of holding the publisher forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}
