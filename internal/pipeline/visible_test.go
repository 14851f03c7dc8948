package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/connsink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// sqliteStore opens an event store that never flushes on its own schedule
// (an hour): only the pipeline's cadence makes aggregates visible.
func sqliteStore(t *testing.T) *sqlite.EventStore {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close(); db.Close() })
	return es
}

// visibleHistogram returns the accept-to-visible histogram gathered from
// reg.
func visibleHistogram(t *testing.T, reg *prometheus.Registry) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == pipeline.VisibleMetric {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no %s in the registry", pipeline.VisibleMetric)
	return nil
}

// flushes returns a Flushed hook and the channel it reports on; reports
// are never lost, and never block the writer.
func flushes() (func(uint64), <-chan uint64) {
	ch := make(chan uint64, 1<<16)
	return func(n uint64) {
		select {
		case ch <- n:
		default:
		}
	}, ch
}

// waitVisible waits until flushes report at least want events made
// visible in all. It waits on the pipeline, not on a clock: the test's
// own deadline is the only bound.
func waitVisible(t *testing.T, ch <-chan uint64, want uint64) {
	t.Helper()
	var got uint64
	for got < want {
		select {
		case n := <-ch:
			got += n
		case <-t.Context().Done():
			t.Fatalf("%d of %d events made visible", got, want)
		}
	}
}

// TestVisibleThroughListenerAndAPI: an HTTP request to a real listener is
// stored, a flush of the pipeline's cadence makes it count in
// GET /api/v1/stats, and the histogram observed it once.
func TestVisibleThroughListenerAndAPI(t *testing.T) {
	es := sqliteStore(t)
	q := event.NewQueue(1024)
	reg := prometheus.NewRegistry()
	hook, flushed := flushes()
	p, err := pipeline.New(pipeline.Options{Queue: q, Store: es, Registerer: reg, Flushed: hook})
	if err != nil {
		t.Fatal(err)
	}
	l, err := connsink.New(connsink.Options{Kind: connsink.KindHTTP, Addr: "127.0.0.1:0", Handoff: event.NewProducer(q, "http:test")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- p.Run(ctx) }()
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})

	a := api.New(api.Options{Events: es, Stats: stats.New(stats.Options{Source: es}), PublicStats: true, MinCount: 1})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	uniqueIPs := func() uint64 {
		t.Helper()
		resp, err := http.Get(srv.URL + api.Prefix + "/stats?window=1h")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			UniqueIPs uint64 `json:"unique_ips"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /stats: %d %v", resp.StatusCode, err)
		}
		return doc.UniqueIPs
	}
	if n := uniqueIPs(); n != 0 {
		t.Fatalf("unique_ips %d before any event", n)
	}

	resp, err := http.Get(fmt.Sprintf("http://%s/gate.php?id=bot1", l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitVisible(t, flushed, 1)

	if n := uniqueIPs(); n != 1 {
		t.Fatalf("unique_ips %d after the flush, want 1", n)
	}
	h := visibleHistogram(t, reg)
	if h.GetSampleCount() != 1 || h.GetSampleSum() < 0 {
		t.Fatalf("histogram count %d sum %v, want one observation", h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestVisibleUnderLoad: while batches keep coming (the old cadence flushed
// only when a whole tick passed without one), aggregates are still flushed
// on the cadence.
func TestVisibleUnderLoad(t *testing.T) {
	es := sqliteStore(t)
	q := event.NewQueue(1 << 14)
	hook, flushed := flushes()
	p, err := pipeline.New(pipeline.Options{Queue: q, Store: es, Flushed: hook, Linger: time.Millisecond, FlushEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := make(chan struct{})
	offered := make(chan int)
	go func() {
		i := 0
		for {
			select {
			case <-stop:
				offered <- i
				return
			default:
			}
			i++
			e := event.Event{Timestamp: time.Now(), Protocol: event.ProtoHTTP, SrcIP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
			q.Offer(&e)
			time.Sleep(100 * time.Microsecond) // a steady stream, a batch every Linger
		}
	}()
	// Visible while the stream runs: more than one flush's worth of
	// events, so the cadence fired under load at least twice.
	waitVisible(t, flushed, 1)
	waitVisible(t, flushed, 1)
	close(stop)
	n := <-offered
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Stored != uint64(n) {
		t.Fatalf("stored %d of %d offered", s.Stored, n)
	}
}

// TestVisibleHistogram observes the wait from each event's timestamp to
// the flush on the pipeline's clock: 1.5 s for listener events, none for a
// summary record or a re-delivered event.
func TestVisibleHistogram(t *testing.T) {
	es := sqliteStore(t)
	q := event.NewQueue(64)
	reg := prometheus.NewRegistry()
	now := time.Date(2011, 3, 17, 10, 0, 0, 0, time.UTC)
	p, err := pipeline.New(pipeline.Options{Queue: q, Store: es, Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	offer := func(e event.Event) { q.Offer(&e) }
	for i := range 3 {
		offer(event.Event{ID: fmt.Sprint("e", i), Timestamp: now.Add(-1500 * time.Millisecond), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("192.0.2.1")})
	}
	offer(event.Event{ID: "e0", Timestamp: now.Add(-1500 * time.Millisecond), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("192.0.2.1")}) // re-delivered
	offer(event.Event{ID: "sum", Timestamp: now.Add(-time.Hour), Count: 40, Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("192.0.2.2")})
	offer(event.Event{ID: "ahead", Timestamp: now.Add(time.Second), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("192.0.2.3")}) // a clock ahead: no wait
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	h := visibleHistogram(t, reg)
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 4.5 {
		t.Fatalf("count %d sum %v, want 4 events waiting 4.5 s in all", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 1.5:
			want = 4
		case b.GetUpperBound() >= 0:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

// TestCommittedHookOffTheWriter: the Committed hook (the evidence log's
// append) runs beside the writer: while it is stuck on a batch, the
// aggregates of that batch are still flushed and visible; every fresh
// event reaches the hook once, in commit order, before Run returns.
func TestCommittedHookOffTheWriter(t *testing.T) {
	es := sqliteStore(t)
	q := event.NewQueue(1 << 12)
	hook, flushed := flushes()
	release := make(chan struct{})
	var seen []string
	p, err := pipeline.New(pipeline.Options{Queue: q, Store: es, Flushed: hook, BatchSize: 16, FlushEvery: 10 * time.Millisecond,
		Committed: func(_ context.Context, b *store.Batch, res store.BatchResult) {
			<-release
			for i := range b.Events {
				if res.Fresh[i] {
					seen = append(seen, b.Events[i].ID)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		e := event.Event{ID: fmt.Sprintf("e%03d", i), Timestamp: time.Now(), Protocol: event.ProtoHTTP, SrcIP: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}
		q.Offer(&e)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// The hook holds the first batch; its events are visible all the same.
	waitVisible(t, flushed, 16)
	close(release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("the hook saw %d of %d events", len(seen), n)
	}
	for i, id := range seen {
		if want := fmt.Sprintf("e%03d", i); id != want {
			t.Fatalf("the hook saw %s at %d, want %s: out of commit order", id, i, want)
		}
	}
}
