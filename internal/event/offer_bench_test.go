package event

import "testing"

// BenchmarkProducerOffer offers from parallel listeners to a queue that a
// consumer drains, as the DNS workers do.
func BenchmarkProducerOffer(b *testing.B) {
	q := NewQueue(1 << 16)
	p := NewProducer(q, "dns")
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-q.C():
			case <-done:
				return
			}
		}
	}()
	b.Cleanup(func() { close(done) })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := Event{Protocol: ProtoDNS}
		for pb.Next() {
			p.Offer(&e)
		}
	})
}
