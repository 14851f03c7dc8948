package evidence

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAppend appends batches of 1000 event records (one fsync per
// batch) with a checkpoint every 100 ms; it reports leaves/s.
func BenchmarkAppend(b *testing.B) {
	ctx, cancel := context.WithCancel(b.Context())
	l, err := Open(ctx, b.TempDir(), Options{CheckpointEvery: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	recs := make([][]byte, 1000)
	for i := range recs {
		recs[i] = eventRecord(b, i, "A", t0.Add(time.Duration(i)*time.Second))
	}
	b.SetBytes(int64(len(recs[0]) * len(recs)))
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := l.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "leaves/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRangeProof measures building a range proof and verifying it.
func BenchmarkRangeProof(b *testing.B) {
	l, err := Open(b.Context(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	recs := make([][]byte, 1000)
	for i := range recs {
		recs[i] = eventRecord(b, i, "A", t0)
	}
	for range 100 {
		if _, err := l.Append(b.Context(), recs); err != nil {
			b.Fatal(err)
		}
	}
	c, err := l.Checkpoint(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	hr := l.hashes()
	for b.Loop() {
		if _, err := proveRange(c.Size, 12345, 54321, hr); err != nil {
			b.Fatal(err)
		}
	}
}
