package natsbus

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takedown/takedown/internal/budget"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// natsServer is a nats-server process with JetStream.
type natsServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *natsServer) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// startNATS starts nats-server with config conf (JetStream store in a
// fresh directory) and waits until it accepts clients.
func startNATS(tb testing.TB, port int, conf string) *natsServer {
	tb.Helper()
	bin := testtool.Need(tb, "nats-server", "nats-server")
	dir := tb.TempDir()
	path := filepath.Join(dir, "nats.conf")
	conf = fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n", port, filepath.Join(dir, "js")) + conf
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	log, err := os.Create(filepath.Join(dir, "nats.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &natsServer{url: fmt.Sprintf("nats://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			<-s.done
		}
		log.Close()
	})
	for i := 0; ; i++ {
		nc, err := nats.Connect(s.url, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return s
		}
		if i > 300 {
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("nats-server did not start: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

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

var t0 = time.Date(2011, 9, 13, 10, 0, 0, 0, time.UTC)

// sensor publishes n events from its own queue, offered by a listener
// named "http:"+name, and returns when the stream acknowledged all of them.
func sensor(tb testing.TB, url, name string, n int) {
	tb.Helper()
	nc, js, err := Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	q := event.NewQueue(n)
	listener := event.NewProducer(q, "http:"+name)
	for i := range n {
		listener.Offer(&event.Event{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), Protocol: "http",
			SrcIP: netip.AddrFrom4([4]byte{10, byte(len(name)), byte(i >> 8), byte(i)}), Family: "rustock"})
	}
	// In a cluster that just lost a node, JetStream may be electing a
	// leader: retry (bounded) as a sensor starting up would.
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(tb.Context(), 2*time.Second)
		_, err := EnsureStream(ctx, js, StreamOptions{})
		cancel()
		if err == nil {
			break
		}
		if i > 60 {
			tb.Fatal(err)
		}
	}
	p, err := NewPublisher(PublisherOptions{JS: js, Queue: q, Sensor: name, Batch: 256, RetryFor: 2 * time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(tb.Context())
	cancel() // publish what is queued, then return
	if err := p.Run(ctx); err != nil {
		tb.Fatal(err)
	}
	if p.Published() != uint64(n) || p.Dropped() != 0 {
		tb.Fatalf("sensor %s published %d, dropped %d of %d", name, p.Published(), p.Dropped(), n)
	}
}

// waitStored polls the store until it holds want events (bounded, so a
// broken collector fails the test instead of hanging it).
func waitStored(tb testing.TB, st store.EventStore, want uint64) {
	tb.Helper()
	for i := 0; ; i++ {
		h, err := st.Health(tb.Context())
		if err != nil {
			tb.Fatal(err)
		}
		if h.Stored >= want {
			return
		}
		if i > 1200 {
			tb.Fatalf("stored %d events, want %d", h.Stored, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runCollector(tb testing.TB, url string, st store.EventStore) (stop func() *Collector) {
	tb.Helper()
	_, stop = runCollectorC(tb, url, st)
	return stop
}

// runCollectorC is runCollector that also returns the running collector.
func runCollectorC(tb testing.TB, url string, st store.EventStore) (*Collector, func() *Collector) {
	tb.Helper()
	nc, js, err := Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewCollector(CollectorOptions{JS: js, Store: st, Batch: 300, AckWait: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(tb.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	return c, func() *Collector {
		cancel()
		if err := <-errc; err != nil {
			tb.Error(err)
		}
		nc.Close()
		return c
	}
}

func checkExactlyOnce(tb testing.TB, st store.EventStore, want uint64) {
	tb.Helper()
	h, err := st.Health(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	n, err := st.CountEvents(tb.Context(), t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Flush(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	rs, err := st.Rollups(tb.Context(), t0.Truncate(24*time.Hour), t0.Truncate(24*time.Hour).Add(24*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	var hits uint64
	for _, r := range rs {
		hits += r.Hits
	}
	if h.Stored != want || uint64(n) != want || hits != want {
		tb.Fatalf("stored %d, events %d, aggregate hits %d; want %d each", h.Stored, n, hits, want)
	}
	if h.Received != want {
		tb.Fatalf("health counts %d received for %d stored", h.Received, want)
	}
}

// refusing fails one batch without storing it, as a store that is briefly
// unreachable does: the collector asks for it again.
type refusing struct {
	store.EventStore
	n atomic.Int32
}

func (r *refusing) WriteBatch(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	if len(b.Events) > 0 && r.n.Add(1) == 2 {
		return store.BatchResult{}, errors.New("store unreachable")
	}
	return r.EventStore.WriteBatch(ctx, b)
}

// A batch that was never stored comes back as a redelivery; its events
// are then new, and counted as received then, so that health counts as
// many events received as stored.
func TestCollectorRedeliveryCountsReceived(t *testing.T) {
	srv := startNATS(t, testtool.FreePort(t, "tcp"), "")
	st := openStore(t)
	sensor(t, srv.url, "sink-a", 2000)
	r := &refusing{EventStore: st}
	c, stop := runCollectorC(t, srv.url, r)
	waitStored(t, st, 2000)
	stop()
	if c.Redelivered() == 0 {
		t.Fatal("the refused batch was not delivered again")
	}
	checkExactlyOnce(t, st, 2000)
}

func TestTwoSensorsOneCollector(t *testing.T) {
	srv := startNATS(t, testtool.FreePort(t, "tcp"), "")
	st := openStore(t)
	stop := runCollector(t, srv.url, st)
	sensor(t, srv.url, "sink-a", 1000)
	sensor(t, srv.url, "sink-b", 700)
	waitStored(t, st, 1700)
	c := stop()
	checkExactlyOnce(t, st, 1700)
	if c.Stored() != 1700 {
		t.Fatalf("collector counted %d stored", c.Stored())
	}
	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []store.ListenerHealth{
		{Name: "http:sink-a", Received: 1000, Stored: 1000},
		{Name: "http:sink-b", Received: 700, Stored: 700},
	}
	if !reflect.DeepEqual(h.Listeners, want) {
		t.Fatalf("listeners %+v, want %+v", h.Listeners, want)
	}
}

// dying commits batches like a real store, but after the second one the
// collector "dies" between commit and ack: the batch is durable and was
// never acknowledged, so JetStream delivers it again.
type dying struct {
	store.EventStore
	n    atomic.Int32
	kill func()
}

func (d *dying) WriteBatch(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	res, err := d.EventStore.WriteBatch(ctx, b)
	if err == nil && d.n.Add(1) == 2 {
		d.kill()
		return res, errors.New("collector died after commit")
	}
	return res, err
}

func TestCollectorKilledMidStream(t *testing.T) {
	srv := startNATS(t, testtool.FreePort(t, "tcp"), "")
	st := openStore(t)
	sensor(t, srv.url, "sink-a", 2000)

	died := make(chan struct{})
	d := &dying{EventStore: st, kill: func() { close(died) }}
	stopFirst := runCollector(t, srv.url, d)
	<-died
	first := stopFirst()
	if first.Stored() == 0 || first.Stored() >= 2000 {
		t.Fatalf("first collector stored %d: the test wants it to die mid-stream", first.Stored())
	}

	c2, stop := runCollectorC(t, srv.url, st)
	waitStored(t, st, 2000)
	// The unacknowledged batch comes back after the ack wait (2s), which
	// may be after every other event is stored: wait for it, bounded.
	for deadline := time.Now().Add(30 * time.Second); c2.Duplicates() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	second := stop()
	checkExactlyOnce(t, st, 2000)
	if second.Duplicates() == 0 {
		t.Fatal("the batch committed but not acknowledged was not redelivered")
	}
	// Every duplicate came back as a redelivery, and is counted as one.
	if second.Redelivered() < second.Duplicates() {
		t.Fatalf("%d redeliveries counted for %d duplicates", second.Redelivered(), second.Duplicates())
	}
}

func TestClusterNodeKilled(t *testing.T) {
	ports := []int{testtool.FreePort(t, "tcp"), testtool.FreePort(t, "tcp"), testtool.FreePort(t, "tcp")}
	cports := []int{testtool.FreePort(t, "tcp"), testtool.FreePort(t, "tcp"), testtool.FreePort(t, "tcp")}
	var routes []string
	for _, p := range cports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	servers := make([]*natsServer, 3)
	for i := range servers {
		conf := fmt.Sprintf("server_name: n%d\ncluster { name: takedown, listen: 127.0.0.1:%d, routes: [%s] }\n", i, cports[i], strings.Join(routes, ", "))
		servers[i] = startNATS(t, ports[i], conf)
	}
	urls := servers[0].url + "," + servers[1].url + "," + servers[2].url
	// Wait for the JetStream meta leader, then make a replicated stream.
	nc, js, err := Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := 0; ; i++ {
		if _, err = EnsureStream(t.Context(), js, StreamOptions{Replicas: 3}); err == nil {
			break
		}
		if i > 300 {
			t.Fatalf("replicated stream: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := openStore(t)
	stop := runCollector(t, urls, st)
	sensor(t, urls, "sink-a", 500)
	waitStored(t, st, 500)
	if info, err := js.Stream(t.Context(), DefaultStream); err != nil || info.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream after sensors and collector started: %v, want 3 replicas kept", err)
	}

	servers[2].kill()
	sensor(t, servers[0].url+","+servers[1].url, "sink-b", 500)
	waitStored(t, st, 1000)
	stop()
	checkExactlyOnce(t, st, 1000)
}

// A sensor applies the per-source budget before publishing: a flood from
// one source reaches the stream as its burst and one summary record, and
// the collector's store counts every contact in the aggregates.
func TestSensorBudget(t *testing.T) {
	srv := startNATS(t, testtool.FreePort(t, "tcp"), "")
	st := openStore(t)
	stop := runCollector(t, srv.url, st)
	nc, js, err := Connect(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := EnsureStream(t.Context(), js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	const flood = 3000
	q := event.NewQueue(flood)
	listener := event.NewProducer(q, "http:flooded")
	src := netip.MustParseAddr("198.51.100.66")
	for i := range flood {
		listener.Offer(&event.Event{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), Protocol: "http", SrcIP: src, Family: "rustock"})
	}
	p, err := NewPublisher(PublisherOptions{JS: js, Queue: q, Sensor: "s", Batch: 256,
		Budget: budget.Options{Rate: 10, Burst: 20, SummaryEvery: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// 3 s of contacts: the burst of 20 and at most 30 refilled, one summary.
	if n := p.Published(); n < 21 || n > 51 {
		t.Fatalf("published %d records of a %d-contact flood; want 21 to 51", n, flood)
	}
	waitStored(t, st, p.Published())
	stop()
	h, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Stored != p.Published() || h.Stored+h.Summarised != flood || p.Summarised() != h.Summarised {
		t.Errorf("stored %d + summarised %d (sensor: %d); want the %d published records standing for %d contacts", h.Stored, h.Summarised, p.Summarised(), p.Published(), flood)
	}
	if n, err := st.CountEvents(t.Context(), t0.Truncate(24*time.Hour), t0.Truncate(24*time.Hour).Add(24*time.Hour)); err != nil || n != flood {
		t.Errorf("contacts of the day %d, %v; want %d", n, err, flood)
	}
}
