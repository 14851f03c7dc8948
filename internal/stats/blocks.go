package stats

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"

	"github.com/takedown/takedown/internal/store"
)

// Blocks. A window of many whole days (a quarter, a year) would read and
// union every day's sets: 365 days of 1.6 million addresses is 584 million
// values per query. Runs of closed days with hourly sets are therefore
// also kept merged, in blocks of 2^k days aligned on the epoch (8 to 256
// days), in the day cache (Cache) under a key that is no day (the block's
// first midnight plus k seconds), valid for the sum of its days'
// fingerprints. A window takes the largest aligned blocks that fit in its
// closed whole days, and single days for the rest: a year is at most a
// dozen blocks and a few days. A block is built on first use from its two
// halves (the smallest from its days' sets), so a late event in a closed
// day rebuilds the blocks that hold it, one level at a time.

const (
	minBlockLog = 3 // 8 days
	maxBlockLog = 8 // 256 days
	minBlock    = 1 << minBlockLog
)

// allDims asks blockDay for every dimension (to build a larger block).
const allDims Dim = "*"

// blockPart names the part of a block's cache entry that holds its
// busiest day.
const blockBusiestPart = "busiest"

// blockAt returns k when the window's piece starting at day d (covered from
// lo) can be a block of 2^k days: d aligned on 2^k days, lo at d, the
// block's days all closed, with sets, and before wholeEnd; 0 otherwise.
func (e *Engine) blockAt(d, lo, wholeEnd, setsFrom int64) uint {
	if e.cache == nil || lo != d || d < setsFrom {
		return 0
	}
	n := d / daySecs
	for k := uint(maxBlockLog); k >= minBlockLog; k-- {
		size := int64(1) << k
		if n%size == 0 && d+size*daySecs <= wholeEnd {
			return k
		}
	}
	return 0
}

// blockFP is the fingerprint of the n days from d: the sum of theirs (0:
// nothing stored those days).
func blockFP(fps map[int64]uint64, d, n int64) uint64 {
	var fp uint64
	for i := range n {
		fp += fps[d+i*daySecs]
	}
	return fp
}

// blockKey is the day-cache key of the block of 2^k days from d.
func blockKey(d int64, k uint) int64 { return d + int64(k) }

// blockDay returns the sets of the block of 2^k days from d, from the
// cache or built from its halves. fp is the sum of its days'
// fingerprints, fps the days' fingerprints.
func (e *Engine) blockDay(ctx context.Context, d int64, k uint, fp uint64, fps map[int64]uint64, by Dim, withCase bool) (*Day, error) {
	day := newDay(d)
	parts := []string{"", blockBusiestPart}
	switch {
	case by == allDims:
		for _, dim := range Dims {
			parts = append(parts, string(dim))
		}
	case by != "":
		parts = append(parts, string(by))
	}
	if withCase && by != ByCase && by != allDims {
		parts = append(parts, string(ByCase))
	}
	ok, err := e.loadBlock(ctx, day, blockKey(d, k), parts, fp)
	if err != nil {
		e.log.Warn("stats block unreadable, rebuilding", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "days", 1<<k, "err", err)
	} else if ok {
		return day, nil
	}
	day, err = e.buildBlock(ctx, d, k, fps)
	if err != nil {
		return nil, err
	}
	if err := e.saveBlock(ctx, day, blockKey(d, k), fp); err != nil {
		e.log.Warn("stats block not written", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "days", 1<<k, "err", err)
	}
	return day, nil
}

// buildBlock merges the block's halves (blocks of 2^(k-1) days), or its
// days for the smallest blocks. Every dimension is built: the block serves
// every later query.
func (e *Engine) buildBlock(ctx context.Context, d int64, k uint, fps map[int64]uint64) (*Day, error) {
	var parts []*Day
	if k == minBlockLog {
		for i := range int64(minBlock) {
			day := d + i*daySecs
			if fps[day] == 0 {
				continue
			}
			p, _, err := e.setsDayDims(ctx, day, day, day+daySecs, keyDims[:])
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
	} else {
		half := int64(1) << (k - 1)
		for _, h := range []int64{d, d + half*daySecs} {
			fp := blockFP(fps, h, half)
			if fp == 0 {
				continue
			}
			p, err := e.blockDay(ctx, h, k-1, fp, fps, allDims, false)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
	}
	return mergeDays(d, parts), nil
}

// mergeDays is the union of days (or blocks) as one piece.
func mergeDays(d int64, days []*Day) *Day {
	out := newDay(d)
	var all, res, ids []Set
	bots := make(map[string][]*roaring64.Bitmap)
	by := make(map[Dim]map[string][]Set, len(Dims))
	for _, x := range days {
		all, res, ids = append(all, x.All), append(res, x.Resolvers), append(ids, x.IDAddrs)
		for c, b := range x.BotIDs {
			bots[c] = append(bots[c], b)
		}
		for dim, m := range x.By {
			if by[dim] == nil {
				by[dim] = make(map[string][]Set)
			}
			for key, s := range m {
				by[dim][key] = append(by[dim][key], s)
			}
		}
		out.busiest = max(out.busiest, x.busiestDay())
	}
	out.All, out.Resolvers, out.IDAddrs = Union(all...), Union(res...), Union(ids...)
	for c, bs := range bots {
		out.BotIDs[c] = roaring64.FastOr(bs...)
	}
	for dim, m := range by {
		for key, ss := range m {
			out.By[dim][key] = Union(ss...)
		}
	}
	return out
}

func (e *Engine) loadBlock(ctx context.Context, day *Day, key int64, parts []string, fp uint64) (bool, error) {
	for _, part := range parts {
		b, ok, err := e.cache.LoadDayPart(ctx, key, part, fp)
		if err != nil || !ok {
			return false, err
		}
		workOf(ctx).addCached()
		switch part {
		case "":
			err = day.decodeOverall(b)
		case blockBusiestPart:
			n, k := binary.Uvarint(b)
			if k <= 0 || k != len(b) {
				err = fmt.Errorf("%w: busiest day", errCorrupt)
			}
			day.busiest = n
		default:
			err = day.decodeDim(Dim(part), b)
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

func (e *Engine) saveBlock(ctx context.Context, day *Day, key int64, fp uint64) error {
	day.optimize()
	parts := make(map[string][]byte, len(Dims)+2)
	b, err := day.EncodeOverall()
	if err != nil {
		return err
	}
	parts[""] = b
	for _, dim := range Dims {
		if parts[string(dim)], err = day.EncodeDim(dim); err != nil {
			return err
		}
	}
	parts[blockBusiestPart] = binary.AppendUvarint(nil, day.busiest)
	return e.cache.SaveDay(ctx, key, fp, parts)
}

// BuildBlocks merges the closed days' set blobs (SetsCompactor) and builds
// ahead the blocks of closed days that windows read and
// that are missing or stale (a late event moved a day's fingerprint),
// smallest first so that each is merged from its halves, and returns how
// many it built. serve runs it (through Warm) at start and after every UTC
// midnight, so that no query has to build a block: a year is then a dozen
// blocks read from the cache. It is safe to run while queries run (a block
// built twice is the same block).
func (e *Engine) BuildBlocks(ctx context.Context) (int, error) {
	if e.cache == nil || e.sets == nil {
		return 0, nil
	}
	setsFrom, err := e.firstSetsDay(ctx)
	if err != nil {
		return 0, err
	}
	today := store.DayOf(e.now())
	if c, ok := e.sets.(SetsCompactor); ok {
		start := time.Now()
		n, err := c.CompactClosedDays(ctx, today)
		if err != nil {
			return 0, fmt.Errorf("merge the closed days' sets: %w", err)
		}
		if n > 0 {
			e.log.Info("stats sets of closed days merged", "parts", n, "seconds", time.Since(start).Seconds())
		}
	}
	if setsFrom >= today {
		return 0, nil
	}
	fps, err := e.cache.Fingerprints(ctx, time.Unix(setsFrom, 0), time.Unix(today, 0))
	if err != nil {
		return 0, fmt.Errorf("day fingerprints: %w", err)
	}
	first := today
	for d := range fps {
		first = min(first, d)
	}
	built := 0
	for k := uint(minBlockLog); k <= maxBlockLog; k++ {
		n := int64(1) << k
		start := (first / daySecs / n) * n * daySecs
		for d := start; d+n*daySecs <= today; d += n * daySecs {
			if d < setsFrom {
				continue
			}
			fp := blockFP(fps, d, n)
			if fp == 0 {
				continue
			}
			if _, ok, err := e.cache.LoadDayPart(ctx, blockKey(d, k), blockBusiestPart, fp); err != nil {
				return built, err
			} else if ok {
				continue
			}
			if _, err := e.blockDay(ctx, d, k, fp, fps, allDims, false); err != nil {
				return built, err
			}
			built++
			if err := ctx.Err(); err != nil {
				return built, err
			}
		}
	}
	return built, nil
}
