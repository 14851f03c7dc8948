// Package budget is the per-source budget of the sinkhole's storage: a
// token bucket per source (an IPv4 address, an IPv6 /64) decides which
// contacts are stored one by one, and the contacts beyond it are folded
// into summary records (event.Event's Count) that still count every
// contact in the aggregates. The pipeline (serve) and the sensor's
// publisher apply it where they drain their queue. It is not a rate limit
// of answers: the listeners answer every contact.
package budget

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Options configures the per-source budget. A zero Rate turns it off.
type Options struct {
	// Rate is how many contacts per second one source (an IPv4 address,
	// an IPv6 /64) may have stored one by one, as raw records and
	// evidence leaves; Burst how many at once (default: 10 seconds' worth,
	// at least 1).
	Rate  float64
	Burst int
	// SummaryEvery is how long the contacts beyond the budget are gathered
	// into one summary record per (source address, family, case, protocol,
	// listener, UTC day) before it is stored (default 10s).
	SummaryEvery time.Duration
	// MaxSources bounds the sources tracked and the summaries held
	// (default 65536 each).
	MaxSources int
	// Now is the clock that times the summaries (default time.Now). The
	// buckets run on the contacts' own timestamps; the summaries on this
	// clock, so that a backlog of old contacts is not flushed at once.
	Now func() time.Time
}

// Budget decides which contacts are stored one by one and folds the rest
// of a flooding source into summary records (event.Event's Count): a flood
// from one source grows the raw events and the evidence log by at most
// Rate records a second plus one summary per key and SummaryEvery, while
// the aggregates still count every contact. It is a token bucket per
// source, keyed on the time of the contact (so a backlog replayed later is
// judged as it happened). It is not safe for concurrent use: the
// pipeline's preparer owns it.
type Budget struct {
	opts    Options
	burst   float64
	buckets map[[16]byte]*bucket
	sums    map[sumKey]*event.Event
	order   []sumKey // in order of first contact, so summaries come out in a stable order
	due     time.Time

	summarised atomic.Uint64 // contacts folded into a summary after its first
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last contact seen
}

type sumKey struct {
	addr       netip.Addr
	day        int64
	family     string
	caseID     string
	protocol   string
	listener   string
	unverified bool
}

// New returns a budget, or nil when opts.Rate is not positive (no
// budget: every contact is stored).
func New(opts Options) *Budget {
	if opts.Rate <= 0 {
		return nil
	}
	if opts.Burst <= 0 {
		opts.Burst = max(1, int(opts.Rate*10))
	}
	if opts.SummaryEvery <= 0 {
		opts.SummaryEvery = 10 * time.Second
	}
	if opts.MaxSources <= 0 {
		opts.MaxSources = 65536
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Budget{opts: opts, burst: float64(opts.Burst), buckets: make(map[[16]byte]*bucket), sums: make(map[sumKey]*event.Event)}
}

// sourceKey is the budget's unit: an IPv4 address, or the /64 of an IPv6
// address (one subscriber's network: rotating through it gains nothing).
func sourceKey(a netip.Addr) [16]byte {
	a = a.Unmap()
	b := a.As16()
	if a.Is6() {
		clear(b[8:])
	}
	return b
}

// Admit reports whether e, prepared (ID, time, family and case set), is
// stored as it is. If not, it is folded into its summary, which Take
// returns once due.
func (b *Budget) Admit(e *event.Event) bool {
	now := e.Timestamp.UnixNano()
	k := sourceKey(e.SrcIP)
	bk, ok := b.buckets[k]
	if !ok {
		if len(b.buckets) >= b.opts.MaxSources {
			b.evict(now)
		}
		bk = &bucket{tokens: b.burst, last: now}
		b.buckets[k] = bk
	}
	if now > bk.last {
		bk.tokens = min(b.burst, bk.tokens+float64(now-bk.last)/1e9*b.opts.Rate)
		bk.last = now
	}
	if bk.tokens >= 1 {
		bk.tokens--
		return true
	}
	// An IPv6 source is summarised under its /64 (the network's first
	// address): rotating through the addresses of one network must not
	// buy a summary record per address.
	src := e.SrcIP.Unmap()
	if src.Is6() {
		src = netip.AddrFrom16(k)
	}
	sk := sumKey{src, store.DayOf(e.Timestamp), e.Family, e.Case, e.Protocol, e.Listener, e.Unverified}
	if s, ok := b.sums[sk]; ok {
		s.Count += e.Contacts()
		b.summarised.Add(e.Contacts())
		return false
	}
	b.summarised.Add(e.Contacts() - 1)
	if len(b.sums) == 0 {
		b.due = b.opts.Now().Add(b.opts.SummaryEvery)
	}
	s := *e
	s.SrcIP, s.SrcPort = src, 0
	s.Count = e.Contacts()
	s.Tag = SummaryTag
	b.sums[sk] = &s
	b.order = append(b.order, sk)
	return false
}

// SummaryTag marks summary records (with Count) in the tag field, so that
// an analyst reading raw events sees what they are.
const SummaryTag = "summary:over-source-budget"

// evict makes room in the bucket map: first every bucket that has refilled
// to its burst by now (the same as an absent one), else the eighth of the
// buckets least recently used. It never clears the map wholesale: a source
// that keeps flooding is among the most recent and keeps its empty bucket,
// however many other sources come and go. Sorting once per eighth of the
// map keeps the cost per new source at O(log n).
func (b *Budget) evict(now int64) {
	full := int64(b.burst / b.opts.Rate * 1e9)
	for k, bk := range b.buckets {
		if now-bk.last >= full {
			delete(b.buckets, k)
		}
	}
	if len(b.buckets) < b.opts.MaxSources {
		return
	}
	lasts := make([]int64, 0, len(b.buckets))
	for _, bk := range b.buckets {
		lasts = append(lasts, bk.last)
	}
	slices.Sort(lasts)
	cut := lasts[max(1, len(lasts)/8)-1]
	for k, bk := range b.buckets {
		if bk.last <= cut {
			delete(b.buckets, k)
		}
	}
}

// Due reports whether summaries wait and are due (SummaryEvery after the
// first of them was opened, on the Now clock), or so many wait that they
// must go now.
func (b *Budget) Due() bool {
	return len(b.sums) > 0 && (!b.opts.Now().Before(b.due) || len(b.sums) >= b.opts.MaxSources)
}

// Take returns the summaries waiting, in order of their first contact, and
// forgets them.
func (b *Budget) Take() []event.Event {
	if len(b.sums) == 0 {
		return nil
	}
	out := make([]event.Event, 0, len(b.order))
	for _, k := range b.order {
		out = append(out, *b.sums[k])
	}
	clear(b.sums)
	b.order = b.order[:0]
	return out
}

// SummaryEvery is how long summaries gather before they are due.
func (b *Budget) SummaryEvery() time.Duration { return b.opts.SummaryEvery }

// Summarised is the number of contacts folded into summaries so far,
// beyond the first of each (the store's Health.Summarised).
func (b *Budget) Summarised() uint64 {
	if b == nil {
		return 0
	}
	return b.summarised.Load()
}
