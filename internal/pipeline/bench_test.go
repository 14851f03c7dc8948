package pipeline

import (
	"net/netip"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// BenchmarkPrepareAggregate is the per-event cost of the stages before
// storage: ID, enrichment from the bundled databases, classification and
// aggregation, over 400,000 distinct addresses.
func BenchmarkPrepareAggregate(b *testing.B) {
	g := bundledGeo(b)
	p, err := New(Options{Queue: event.NewQueue(1), Store: openStore(b), Enricher: g,
		FillCase: func(e *event.Event) { e.Family = "rustock" }})
	if err != nil {
		b.Fatal(err)
	}
	const pop = 400_000
	evs := make([]event.Event, 8192)
	var agg store.Aggregator
	n := 0
	for b.Loop() {
		for i := range evs {
			n++
			v := uint32(n*7919) % pop * 10007
			evs[i] = event.Event{Timestamp: t0, Protocol: "http", SrcIP: netip.AddrFrom4([4]byte{byte(v>>24)%223 + 1, byte(v >> 16), byte(v >> 8), byte(v)})}
			p.Prepare(&evs[i])
		}
		agg.Add(evs)
		if agg.Len() > 1_000_000 {
			agg.Take()
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
