package stats_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
)

// TestSeriesPointsCached: a daily series keeps its closed days' points;
// the next series reads them (the same points as without the cache), and a
// late event in a closed day recomputes that day's point.
func TestSeriesPointsCached(t *testing.T) {
	hourlyStores(t, func(t *testing.T, s hourlyStore) {
		day0, events := blockEvents()
		s.write(t, events...)
		// Day 39 is open: its point is never cached.
		now := day0.AddDate(0, 0, 39).Add(5 * time.Hour)
		eng := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Cache: s.cache, Now: func() time.Time { return now }})
		plain := stats.New(stats.Options{Source: s.src, Raw: s.raw, Sets: s.sets, Now: func() time.Time { return now }})
		q := stats.Query{From: day0, To: now}
		check := func(what string, wantCached bool) *stats.Series {
			t.Helper()
			got, err := eng.Series(t.Context(), q, stats.Daily)
			if err != nil {
				t.Fatal(err)
			}
			want, err := plain.Series(t.Context(), q, stats.Daily)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Points) != 40 || len(want.Points) != 40 {
				t.Fatalf("%s: %d and %d points, want 40", what, len(got.Points), len(want.Points))
			}
			for i := range got.Points {
				g, w := got.Points[i], want.Points[i]
				if g.UniqueIPs != w.UniqueIPs || g.EstimatedHosts != w.EstimatedHosts || g.ResolverIPsExcluded != w.ResolverIPsExcluded || !g.From.Equal(w.From) || !g.To.Equal(w.To) {
					t.Errorf("%s: point %d %+v, want %+v", what, i, g, w)
				}
			}
			if cached := got.Work.CachedParts >= 39; cached != wantCached {
				t.Errorf("%s: %d cached parts; want the 39 closed days' points cached: %v", what, got.Work.CachedParts, wantCached)
			}
			return got
		}
		check("first series", false)
		before := check("second series", true)
		// A new address on day 20: that point moves, and only by one.
		late := event.Event{ID: "late", Timestamp: day0.AddDate(0, 0, 20).Add(time.Hour), Protocol: event.ProtoHTTP,
			SrcIP: netip.MustParseAddr("10.9.200.1"), Family: "rustock", Case: "c", SrcGeo: "US"}
		s.write(t, late)
		after := check("after a late event", false)
		if after.Points[20].UniqueIPs != before.Points[20].UniqueIPs+1 {
			t.Errorf("day 20: %d after a late event, %d before", after.Points[20].UniqueIPs, before.Points[20].UniqueIPs)
		}
	})
}
