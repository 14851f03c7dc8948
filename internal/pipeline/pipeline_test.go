package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	geodata "github.com/takedown/takedown/data/geo"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/geo"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func openStore(tb testing.TB) *sqlite.EventStore {
	tb.Helper()
	db, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := sqlite.NewEventStore(tb.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(); db.Close() })
	return s
}

func bundledGeo(tb testing.TB) *geo.DB {
	tb.Helper()
	g, err := geo.Open(geo.Options{Country: geo.Source{Data: geodata.Country()}, ASN: geo.Source{Data: geodata.ASN()}})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// runUntilDrained runs p with an already cancelled context: Run stores
// everything queued and returns, so the test needs no timing.
func runUntilDrained(tb testing.TB, p *Pipeline) {
	tb.Helper()
	ctx, cancel := context.WithCancel(tb.Context())
	cancel()
	if err := p.Run(ctx); err != nil {
		tb.Fatalf("Run: %v", err)
	}
}

var t0 = time.Date(2011, 3, 17, 10, 0, 0, 0, time.UTC)

func TestPipelineStoresEnrichedClassifiedEvents(t *testing.T) {
	st := openStore(t)
	q := event.NewQueue(100)
	reg := prometheus.NewRegistry()
	p, err := New(Options{
		Queue: q, Store: st, Enricher: bundledGeo(t), BatchSize: 3, Registerer: reg,
		FillCase: func(e *event.Event) {
			if strings.HasSuffix(e.HTTPHost, "rustock.example") {
				e.Family, e.Case = "rustock", "case-1"
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	offer := func(e event.Event) { q.Offer(&e) }
	for i := range 5 {
		offer(event.Event{Timestamp: t0.Add(time.Duration(i) * time.Minute), Protocol: "http", SrcIP: netip.MustParseAddr("1.0.0.1"), HTTPHost: "c2.rustock.example"})
	}
	offer(event.Event{ID: "fixed", Timestamp: t0, Protocol: "http", SrcIP: netip.MustParseAddr("2600::1"), HTTPHost: "x.example"})
	offer(event.Event{ID: "fixed", Timestamp: t0, Protocol: "http", SrcIP: netip.MustParseAddr("2600::1"), HTTPHost: "x.example"}) // re-delivered
	offer(event.Event{Timestamp: t0, Protocol: "http"})                                                                            // no source: dropped
	offer(event.Event{Timestamp: t0, Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1"), SrcGeo: "ZZ", SrcASN: 1, SrcOrg: "kept"})
	runUntilDrained(t, p)

	if s := p.Stats(); s.Received != 9 || s.Stored != 7 || s.Duplicates != 1 || s.Dropped != 1 {
		t.Fatalf("stats %+v", s)
	}
	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Offered straight to the queue, without a producer: the stored and
	// dropped events count under the unnamed listener, received only in
	// the totals.
	wantH := store.Health{Received: 9, Stored: 7, Dropped: 1,
		Listeners: []store.ListenerHealth{{Name: store.UnnamedListener, Stored: 7, Dropped: 1}}}
	if !reflect.DeepEqual(h, wantH) {
		t.Fatalf("persisted health %+v", h)
	}
	if got := counter(t, reg, "takedown_pipeline_events_stored_total"); got != 7 {
		t.Fatalf("metric stored = %v", got)
	}
	byIP := map[string]store.DayIP{}
	err = st.ScanDayIPs(t.Context(), t0.Truncate(24*time.Hour), t0.Add(24*time.Hour), func(a *store.DayIP) error {
		byIP[a.IP.String()] = *a
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		cc, org, family, caseID string
		asn                     uint32
		hits                    uint64
	}{
		"1.0.0.1":   {"AU", "Cloudflare, Inc.", "rustock", "case-1", 13335, 5},
		"2600::1":   {"US", "Cogent Communications", "", "", 174, 1},
		"192.0.2.1": {"ZZ", "kept", "", "", 1, 1},
	}
	if len(byIP) != len(want) {
		t.Fatalf("aggregates %+v", byIP)
	}
	for ip, w := range want {
		a := byIP[ip]
		if a.Country != w.cc || a.Org != w.org || a.ASN != w.asn || a.Family != w.family || a.Case != w.caseID || a.Hits != w.hits {
			t.Errorf("%s: got %+v, want %+v", ip, a, w)
		}
	}
}

func counter(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	tb.Fatalf("metric %s not registered", name)
	return 0
}

// failing wraps a store and fails the first n batches.
type failing struct {
	store.EventStore
	n atomic.Int32
}

func (f *failing) WriteBatch(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	if f.n.Add(-1) >= 0 {
		return store.BatchResult{}, errors.New("disk full")
	}
	return f.EventStore.WriteBatch(ctx, b)
}

func TestPipelineStoreFailureCountsDropped(t *testing.T) {
	tests := []struct {
		name        string
		failures    int32
		batchSize   int
		wantStored  uint64
		wantDropped uint64
	}{
		{"retried", 1, 100, 4, 0},                // the retry succeeds
		{"given up", 3, 100, 0, 4},               // two retries fail too: the batch is dropped, the loss persisted at once
		{"loss rides on next batch", 4, 2, 2, 2}, // persisting the loss fails too: the next batch carries it
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &failing{EventStore: openStore(t)}
			st.n.Store(tc.failures)
			q := event.NewQueue(10)
			p, err := New(Options{Queue: q, Store: st, BatchSize: tc.batchSize, Retries: 2})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				q.Offer(&event.Event{Timestamp: t0, Protocol: "tcp", SrcIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})})
			}
			runUntilDrained(t, p)
			h, err := st.Health(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if h.Stored != tc.wantStored || h.Dropped != tc.wantDropped || h.Received != 4 {
				t.Fatalf("health %+v, want stored %d dropped %d received 4", h, tc.wantStored, tc.wantDropped)
			}
			if s := p.Stats(); s.Stored != tc.wantStored || s.Dropped != tc.wantDropped {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestPipelineQueueFullIsPersisted(t *testing.T) {
	st := openStore(t)
	q := event.NewQueue(2)
	p, err := New(Options{Queue: q, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		q.Offer(&event.Event{Timestamp: t0, Protocol: "udp", SrcIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})})
	}
	runUntilDrained(t, p)
	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Received != 5 || h.Stored != 2 || h.Dropped != 3 {
		t.Fatalf("health %+v", h)
	}
}

// TestPipelineListenerHealth offers through two producers to a full queue:
// each listener's drops are its own, and the listeners add up to the
// totals.
func TestPipelineListenerHealth(t *testing.T) {
	st := openStore(t)
	q := event.NewQueue(3)
	dns, http := event.NewProducer(q, "dns"), event.NewProducer(q, "http:127.0.0.1:8080")
	if again := event.NewProducer(q, "dns"); again != dns {
		t.Fatal("a second producer of one name is not the first")
	}
	p, err := New(Options{Queue: q, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) }
	for i := range 2 { // queued
		http.Offer(&event.Event{Timestamp: t0, Protocol: "http", SrcIP: ip(i)})
	}
	dns.Offer(&event.Event{Timestamp: t0, Protocol: "dns", SrcIP: ip(10)}) // queued: the queue is full now
	for i := range 4 {                                                     // dropped
		dns.Offer(&event.Event{Timestamp: t0, Protocol: "dns", SrcIP: ip(20 + i)})
	}
	http.Offer(&event.Event{Timestamp: t0, Protocol: "http", SrcIP: ip(30)}) // dropped
	runUntilDrained(t, p)
	// The queue is empty again: one more event each, and one without a
	// source address (dropped by the pipeline, on its listener's count).
	http.Offer(&event.Event{Timestamp: t0, Protocol: "http", SrcIP: ip(40)})
	http.Offer(&event.Event{Timestamp: t0, Protocol: "http"})
	runUntilDrained(t, p)

	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := store.Health{Received: 10, Stored: 4, Dropped: 6, Listeners: []store.ListenerHealth{
		{Name: "dns", Received: 5, Stored: 1, Dropped: 4},
		{Name: "http:127.0.0.1:8080", Received: 5, Stored: 3, Dropped: 2},
	}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("health\n got %+v\nwant %+v", h, want)
	}
}

// TestPipelineListenerHealthStoreFailure checks that a batch the store
// gives up on counts as dropped on each event's own listener, also when
// persisting the loss fails and it rides on the next batch.
func TestPipelineListenerHealthStoreFailure(t *testing.T) {
	for _, failures := range []int32{3, 4} {
		t.Run(fmt.Sprint(failures, " failures"), func(t *testing.T) {
			st := &failing{EventStore: openStore(t)}
			st.n.Store(failures)
			q := event.NewQueue(10)
			a, b := event.NewProducer(q, "a"), event.NewProducer(q, "b")
			p, err := New(Options{Queue: q, Store: st, BatchSize: 3, Retries: 2})
			if err != nil {
				t.Fatal(err)
			}
			for i, pr := range []*event.Producer{a, a, b, b, b, b} { // the first batch: a, a, b
				pr.Offer(&event.Event{Timestamp: t0, Protocol: "tcp", SrcIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})})
			}
			runUntilDrained(t, p)
			h, err := st.Health(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := store.Health{Received: 6, Stored: 3, Dropped: 3, Listeners: []store.ListenerHealth{
				{Name: "a", Received: 2, Dropped: 2},
				{Name: "b", Received: 4, Stored: 3, Dropped: 1},
			}}
			if !reflect.DeepEqual(h, want) {
				t.Fatalf("health\n got %+v\nwant %+v", h, want)
			}
		})
	}
}

func TestPipelineRunsConcurrently(t *testing.T) {
	st := openStore(t)
	q := event.NewQueue(1 << 14)
	p, err := New(Options{Queue: q, Store: st, Enricher: bundledGeo(t), BatchSize: 512, DrainTimeout: 10 * time.Minute, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	const n = 3000
	var offered int
	for i := range n {
		e := event.Event{Timestamp: t0, Protocol: "http", SrcIP: netip.AddrFrom4([4]byte{1, byte(i >> 8), byte(i), 1}), ID: fmt.Sprint(i)}
		for !q.Offer(&e) {
			offered++ // counted as dropped; a real listener would not retry
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Stored != n || h.Received != uint64(n+offered) || h.Dropped != uint64(offered) {
		t.Fatalf("health %+v, want stored %d, received %d", h, n, n+offered)
	}
}

func TestRetention(t *testing.T) {
	st := openStore(t)
	now := time.Date(2011, 6, 1, 12, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i, age := range []time.Duration{40 * 24 * time.Hour, 31 * 24 * time.Hour, 29 * 24 * time.Hour, time.Hour} {
		evs = append(evs, event.Event{ID: fmt.Sprint(i), Timestamp: now.Add(-age), Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1")})
	}
	if _, err := st.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	r := &Retention{Store: st, Now: func() time.Time { return now }, Aggregates: func() time.Duration { return 35 * 24 * time.Hour }}
	ev, agg, err := r.PurgeOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ev != 2 || agg != 1 {
		t.Fatalf("purged %d events, %d aggregates; want 2, 1", ev, agg)
	}
	if n, _ := st.CountEvents(t.Context(), now.Add(-60*24*time.Hour), now); n != 2 {
		t.Fatalf("%d events left, want 2", n)
	}
}

// With a lease, a retention whose lease another node holds purges nothing;
// once that node releases it (it stopped), the next round purges, and
// stopping releases the lease in turn.
func TestRetentionLease(t *testing.T) {
	st := openStore(t)
	now := time.Date(2011, 6, 1, 12, 0, 0, 0, time.UTC)
	old := []event.Event{{ID: "old", Timestamp: now.Add(-40 * 24 * time.Hour), Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1")}}
	if _, err := st.WriteBatch(t.Context(), &store.Batch{Events: old}); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Lease(t.Context(), "retention", "other-node", now.Add(time.Hour), now); err != nil || !ok {
		t.Fatalf("other node's lease: %v %v", ok, err)
	}
	left := func() int64 {
		n, err := st.CountEvents(t.Context(), now.Add(-60*24*time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	r := &Retention{Store: st, Now: func() time.Time { return now }, Lease: st, Holder: "this-node"}
	if ran, _, _, err := r.Round(t.Context(), time.Hour); err != nil || ran {
		t.Fatalf("a round ran (%v, %v) while another node held the lease", ran, err)
	}
	if n := left(); n != 1 {
		t.Fatalf("purged while another node held the lease: %d events left", n)
	}
	if err := st.ReleaseLease(t.Context(), "retention", "other-node"); err != nil {
		t.Fatal(err)
	}
	if ran, ev, _, err := r.Round(t.Context(), time.Hour); err != nil || !ran || ev != 1 {
		t.Fatalf("round after the lease was free: ran %v, %d events, %v", ran, ev, err)
	}
	if n := left(); n != 0 {
		t.Fatalf("%d events left after the lease was free", n)
	}
	if ok, _ := st.Lease(t.Context(), "retention", "other-node", now.Add(time.Hour), now); ok {
		t.Fatal("the other node took the lease this node holds")
	}
	// Run stops at once on a cancelled context and gives the lease up.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Lease(t.Context(), "retention", "other-node", now.Add(time.Hour), now); err != nil || !ok {
		t.Fatalf("this node did not release the lease when it stopped: %v %v", ok, err)
	}
}
