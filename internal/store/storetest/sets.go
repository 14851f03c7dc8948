package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// testHourlySets has two writers (two collectors) store overlapping keys
// at once over two days, in more batches than a part keeps blobs (so the
// writers merge them while the other writes), and checks the windows the
// hourly sets answer against a count of the events written: whole days,
// whole hours, cut hours. Purging the aggregates of a day purges its sets.
// setsEngine returns a stats engine over s's hourly sets and raw events,
// its clock three days after day0, and the sets; ok false for a store
// that keeps none.
func setsEngine(s store.EventStore) (eng *stats.Engine, sets stats.Sets, ok bool) {
	if sets, ok = s.(stats.Sets); !ok {
		return nil, nil, false
	}
	raw, _ := s.(stats.RawEvents)
	return stats.New(stats.Options{Source: s, Raw: raw, Sets: sets, Now: func() time.Time { return day0.AddDate(0, 0, 3) }}), sets, true
}

func testHourlySets(t *testing.T, s store.EventStore) {
	eng, sets, ok := setsEngine(s)
	if !ok {
		t.Skip("the store keeps no hourly sets")
	}
	const batches, per = stats.CompactAfter + 4, 60
	var all []event.Event
	for w := range 2 {
		rng := rand.New(rand.NewPCG(uint64(w), 16))
		for b := range batches {
			for i := range per {
				proto := []string{event.ProtoHTTP, event.ProtoHTTPS, event.ProtoDNS}[rng.IntN(3)]
				e := ev(fmt.Sprintf("s%d-%d-%d", w, b, i), time.Duration(rng.Int64N(int64(48*time.Hour))),
					fmt.Sprintf("10.2.%d.%d", rng.IntN(3), rng.IntN(60)), proto, []string{"rustock", "conficker"}[rng.IntN(2)])
				all = append(all, e)
			}
		}
	}
	errc := make(chan error, 2)
	for w := range 2 {
		go func() {
			mine := all[w*batches*per : (w+1)*batches*per]
			for b := range batches {
				if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: mine[b*per : (b+1)*per]}); err != nil {
					errc <- err
					return
				}
				if err := s.Flush(t.Context()); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	count := func(from, to time.Time) (direct, resolvers uint64) {
		d, r := map[string]bool{}, map[string]bool{}
		for i := range all {
			e := &all[i]
			if e.Timestamp.Before(from) || !e.Timestamp.Before(to) {
				continue
			}
			if e.Protocol == event.ProtoDNS {
				r[e.SrcIP.String()] = true
			} else {
				d[e.SrcIP.String()] = true
			}
		}
		for ip := range d {
			delete(r, ip)
		}
		return uint64(len(d)), uint64(len(r))
	}
	check := func(what string) {
		t.Helper()
		for _, w := range [][2]time.Time{
			{day0, day0.AddDate(0, 0, 2)},
			{day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)},
			{day0.Add(5 * time.Hour), day0.Add(30 * time.Hour)},
			{day0.Add(5*time.Hour + 30*time.Minute), day0.Add(7*time.Hour + 15*time.Minute)},
		} {
			r, err := eng.Stats(t.Context(), stats.Query{From: w[0], To: w[1]})
			if err != nil {
				t.Fatal(err)
			}
			d, res := count(w[0], w[1])
			if r.UniqueIPs != d || r.ResolverIPsExcluded != res || r.Work.Rows != 0 {
				t.Errorf("%s: %s to %s: %d direct, %d resolvers (%d aggregate rows read); want %d, %d from the sets", what,
					w[0].Format(time.RFC3339), w[1].Format(time.RFC3339), r.UniqueIPs, r.ResolverIPsExcluded, r.Work.Rows, d, res)
			}
		}
	}
	check("as written")
	// Merging the closed days' blobs leaves one a part and the same
	// figures.
	if c, ok := sets.(stats.SetsCompactor); ok {
		n, err := c.CompactClosedDays(t.Context(), day0.AddDate(0, 0, 2).Unix())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Error("no part merged, after more writes than a part keeps blobs")
		}
		for _, d := range []time.Time{day0, day0.AddDate(0, 0, 1)} {
			got, err := sets.LoadSets(t.Context(), d.Unix(), []string{"day", "h05", "h17", "k:country", "k:case"})
			if err != nil {
				t.Fatal(err)
			}
			for part, blobs := range got {
				if len(blobs) != 1 {
					t.Errorf("%s part %s: %d blobs after merging, want 1", d.Format(time.DateOnly), part, len(blobs))
				}
			}
		}
		check("merged")
		if n, err := c.CompactClosedDays(t.Context(), day0.AddDate(0, 0, 2).Unix()); err != nil || n != 0 {
			t.Errorf("merging again: %d parts, %v; want 0", n, err)
		}
	}
	if _, err := s.PurgeAggregates(t.Context(), day0.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	left, err := sets.LoadSets(t.Context(), day0.Unix(), []string{"day", "h05", "k:country"})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("sets of a purged day left: %d parts", len(left))
	}
	kept, err := sets.LoadSets(t.Context(), day0.AddDate(0, 0, 1).Unix(), []string{"day"})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept["day"]) == 0 || len(kept["day"]) > stats.CompactAfter+1 {
		t.Errorf("the kept day has %d blobs of its day part; want 1 to %d", len(kept["day"]), stats.CompactAfter+1)
	}
}
