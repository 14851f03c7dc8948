package dnssink

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/event"
)

// hotWorker returns a worker of a server that was never run, with RRL off
// and events going to a queue drained by nobody (so every Offer after the
// first few is a counted drop, as cheap as a real hand-off gets).
func hotWorker(tb testing.TB, events event.Handoff) *worker {
	tb.Helper()
	s, err := New(context.Background(), Options{Listen: []string{"127.0.0.1:0"}, Source: testSource(), Events: events,
		UDPWorkers: 1, RRL: RRL{Disabled: true}, Sinkhole: Addrs{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s.newWorker(s.metrics.newShard())
}

// TestHotPathDoesNotAllocate: answering a common query, event included,
// allocates nothing once the name is interned.
func TestHotPathDoesNotAllocate(t *testing.T) {
	w := hotWorker(t, event.NewQueue(1))
	src, local := netip.MustParseAddrPort("192.0.2.77:4000"), netip.MustParseAddrPort("127.0.0.1:53")
	var msgs [][]byte
	for _, m := range []*dns.Msg{question("www.c2.example.", dns.TypeA), question("c2.example.", dns.TypeMX), question("example.org.", dns.TypeA)} {
		b, _ := m.Pack()
		msgs = append(msgs, b)
		m.SetEdns0(1232, true)
		b, _ = m.Pack()
		msgs = append(msgs, b)
	}
	allocs := testing.AllocsPerRun(200, func() {
		for _, b := range msgs {
			if w.handle(b, src, local, trUDP, w.out) == nil {
				t.Fatal("no answer")
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per %d queries", allocs, len(msgs))
	}
}

func BenchmarkHandle(b *testing.B) {
	q := event.NewQueue(1 << 16)
	w := hotWorker(b, q)
	src, local := netip.MustParseAddrPort("192.0.2.77:4000"), netip.MustParseAddrPort("127.0.0.1:53")
	msg, _ := question("www.c2.example.", dns.TypeA).Pack()
	b.ReportAllocs()
	for b.Loop() {
		w.handle(msg, src, local, trUDP, w.out)
		if q.Len() > q.Cap()/2 {
			for q.Len() > 0 {
				<-q.C()
			}
		}
	}
}

// rrlWorker is hotWorker with response rate limiting on, as rrl says.
func rrlWorker(tb testing.TB, rrl RRL) (*worker, *event.Queue) {
	tb.Helper()
	q := event.NewQueue(1 << 16)
	s, err := New(context.Background(), Options{Listen: []string{"127.0.0.1:0"}, Source: testSource(), Events: q,
		UDPWorkers: 1, RRL: rrl, Sinkhole: Addrs{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, AAAA: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s.newWorker(s.metrics.newShard()), q
}

// BenchmarkHandleRRL: the answer path with rate limiting on, for one
// client under its limit (a bucket found and charged) and for a flood of
// distinct client blocks (a bucket made, and an old one evicted, per query).
func BenchmarkHandleRRL(b *testing.B) {
	for _, bc := range []struct {
		name    string
		sources int
	}{{"one-client", 1}, {"distinct-blocks", 1 << 22}} {
		b.Run(bc.name, func(b *testing.B) {
			w, q := rrlWorker(b, RRL{ResponsesPerSecond: 1 << 30})
			local := netip.MustParseAddrPort("127.0.0.1:53")
			msg, _ := question("www.c2.example.", dns.TypeA).Pack()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n := uint32(i % bc.sources)
				i++
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 4000)
				if bc.sources > 1 {
					// distinct /24 blocks: the block is what the limiter keys
					src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(n >> 16), byte(n >> 8), byte(n), 1}), 4000)
				}
				w.now = time.Unix(0, int64(i)*1000)
				w.handle(msg, src, local, trUDP, w.out)
				if q.Len() > q.Cap()/2 {
					for q.Len() > 0 {
						<-q.C()
					}
				}
			}
		})
	}
}
