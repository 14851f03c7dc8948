// Package stats answers the questions a takedown is judged by: how many
// distinct addresses still call the sinkhole in a window, per country, ASN,
// family and case, how that compares with a baseline window, and about how
// many machines stand behind those addresses. Counts are exact set unions
// of per-day Roaring bitmaps built from the store's (day, IP, family)
// aggregates and cached per closed day; docs/counting.md is the contract.
//
// It is not a query layer over raw events (see package store), not the
// per-network reports of notifications, and it never shows an individual
// address: every figure it returns is an aggregate.
package stats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/takedown/takedown/internal/store"
)

// Dim is a dimension rows can be grouped by.
type Dim string

// Dimensions.
const (
	ByCountry Dim = "country"
	ByASN     Dim = "asn"
	ByFamily  Dim = "family"
	ByCase    Dim = "case"
)

// Dims lists every dimension, in the order of the keys of an aggregate.
var Dims = [4]Dim{ByCountry, ByASN, ByFamily, ByCase}

// ParseDim parses a --by value ("" is no grouping).
func ParseDim(s string) (Dim, error) {
	if s == "" {
		return "", nil
	}
	for _, d := range Dims {
		if string(d) == s {
			return d, nil
		}
	}
	return "", fmt.Errorf("unknown dimension %q: want country, asn, family or case", s)
}

// Unknown is the row key of aggregates without a value for the dimension
// (no country, ASN 0, no family, no case).
const Unknown = "unknown"

func dimKeys(a *store.DayIP) [4]string {
	k := [4]string{a.Country, Unknown, a.Family, a.Case}
	if a.ASN != 0 {
		k[1] = strconv.FormatUint(uint64(a.ASN), 10)
	}
	for i := range k {
		if k[i] == "" {
			k[i] = Unknown
		}
	}
	return k
}

// Source is what analytics read from the event store; every
// store.EventStore is one.
type Source interface {
	ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error
	Health(ctx context.Context) (store.Health, error)
	CountEvents(ctx context.Context, from, to time.Time) (int64, error)
}

// RawEvents scans the raw events of part of a day, for windows that do
// not start or end at UTC midnight (docs/counting.md, "Partial days").
type RawEvents interface {
	// ScanEventSources calls fn for every stored raw event with a
	// timestamp in [from, to), which lie within one UTC day, with the
	// event's unmapped source address, family and protocol bit.
	ScanEventSources(ctx context.Context, from, to time.Time, fn func(ip netip.Addr, family string, p store.Protocols) error) error
}

// Cache keeps the encoded sets of closed days. A day's entry is valid for
// one fingerprint (Fingerprints): when more events of that day arrive
// later (an import, a late sensor), the fingerprint moves and the entry is
// rebuilt.
type Cache interface {
	// Fingerprints returns a value per UTC day in [from, to) with stored
	// aggregates that changes whenever an event of that day is stored or
	// the day's aggregates are purged (the number of events aggregated).
	Fingerprints(ctx context.Context, from, to time.Time) (map[int64]uint64, error)
	// LoadDayPart returns the cached part ("" for the overall sets, or a
	// dimension) of day if cached for fingerprint fp.
	LoadDayPart(ctx context.Context, day int64, part string, fp uint64) ([]byte, bool, error)
	// SaveDay replaces the cached parts of day, valid for fingerprint fp.
	SaveDay(ctx context.Context, day int64, fp uint64, parts map[string][]byte) error
}

// Options configures an Engine.
type Options struct {
	Source Source
	// Raw makes windows that cut a day exact for keys the aggregates
	// cannot decide; nil counts those keys as present (and the result
	// says how many were undecided).
	Raw RawEvents
	// Cache stores closed days' sets; nil rebuilds every day from the
	// aggregates on every query.
	Cache Cache
	// Sets reads the hourly sets the store's writer keeps; with them no
	// day from SetsFrom on is built from its aggregates (docs/counting.md,
	// "Hourly sets"). nil builds every day from the aggregates.
	Sets Sets
	// Now is the clock (nil: time.Now). Days before today's UTC midnight
	// are closed and cached.
	Now func() time.Time
	// MaxWindowDays is the longest window (and baseline) a query may
	// cover, in days of the store's history (History); 0 means
	// MaxWindowDays, negative means no limit.
	MaxWindowDays int
	Logger        *slog.Logger
}

// Engine computes statistics. It is safe for concurrent use.
type Engine struct {
	src   Source
	raw   RawEvents
	cache Cache
	sets  Sets
	// setsFrom caches Sets.SetsFrom (fixed once the store is migrated);
	// 0 until read.
	setsFrom atomic.Int64
	now      func() time.Time
	log      *slog.Logger
	// maxDays is Options.MaxWindowDays, 0 for no limit.
	maxDays int
	// flights shares a day's build between concurrent queries.
	flights singleflight.Group
}

// New returns an Engine.
func New(o Options) *Engine {
	e := &Engine{src: o.Source, raw: o.Raw, cache: o.Cache, sets: o.Sets, now: o.Now, log: o.Logger, maxDays: o.MaxWindowDays}
	switch {
	case e.maxDays == 0:
		e.maxDays = MaxWindowDays
	case e.maxDays < 0:
		e.maxDays = 0
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e
}

// Query is one statistics request.
type Query struct {
	From, To time.Time // the window [From, To)
	By       Dim       // "" for the totals only
	Top      int       // rows kept (0: all)
	// Case restricts the counts to sources of one case (docs/counting.md
	// says what this does to resolvers and the estimate).
	Case string
	// BaselineFrom and BaselineTo give the baseline window; both zero for
	// none.
	BaselineFrom, BaselineTo time.Time
}

// Validate reports what is wrong with q.
func (q *Query) Validate() error {
	var errs []error
	if !q.From.Before(q.To) {
		errs = append(errs, fmt.Errorf("window %s to %s is empty: from must be before to", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339)))
	}
	if q.HasBaseline() && !q.BaselineFrom.Before(q.BaselineTo) {
		errs = append(errs, fmt.Errorf("baseline %s to %s is empty: baseline-from must be before baseline-to", q.BaselineFrom.Format(time.RFC3339), q.BaselineTo.Format(time.RFC3339)))
	}
	if q.BaselineFrom.IsZero() != q.BaselineTo.IsZero() {
		errs = append(errs, errors.New("a baseline needs both baseline-from and baseline-to"))
	}
	if q.Top < 0 {
		errs = append(errs, fmt.Errorf("top %d is negative", q.Top))
	}
	if _, err := ParseDim(string(q.By)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// HasBaseline reports whether q asks for a baseline.
func (q *Query) HasBaseline() bool { return !q.BaselineFrom.IsZero() || !q.BaselineTo.IsZero() }

// Baseline is the baseline window's total.
type Baseline struct {
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	UniqueIPs uint64    `json:"unique_ips"`
}

// Row is one key's figures. Without a baseline the baseline fields are
// omitted; reduction_pct is omitted when the baseline count is zero.
type Row struct {
	Key string `json:"key"`
	// Org names the AS organisation of a row grouped by ASN, when the geo
	// data knows it (NameASNs); empty otherwise.
	Org               string   `json:"org,omitempty"`
	UniqueIPs         uint64   `json:"unique_ips"`
	BaselineUniqueIPs *uint64  `json:"baseline_unique_ips,omitempty"`
	ReductionPct      *float64 `json:"reduction_pct,omitempty"`
}

// Estimate says how EstimatedHosts was reached (docs/counting.md).
type Estimate struct {
	Method       string  // "identifiers", "identifiers+calibrated", "busiest-day" or "none"
	IDHosts      uint64  // distinct bot identifiers
	ModelHosts   uint64  // hosts estimated for addresses without identifiers
	ModelAddrs   uint64  // addresses without identifiers
	AddrsPerHost float64 // the calibration ratio used (0 if none)
}

// Result is the statistics document (PRODUCT.md, "Stats JSON").
type Result struct {
	From                time.Time    `json:"from"`
	To                  time.Time    `json:"to"`
	UniqueIPs           uint64       `json:"unique_ips"`
	EstimatedHosts      uint64       `json:"estimated_hosts"`
	ResolverIPsExcluded uint64       `json:"resolver_ips_excluded"`
	Baseline            *Baseline    `json:"baseline,omitempty"`
	ReductionPct        *float64     `json:"reduction_pct,omitempty"`
	By                  Dim          `json:"by,omitempty"`
	Rows                []Row        `json:"rows,omitempty"`
	Health              store.Health `json:"health"`

	// Rest sums the keys beyond Top (distinct addresses, not a sum of
	// rows), nil when nothing was cut.
	Rest *Row `json:"-"`
	// Estimate explains EstimatedHosts.
	Estimate Estimate `json:"-"`
	// Undecided counts aggregates of cut days that neither their first and
	// last sighting nor raw events could place inside or outside the
	// window (raw events purged or not available); they were counted as
	// inside. Zero means every figure is exact.
	Undecided uint64 `json:"-"`
	// Work is what computing the result cost.
	Work Work `json:"-"`
}

// ReductionPct returns the reduction from base to cur in percent, rounded
// to one decimal, or nil when base is zero.
func ReductionPct(base, cur uint64) *float64 {
	if base == 0 {
		return nil
	}
	v := (float64(base) - float64(cur)) / float64(base) * 100
	v = math.Round(v*10) / 10
	return &v
}

// Stats computes q.
func (e *Engine) Stats(ctx context.Context, q Query) (*Result, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	// Every window is bounded: days outside the store's history are never
	// built, and what is left is at most maxDays long.
	h, err := e.History(ctx)
	if err != nil {
		return nil, err
	}
	if err := CheckWindow(h, "window", q.From, q.To, e.maxDays); err != nil {
		return nil, err
	}
	if q.HasBaseline() {
		if err := CheckWindow(h, "baseline", q.BaselineFrom, q.BaselineTo, e.maxDays); err != nil {
			return nil, err
		}
	}
	var work workCounter
	ctx = withWork(ctx, &work)
	w, err := e.window(ctx, h, q.From, q.To, q.By, q.Case)
	if err != nil {
		return nil, err
	}
	r := &Result{From: q.From, To: q.To, By: q.By}
	w.fill(r)
	var bw *windowSets
	if q.HasBaseline() {
		q.BaselineFrom, q.BaselineTo = q.BaselineFrom.UTC(), q.BaselineTo.UTC()
		if bw, err = e.window(ctx, h, q.BaselineFrom, q.BaselineTo, q.By, q.Case); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		r.Baseline = &Baseline{From: q.BaselineFrom, To: q.BaselineTo, UniqueIPs: bw.all}
		r.ReductionPct = ReductionPct(r.Baseline.UniqueIPs, r.UniqueIPs)
		r.Undecided += bw.undecided
	}
	if q.By != "" {
		r.Rows, r.Rest = rows(w, bw, q.Top)
	}
	if r.Health, err = e.src.Health(ctx); err != nil {
		return nil, fmt.Errorf("stats health: %w", err)
	}
	r.Work = work.work()
	return r, nil
}

func rows(w, bw *windowSets, top int) ([]Row, *Row) {
	keys := make(map[string]struct{}, len(w.by))
	for k := range w.by {
		keys[k] = struct{}{}
	}
	if bw != nil {
		for k := range bw.by {
			keys[k] = struct{}{}
		}
	}
	out := make([]Row, 0, len(keys))
	for k := range keys {
		r := Row{Key: k, UniqueIPs: w.byLen[k]}
		if bw != nil {
			b := bw.byLen[k]
			r.BaselineUniqueIPs = &b
			r.ReductionPct = ReductionPct(b, r.UniqueIPs)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Row) int {
		if c := cmp.Compare(b.UniqueIPs, a.UniqueIPs); c != 0 {
			return c
		}
		if a.BaselineUniqueIPs != nil && b.BaselineUniqueIPs != nil {
			if c := cmp.Compare(*b.BaselineUniqueIPs, *a.BaselineUniqueIPs); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if top <= 0 || len(out) <= top {
		return out, nil
	}
	var cur, base []Set
	for _, r := range out[top:] {
		cur = append(cur, w.by[r.Key]...)
		if bw != nil {
			base = append(base, bw.by[r.Key]...)
		}
	}
	rest := &Row{Key: "other", UniqueIPs: UnionLen(cur...)}
	if bw != nil {
		b := UnionLen(base...)
		rest.BaselineUniqueIPs = &b
		rest.ReductionPct = ReductionPct(b, rest.UniqueIPs)
	}
	return out[:top], rest
}

// Every is the step of a time series.
type Every string

// Steps.
const (
	Daily  Every = "day"
	Weekly Every = "week"
)

// ParseEvery parses a --every value.
func ParseEvery(s string) (Every, error) {
	switch Every(s) {
	case Daily, Weekly:
		return Every(s), nil
	}
	return "", fmt.Errorf("unknown step %q: want day or week", s)
}

func (v Every) duration() time.Duration {
	if v == Weekly {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// Point is one step of a series.
type Point struct {
	From                time.Time `json:"from"`
	To                  time.Time `json:"to"`
	UniqueIPs           uint64    `json:"unique_ips"`
	EstimatedHosts      uint64    `json:"estimated_hosts"`
	ResolverIPsExcluded uint64    `json:"resolver_ips_excluded"`
	Rows                []Row     `json:"rows,omitempty"`
}

// Series is a time series of windows [From+i·step, From+(i+1)·step), the
// last one cut at To.
type Series struct {
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Every  Every        `json:"every"`
	By     Dim          `json:"by,omitempty"`
	Points []Point      `json:"points"`
	Health store.Health `json:"health"`
	// Undecided is as in Result, over all points.
	Undecided uint64 `json:"-"`
	// Work is what computing the series cost.
	Work Work `json:"-"`
}

// Series computes a time series of q's window (baseline ignored), one
// point per step starting at q.From, with rows when q.By is set.
func (e *Engine) Series(ctx context.Context, q Query, every Every) (*Series, error) {
	q.BaselineFrom, q.BaselineTo = time.Time{}, time.Time{}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if _, err := ParseEvery(string(every)); err != nil {
		return nil, err
	}
	s := &Series{From: q.From.UTC(), To: q.To.UTC(), Every: every, By: q.By}
	h, err := e.History(ctx)
	if err != nil {
		return nil, err
	}
	// No step lies wholly after the store's history: the series ends
	// there (today is always inside). One that starts after it is empty.
	if end := time.Unix(h.End, 0).UTC(); s.To.After(end) {
		s.To = end
		if s.To.Before(s.From) {
			s.To = s.From
		}
	}
	s.Points = []Point{}
	step := every.duration()
	if n := (s.To.Sub(s.From) + step - 1) / step; n > MaxSeriesPoints {
		return nil, fmt.Errorf("%w: the series %s to %s would have %d points; at most %d (the stored history starts %s)", ErrTooLarge,
			s.From.Format(time.RFC3339), s.To.Format(time.RFC3339), n, MaxSeriesPoints, time.Unix(h.First, 0).UTC().Format(time.DateOnly))
	}
	var work workCounter
	ctx = withWork(ctx, &work)
	pc, err := e.pointCache(ctx, q, every, s.From, s.To)
	if err != nil {
		return nil, err
	}
	for t := s.From; t.Before(s.To); t = t.Add(step) {
		end := t.Add(step)
		if end.After(s.To) {
			end = s.To
		}
		if p, ok := pc.load(ctx, t, end); ok {
			s.Points = append(s.Points, p)
			continue
		}
		w, err := e.window(ctx, h, t, end, q.By, q.Case)
		if err != nil {
			return nil, err
		}
		var r Result
		w.fill(&r)
		p := Point{From: t, To: end, UniqueIPs: r.UniqueIPs, EstimatedHosts: r.EstimatedHosts, ResolverIPsExcluded: r.ResolverIPsExcluded}
		if q.By != "" {
			p.Rows, _ = rows(w, nil, q.Top)
		}
		if r.Undecided == 0 {
			pc.save(ctx, p)
		}
		s.Points = append(s.Points, p)
		s.Undecided += r.Undecided
	}
	if s.Health, err = e.src.Health(ctx); err != nil {
		return nil, fmt.Errorf("stats health: %w", err)
	}
	s.Work = work.work()
	return s, nil
}
