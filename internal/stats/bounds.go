package stats

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// MaxWindowDays is the default longest window, in UTC days after clamping
// to the store's history, that one query may cover (Options.MaxWindowDays).
// A takedown runs about two years (730 days): a window over all of it fits.
const MaxWindowDays = 800

// MaxSeriesPoints is the most steps one series may have.
const MaxSeriesPoints = 800

// ErrTooLarge is returned (wrapped, with the figures) for a query that
// would cover more days or points than the limits above.
var ErrTooLarge = errors.New("query too large")

// DayRanger is optional for a Source: the first and last UTC day with
// stored aggregates. A Source that has it bounds every query to its
// history; one that does not bounds it to today at the latest.
type DayRanger interface {
	// DayRange returns the first and last day holding aggregates (UTC
	// midnights); ok is false when the store holds none.
	DayRange(ctx context.Context) (first, last time.Time, ok bool, err error)
}

// History is the range of days a query can find anything in: [First, End)
// in unix seconds of UTC midnights. Days outside it hold no aggregates,
// so a window's days outside it are never built.
type History struct {
	First, End int64
}

// History returns the days the engine's source can hold (HistoryOf).
func (e *Engine) History(ctx context.Context) (History, error) {
	return HistoryOf(ctx, e.src, e.now())
}

// HistoryOf returns the days src can hold: from its first stored day to
// the later of the end of today and the end of its last stored day
// (imports may hold future-dated events). Without DayRanger, anything up
// to the end of today.
func HistoryOf(ctx context.Context, src any, now time.Time) (History, error) {
	today := store.DayOf(now)
	h := History{First: today, End: today + daySecs}
	dr, ok := src.(DayRanger)
	if !ok {
		h.First = minDay
		return h, nil
	}
	first, last, ok, err := dr.DayRange(ctx)
	if err != nil {
		return History{}, fmt.Errorf("stored days: %w", err)
	}
	if ok {
		h.First = min(store.DayOf(first), h.First)
		h.End = max(store.DayOf(last)+daySecs, h.End)
	}
	return h, nil
}

// minDay is the earliest day a window without known history is clamped to
// (0001-01-01): far enough to change nothing, and a bound for the loop.
var minDay = store.DayOf(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))

// Clip returns the days of [from, to) (unix seconds) inside h: the first
// day and the end of the days to build, first >= end when none.
func (h History) Clip(from, to int64) (first, end int64) {
	return max(from-mod(from, daySecs), h.First), min(to, h.End)
}

// Days returns how many days of [from, to) lie inside h.
func (h History) Days(from, to time.Time) int64 {
	first, end := h.Clip(from.Unix(), to.Unix())
	if first >= end {
		return 0
	}
	return (end - first + daySecs - 1) / daySecs
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// CheckWindow refuses, with ErrTooLarge, a window of more than max days
// inside h (max 0: no limit).
func CheckWindow(h History, what string, from, to time.Time, max int) error {
	if n := h.Days(from, to); max > 0 && n > int64(max) {
		return fmt.Errorf("%w: the %s %s to %s covers %d days of stored history (%s to %s); at most %d", ErrTooLarge, what,
			from.Format(time.RFC3339), to.Format(time.RFC3339), n,
			time.Unix(h.First, 0).UTC().Format(time.DateOnly), time.Unix(h.End, 0).UTC().Format(time.DateOnly), max)
	}
	return nil
}

// Work is what a query cost: the day pieces it combined, the aggregate
// rows and raw events it read to build them (pieces shared with a
// concurrent query are counted by the query that built them), and the
// cached days it decoded. Tests and metrics assert on it instead of time.
type Work struct {
	Pieces      uint64 // day pieces combined (whole days, cut days, cached days)
	Rows        uint64 // aggregate rows scanned to build pieces
	RawEvents   uint64 // raw events scanned for days cut by the window
	CachedParts uint64 // cached day parts decoded
}

// Add adds o to w.
func (w *Work) Add(o Work) {
	w.Pieces += o.Pieces
	w.Rows += o.Rows
	w.RawEvents += o.RawEvents
	w.CachedParts += o.CachedParts
}

// workCounter counts a query's work across the goroutines that build its
// pieces.
type workCounter struct {
	pieces, rows, raw, cached atomic.Uint64
}

func (c *workCounter) work() Work {
	if c == nil {
		return Work{}
	}
	return Work{Pieces: c.pieces.Load(), Rows: c.rows.Load(), RawEvents: c.raw.Load(), CachedParts: c.cached.Load()}
}

type workKey struct{}

// withWork returns ctx counting work into c.
func withWork(ctx context.Context, c *workCounter) context.Context {
	return context.WithValue(ctx, workKey{}, c)
}

// workOf returns ctx's counter; a nil counter counts nothing.
func workOf(ctx context.Context) *workCounter {
	c, _ := ctx.Value(workKey{}).(*workCounter)
	return c
}

func (c *workCounter) addRows(n uint64) {
	if c != nil {
		c.rows.Add(n)
	}
}

func (c *workCounter) addRaw(n uint64) {
	if c != nil {
		c.raw.Add(n)
	}
}

func (c *workCounter) addCached() {
	if c != nil {
		c.cached.Add(1)
	}
}

func (c *workCounter) addPieces(n int) {
	if c != nil {
		c.pieces.Add(uint64(n))
	}
}
