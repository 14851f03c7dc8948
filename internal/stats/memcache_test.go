package stats_test

import (
	"context"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/stats"
)

// memCache is an in-memory stats.Cache whose fingerprints are the memSource's
// aggregate hits per day.
type memCache struct {
	src   *memSource
	mu    sync.Mutex
	parts map[int64]map[string][]byte
	fps   map[int64]uint64
	saves int
}

var _ stats.Cache = (*memCache)(nil)

func newMemCache(src *memSource) *memCache {
	return &memCache{src: src, parts: map[int64]map[string][]byte{}, fps: map[int64]uint64{}}
}

func (c *memCache) Fingerprints(_ context.Context, from, to time.Time) (map[int64]uint64, error) {
	out := map[int64]uint64{}
	for _, a := range c.src.aggs {
		if !a.Day.Before(from) && a.Day.Before(to) {
			out[a.Day.Unix()] += a.Hits
		}
	}
	return out, nil
}

func (c *memCache) LoadDayPart(_ context.Context, day int64, part string, fp uint64) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fps[day] != fp {
		return nil, false, nil
	}
	b, ok := c.parts[day][part]
	return b, ok, nil
}

func (c *memCache) SaveDay(_ context.Context, day int64, fp uint64, parts map[string][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parts[day], c.fps[day] = parts, fp
	c.saves++
	return nil
}
