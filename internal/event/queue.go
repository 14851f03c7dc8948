package event

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
)

// Handoff takes events from a listener without ever blocking it. Offer copies
// *e; it returns false when the event could not be queued, in which case it
// has been counted as dropped.
type Handoff interface {
	Offer(e *Event) bool
}

// Queue is the bounded hand-off between listeners and the pipeline. It
// never blocks a producer: when full, the event is counted as dropped.
type Queue struct {
	ch chan Event
	// received and dropped count the offers made to the queue directly;
	// a producer's offers are counted once, by the producer, and added in
	// by Received and Dropped (one contended atomic less per event).
	received atomic.Uint64
	dropped  atomic.Uint64

	mu        sync.Mutex // guards producers; never taken on Offer
	producers map[string]*Producer
}

var _ Handoff = (*Queue)(nil)

// NewQueue returns a queue holding at most size events.
func NewQueue(size int) *Queue {
	if size < 1 {
		size = 1
	}
	return &Queue{ch: make(chan Event, size)}
}

// Offer queues a copy of *e, or counts it as dropped when the queue is full.
func (q *Queue) Offer(e *Event) bool {
	q.received.Add(1)
	if q.send(e, "") {
		return true
	}
	q.dropped.Add(1)
	return false
}

// send queues a copy of *e, with its Listener set to listener unless that
// is empty, without counting it.
func (q *Queue) send(e *Event, listener string) bool {
	c := *e
	if listener != "" {
		c.Listener = listener
	}
	select {
	case q.ch <- c:
		return true
	default:
		return false
	}
}

// C is the channel the pipeline drains.
func (q *Queue) C() <-chan Event { return q.ch }

// Len is the number of events waiting.
func (q *Queue) Len() int { return len(q.ch) }

// Cap is the queue's capacity.
func (q *Queue) Cap() int { return cap(q.ch) }

// Received is the number of events offered since the queue was made,
// directly or through its producers.
func (q *Queue) Received() uint64 { return q.received.Load() + q.sum((*Producer).Received) }

// Dropped is the number of events refused because the queue was full.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() + q.sum((*Producer).Dropped) }

// sum adds up one counter of q's producers.
func (q *Queue) sum(counter func(*Producer) uint64) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var n uint64
	for _, p := range q.producers {
		n += counter(p)
	}
	return n
}

// Producer is a listener's named handle on a Queue, counting what that
// listener offered and what was dropped, for per-listener health figures.
// It sets the Listener of the events it offers that name none.
type Producer struct {
	Name     string
	q        *Queue
	received atomic.Uint64
	dropped  atomic.Uint64
}

var _ Handoff = (*Producer)(nil)

// NewProducer returns q's producer named name, registering it on first use:
// listeners that share a name (DNS over UDP and TCP, a listener started
// again) share one producer and its counters.
func NewProducer(q *Queue, name string) *Producer {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.producers[name]; ok {
		return p
	}
	if q.producers == nil {
		q.producers = make(map[string]*Producer)
	}
	p := &Producer{Name: name, q: q}
	q.producers[name] = p
	return p
}

// Producers returns the producers registered with q, sorted by name.
func (q *Queue) Producers() []*Producer {
	q.mu.Lock()
	out := make([]*Producer, 0, len(q.producers))
	for _, p := range q.producers {
		out = append(out, p)
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b *Producer) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Offer queues a copy of *e through the underlying queue, with Listener
// set to the producer's name if it was empty. *e is not changed.
func (p *Producer) Offer(e *Event) bool {
	p.received.Add(1)
	listener := ""
	if e.Listener == "" {
		listener = p.Name
	}
	if p.q.send(e, listener) {
		return true
	}
	p.dropped.Add(1)
	return false
}

// Received is the number of events this producer offered.
func (p *Producer) Received() uint64 { return p.received.Load() }

// Dropped is the number of this producer's events the queue refused.
func (p *Producer) Dropped() uint64 { return p.dropped.Load() }
