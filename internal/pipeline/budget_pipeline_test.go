package pipeline

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/budget"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// A flood from one source (2,000 contacts within one second, from
// addresses of one IPv6 /64 and one IPv4 address) is stored as at most the
// budget's burst of raw records plus one summary per key, while the
// aggregates count every contact; a quiet source is untouched.
func TestBudgetSummarisesFloods(t *testing.T) {
	st := openStore(t)
	q := event.NewQueue(5000)
	var fresh int
	reg := prometheus.NewRegistry()
	p, err := New(Options{Queue: q, Store: st, BatchSize: 256, Registerer: reg,
		Budget: budget.Options{Rate: 5, Burst: 10, SummaryEvery: time.Hour},
		Committed: func(_ context.Context, b *store.Batch, res store.BatchResult) {
			for _, f := range res.Fresh {
				if f {
					fresh++
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	v4 := netip.MustParseAddr("198.51.100.7")
	for i := range 1000 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		q.Offer(&event.Event{Timestamp: at, Protocol: "http", SrcIP: v4, Family: "rustock"})
		// Rotating through one /64 gains nothing: one budget.
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
		q.Offer(&event.Event{Timestamp: at, Protocol: "tcp", SrcIP: v6, Family: "kelihos"})
	}
	for i := range 5 { // a quiet source: one contact a minute
		q.Offer(&event.Event{Timestamp: t0.Add(time.Duration(i) * time.Minute), Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1"), Family: "rustock"})
	}
	runUntilDrained(t, p)

	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Each flooding source: its burst of 10 plus at most 5 refilled over
	// the second, then one summary (v6: under the /64's first address);
	// the quiet source's 5.
	if h.Received != 2005 || h.Stored+h.Summarised != 2005 {
		t.Errorf("health: received %d, stored %d + summarised %d; want every one of 2005 contacts accounted for", h.Received, h.Stored, h.Summarised)
	}
	if h.Stored < 2*(10+1)+5 || h.Stored > 2*(15+1)+5 {
		t.Errorf("stored %d records, summarised %d; want 27 to 37 records", h.Stored, h.Summarised)
	}
	if uint64(fresh) != h.Stored {
		t.Errorf("evidence saw %d fresh records, the store %d", fresh, h.Stored)
	}
	if err := st.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	hits := map[string]uint64{}
	err = st.ScanDayIPs(t.Context(), t0.Truncate(24*time.Hour), t0.Add(24*time.Hour), func(a *store.DayIP) error {
		if a.IP.Is4() {
			hits[a.IP.String()] += a.Hits
		} else {
			hits["v6"] += a.Hits
			if a.IP.Unmap().String() == "2001:db8:0:1::" {
				hits["v6/64"] += a.Hits
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if hits["198.51.100.7"] != 1000 || hits["v6"] != 1000 || hits["v6/64"] < 985 || hits["192.0.2.1"] != 5 {
		t.Errorf("aggregate hits %v; want 1000, 1000 (985 or more of them under the /64) and 5: every contact counted", hits)
	}
	if got := counter(t, reg, "takedown_pipeline_events_summarised_total"); got != float64(h.Summarised) {
		t.Errorf("summarised metric %v, store %d", got, h.Summarised)
	}
}
