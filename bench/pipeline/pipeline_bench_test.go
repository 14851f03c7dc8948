//go:build bench

// Package pipelinebench measures the event pipeline against the goals of
// ANCHORS.md: events per second enriched and aggregated (goal 1,000,000),
// events per second durably stored in SQLite (goal 200,000) and in
// PostgreSQL, and peak memory. Run it with `make bench`, or:
//
//	go test -tags bench -run TestBench -v -timeout 30m ./bench/pipeline/
//
// Raw figures go to bench/results/pipeline.txt. Events come from a fixed
// population of addresses (seeded), beaconing in turn, so batches hold
// mostly distinct keys, as a large botnet's would.
package pipelinebench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	geodata "github.com/takedown/takedown/data/geo"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/geo"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// source makes the i-th of n events from a population of pop addresses
// over one day, on the fly, so that the benchmark's own input does not
// count in the peak memory.
type source struct {
	addrs []netip.Addr
	n     int
	day   time.Time
}

func newSource(n, pop int) *source {
	r := rand.New(rand.NewPCG(2011, 3))
	addrs := make([]netip.Addr, pop)
	for i := range addrs {
		v := r.Uint32()
		addrs[i] = netip.AddrFrom4([4]byte{byte(v>>24)%223 + 1, byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return &source{addrs: addrs, n: n, day: time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC)}
}

func (s *source) event(i int, e *event.Event) {
	*e = event.Event{
		Timestamp: s.day.Add(time.Duration(i) * (24 * time.Hour / time.Duration(s.n))),
		Protocol:  event.ProtoHTTP, Transport: "tcp",
		SrcIP: s.addrs[(i*7919)%len(s.addrs)], SrcPort: uint16(1024 + i%60000),
		DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80,
		HTTPMethod: "GET", HTTPURL: "/login.php", HTTPHost: "c2.rustock.example", HTTPAgent: "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
	}
}

func classify(e *event.Event) { e.Family, e.Case = "rustock", "MS-2011-03" }

// cpuSeconds is the process's user and system CPU time so far: on a shared,
// loaded machine, events per CPU second is the steadier figure.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func maxRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

type report struct {
	tb  testing.TB
	raw *os.File
}

func newReport(tb testing.TB) *report {
	dir := filepath.Join("..", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "pipeline.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	fmt.Fprintf(f, "# %s GOMAXPROCS=%d NumCPU=%d\n", time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), runtime.NumCPU())
	return &report{tb, f}
}

func (r *report) line(name string, eps, goal float64) {
	l := fmt.Sprintf("%s project=%.0f anchor=goal:%.0f ratio=%.2f", name, eps, goal, eps/goal)
	fmt.Println(l)
	fmt.Fprintln(r.raw, l)
}

func (r *report) raw_(format string, args ...any) { fmt.Fprintf(r.raw, format+"\n", args...) }

func TestBench(t *testing.T) {
	rep := newReport(t)
	g, err := geo.Open(geo.Options{Country: geo.Source{Data: geodata.Country()}, ASN: geo.Source{Data: geodata.ASN()}})
	if err != nil {
		t.Fatal(err)
	}
	pop := envInt("BENCH_POPULATION", 400_000)

	// 1. Durable storage through the whole pipeline: queue → prepare →
	// SQLite batches (WAL, synchronous=NORMAL: a commit survives kill -9).
	run := func(name string, st store.EventStore, n, pop int, goal float64) {
		src := newSource(n, pop)
		q := event.NewQueue(1 << 16)
		p, err := pipeline.New(pipeline.Options{Queue: q, Store: st, Enricher: g, FillCase: classify, DrainTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		start, cpu0 := time.Now(), cpuSeconds()
		go func() { done <- p.Run(ctx) }()
		var e event.Event
		for i := range n {
			src.event(i, &e)
			for q.Len() >= q.Cap() {
				// The benchmark wants every event: wait (without spinning,
				// which would count as the pipeline's CPU), do not drop.
				time.Sleep(200 * time.Microsecond)
			}
			q.Offer(&e)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		d, cpu := time.Since(start), cpuSeconds()-cpu0
		s := p.Stats()
		rep.raw_("%s: %d events, %d stored, %d dropped, %d batches, %v wall, %.2fs CPU (this process)", name, n, s.Stored, s.Dropped, s.Batches, d, cpu)
		if s.Stored != uint64(n) {
			t.Fatalf("%s: stored %d of %d", name, s.Stored, n)
		}
		rep.line(name, float64(n)/d.Seconds(), goal)
		rep.line(name+"_per_cpu_second", float64(n)/cpu, goal)
	}
	// Two populations: every event from a different source than the last
	// few hundred thousand (the worst case: one aggregate row write per
	// event), and 20,000 busy sources (about 25 events per source per
	// aggregate run: the raw-event path dominates).
	for _, sc := range []struct {
		name string
		pop  int
	}{{"pipeline_store_sqlite", pop}, {"pipeline_store_sqlite_20k_sources", 20_000}} {
		db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		run(sc.name, st, envInt("BENCH_STORE_EVENTS", 500_000), sc.pop, 200_000)
		st.Close()
		db.Close()
	}
	if os.Getenv("BENCH_SKIP_POSTGRES") == "" {
		srv := pgtest.Start(t, pgtest.Options{Durable: true})
		st, err := postgres.Open(t.Context(), srv.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		run("pipeline_store_postgres", st.Events(), envInt("BENCH_PG_EVENTS", 200_000), pop, 200_000)
		st.Close()
	}
	// Peak memory of the store runs (the input is made on the fly): the
	// queue, two batches, the pending aggregates and SQLite's page cache.
	rss := maxRSSMiB()
	rep.raw_("peak RSS through the store runs %.0f MiB", rss)
	fmt.Printf("pipeline_peak_rss_mib project=%.0f anchor=none ratio=-\n", rss)

	// 3. Enrichment and aggregation, one goroutine.
	{
		n := envInt("BENCH_ENRICH_EVENTS", 2_000_000)
		src := newSource(n, pop)
		evs := make([]event.Event, n)
		for i := range evs {
			src.event(i, &evs[i])
		}
		p, err := pipeline.New(pipeline.Options{Queue: event.NewQueue(1), Store: nopStore{}, Enricher: g, FillCase: classify})
		if err != nil {
			t.Fatal(err)
		}
		var agg store.Aggregator
		const batch = 8192
		start, cpu0 := time.Now(), cpuSeconds()
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			for i := lo; i < hi; i++ {
				p.Prepare(&evs[i])
			}
			agg.Add(evs[lo:hi])
			if agg.Len() >= 1_000_000 {
				agg.Take()
			}
		}
		d, cpu := time.Since(start), cpuSeconds()-cpu0
		keys := agg.Len()
		rep.raw_("enrich+aggregate: %d events, %d addresses, %v wall, %.2fs CPU, %d keys held at end", n, pop, d, cpu, keys)
		rep.line("pipeline_enrich", float64(n)/d.Seconds(), 1_000_000)
		rep.line("pipeline_enrich_per_cpu_second", float64(n)/cpu, 1_000_000)
	}

}

// nopStore takes nothing; the enrichment stage needs no store.
type nopStore struct{ store.EventStore }
