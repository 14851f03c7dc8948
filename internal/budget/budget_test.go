package budget

import (
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
)

var t0 = time.Date(2011, 3, 17, 10, 0, 0, 0, time.UTC)

// The v4 flood alone: exactly the burst is stored one by one, the rest in
// one summary record whose count is what it stands for.
func TestBudgetExactCounts(t *testing.T) {
	now := t0
	b := New(Options{Rate: 2, Burst: 3, SummaryEvery: 10 * time.Second, Now: func() time.Time { return now }})
	src := netip.MustParseAddr("203.0.113.5")
	admitted := 0
	for i := range 100 { // 100 contacts over 10 s: 3 + 2/s refill
		e := event.Event{ID: "x", Timestamp: t0.Add(time.Duration(i) * 100 * time.Millisecond), Protocol: "udp", SrcIP: src, Family: "unknown", Unverified: true}
		if b.Admit(&e) {
			admitted++
		}
	}
	if admitted < 3+19 || admitted > 3+20 {
		t.Errorf("admitted %d of 100 over 10 s at 2/s with burst 3; want 22 or 23", admitted)
	}
	now = t0.Add(5 * time.Second)
	if b.Due() {
		t.Error("summaries due before summary_every")
	}
	now = t0.Add(20 * time.Second)
	if !b.Due() {
		t.Error("summaries not due after summary_every")
	}
	sums := b.Take()
	if len(sums) != 1 || sums[0].Count != uint64(100-admitted) || !sums[0].Unverified || sums[0].Tag != SummaryTag {
		t.Fatalf("summaries %+v; want one of count %d keeping unverified", sums, 100-admitted)
	}
	now = t0.Add(time.Hour)
	if b.Take() != nil || b.Due() {
		t.Error("summaries not forgotten after Take")
	}
}

// A flood of distinct sources fills the bucket map; the flooding source's
// empty bucket is not cleared with the rest unless the map is all floods.
func TestBudgetEvictionKeepsActiveSources(t *testing.T) {
	b := New(Options{Rate: 1, Burst: 1, MaxSources: 100})
	victim := netip.MustParseAddr("198.51.100.1")
	e := event.Event{Timestamp: t0, Protocol: "http", SrcIP: victim}
	if !b.Admit(&e) || b.Admit(&e) {
		t.Fatal("burst 1: want the first admitted, the second not")
	}
	// 1,000 other sources, each once, sprayed while the victim floods
	// on: the victim's bucket is never the least recently used.
	admitted := 0
	for i := range 1000 {
		at := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		o := event.Event{Timestamp: at, Protocol: "http", SrcIP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
		b.Admit(&o)
		e.Timestamp = at
		if b.Admit(&e) {
			admitted++
		}
		if len(b.buckets) > 100 {
			t.Fatalf("%d buckets, more than MaxSources", len(b.buckets))
		}
	}
	if admitted > 0 {
		t.Errorf("the flooding source got %d more contacts in 0.1 s at 1/s: its bucket was reset by a flood of other sources", admitted)
	}
}
