package stats

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// Points of closed days. The dashboard's trend is a series of whole days
// over the whole takedown (180 days and more): each point would read and
// union a day's sets (1.6 million addresses at Rustock scale). A closed
// day's figures only change when its events do, so a series without
// dimension or case keeps each closed day's point in the day cache, under
// a key that is no day's (and no block's), valid for the day's
// fingerprint like every cached day: a late event in that day recomputes
// it.

// pointKeyOffset places a day's point in the day cache: midnight plus 64
// seconds (blocks use plus 1 to 8).
const pointKeyOffset = 64

const pointPart = "point"

// pointCache loads and saves the points of closed whole days of one
// series; the zero value caches nothing.
type pointCache struct {
	e     *Engine
	today int64
	fps   map[int64]uint64
}

// pointCache returns the point cache of a series of q from from to to:
// only whole days, without dimension and case, with a Cache.
func (e *Engine) pointCache(ctx context.Context, q Query, every Every, from, to time.Time) (pointCache, error) {
	if e.cache == nil || q.By != "" || q.Case != "" || every != Daily {
		return pointCache{}, nil
	}
	today := store.DayOf(e.now())
	if from.Unix() >= today {
		return pointCache{}, nil
	}
	fps, err := e.cache.Fingerprints(ctx, from, time.Unix(min(to.Unix(), today), 0))
	if err != nil {
		return pointCache{}, err
	}
	return pointCache{e: e, today: today, fps: fps}, nil
}

// fp returns the fingerprint of the closed whole day [t, end), if any.
func (c pointCache) fp(t, end time.Time) (int64, uint64, bool) {
	d := t.Unix()
	if c.e == nil || d%daySecs != 0 || end.Unix() != d+daySecs || end.Unix() > c.today {
		return 0, 0, false
	}
	fp, ok := c.fps[d]
	return d, fp, ok && fp != 0
}

func (c pointCache) load(ctx context.Context, t, end time.Time) (Point, bool) {
	d, fp, ok := c.fp(t, end)
	if !ok {
		return Point{}, false
	}
	b, ok, err := c.e.cache.LoadDayPart(ctx, d+pointKeyOffset, pointPart, fp)
	if err != nil || !ok {
		return Point{}, false
	}
	var v [3]uint64
	for i := range v {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return Point{}, false
		}
		v[i], b = n, b[k:]
	}
	if len(b) != 0 {
		return Point{}, false
	}
	workOf(ctx).addCached()
	return Point{From: t, To: end, UniqueIPs: v[0], EstimatedHosts: v[1], ResolverIPsExcluded: v[2]}, true
}

// save keeps p if it is a closed whole day's; a failure only costs the
// next series the computation.
func (c pointCache) save(ctx context.Context, p Point) {
	d, fp, ok := c.fp(p.From, p.To)
	if !ok {
		return
	}
	b := binary.AppendUvarint(nil, p.UniqueIPs)
	b = binary.AppendUvarint(b, p.EstimatedHosts)
	b = binary.AppendUvarint(b, p.ResolverIPsExcluded)
	if err := c.e.cache.SaveDay(ctx, d+pointKeyOffset, fp, map[string][]byte{pointPart: b}); err != nil {
		c.e.log.Warn("stats point not cached", "day", p.From.Format(time.DateOnly), "err", err)
	}
}
