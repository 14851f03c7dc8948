package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/natsbus"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// startNATS runs a JetStream nats-server on a free loopback port until the
// test ends and returns its URL and a kill that stops it at once.
func startNATS(t *testing.T) (url string, kill func()) {
	t.Helper()
	bin := testtool.Need(t, "nats-server", "nats-server")
	dir := t.TempDir()
	port := testtool.FreePort(t, "tcp")
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n", port, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	kill = func() {
		select {
		case <-done:
		default:
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
	t.Cleanup(kill)
	url = fmt.Sprintf("nats://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return url, kill
		}
		if i > 300 {
			t.Fatalf("nats-server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publish publishes events as a sensor named "sink-a" does and returns
// when the stream acknowledged every one.
func publish(t *testing.T, url string, events []event.Event) {
	t.Helper()
	nc, js, err := natsbus.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	q := event.NewQueue(len(events))
	listener := event.NewProducer(q, "http:sink-a")
	for i := range events {
		listener.Offer(&events[i])
	}
	p, err := natsbus.NewPublisher(natsbus.PublisherOptions{JS: js, Queue: q, Sensor: "sink-a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // publish what is queued, then return
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Published() != uint64(len(events)) {
		t.Fatalf("published %d of %d events", p.Published(), len(events))
	}
}

// beacons are n HTTP contacts naming host, from one address each.
func beacons(n int, host string, first byte) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{Timestamp: time.Now().UTC(), Protocol: "http", HTTPHost: host,
			SrcIP: netip.AddrFrom4([4]byte{81, 2, first, byte(i)})}
	}
	return out
}

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metric is the value of the unlabelled sample name in a scrape; found is
// false without one.
func metric(text, name string) (v float64, found bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitStored waits until the store holds want events (bounded, so that a
// collector that stores nothing fails the test instead of hanging it).
func waitStored(t *testing.T, es *sqlite.EventStore, want uint64) {
	t.Helper()
	for i := 0; ; i++ {
		h, err := es.Health(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if h.Stored == want {
			return
		}
		if h.Stored > want || i > 1200 {
			t.Fatalf("stored %d events, want %d", h.Stored, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// casesByHost reads every stored event back and counts them by Host and
// case; every one must carry the country the App's IP databases give its
// source.
func casesByHost(t *testing.T, a *App, es *sqlite.EventStore) map[string]int {
	t.Helper()
	recs, _, err := es.RecordsAfter(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, rec := range recs {
		e, err := event.UnmarshalJSONL(rec)
		if err != nil {
			t.Fatal(err)
		}
		if want := a.geo.Lookup(e.SrcIP).Country; want == "" || e.SrcGeo != want {
			t.Errorf("event %s from %s: country %q, want %q (enriched by the App's databases)", e.ID, e.SrcIP, e.SrcGeo, want)
		}
		out[e.HTTPHost+" "+e.Case]++
	}
	return out
}

func importOrder(t *testing.T, db *sqlite.DB, caseID, name string) {
	t.Helper()
	ind, err := registry.Parse(name, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := db.Import(t.Context(), registry.Order{Case: caseID, Court: "c", Family: "rustock",
		Effective: now.Add(-time.Hour), Expires: now.Add(24 * time.Hour)}, []registry.Indicator{ind}, "test", false); err != nil {
		t.Fatal(err)
	}
}

// A collector App stores what a sensor published, classified by its
// registry watcher (a reload brings in an order imported meanwhile) and
// enriched by its IP databases; /metrics counts it and /healthz says 200;
// when it stops, every message it stored is acknowledged, and nothing of a
// sinkhole (listeners, DNS, queue, evidence log) was ever opened.
func TestCollectorRole(t *testing.T) {
	url, _ := startNATS(t)
	dir, db, es := testStores(t)
	importOrder(t, db, "b107", "evil.example")
	c := config.Default()
	c.Data = dir
	c.Registry.Poll = config.Duration(time.Hour) // only the reload brings in the second order
	c.Web.MetricsListen = "127.0.0.1:0"
	// The default listeners, DNS sinkhole, dashboard and evidence log stay
	// configured: a collector must open none of them.
	a, err := New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry(), Collect: &CollectOptions{NATS: url}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Addrs()) != 0 || a.dns != nil || a.web != nil || a.selfcheck != nil || a.evidence != nil || a.pipe != nil || a.Queue() != nil {
		t.Fatal("a collector opened a sinkhole's component")
	}
	base := "http://" + a.MetricsAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	publish(t, url, append(beacons(30, "evil.example", 1), beacons(20, "worse.example", 2)...))
	waitStored(t, es, 50)
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz while running: %d %q", code, body)
	}

	// An order imported now: the registry in force does not hold it until
	// a reload.
	importOrder(t, db, "b108", "worse.example")
	if err := a.Reload(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	publish(t, url, beacons(10, "worse.example", 3))
	waitStored(t, es, 60)

	// Read back while the App's IP databases are open.
	want := map[string]int{"evil.example b107": 30, "worse.example ": 20, "worse.example b108": 10}
	got := casesByHost(t, a, es)
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: %d events, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("stored %v, want %v", got, want)
	}

	_, scrape := httpGet(t, base+"/metrics")
	for name, want := range map[string]float64{
		"takedown_collector_events_stored_total":        60,
		"takedown_collector_events_duplicate_total":     0,
		"takedown_collector_messages_terminated_total":  0,
		"takedown_collector_messages_redelivered_total": 0,
		"takedown_collector_batches_refused_total":      0,
		"takedown_collector_nats_connected":             1,
		"takedown_config_reloads_total":                 1,
		"takedown_config_last_reload_successful":        1,
	} {
		if got, ok := metric(scrape, name); !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", name, got, ok, want)
		}
	}
	if got, _ := metric(scrape, "takedown_collector_batches_total"); got < 2 {
		t.Errorf("takedown_collector_batches_total = %v, want at least the two publishes' batches", got)
	}
	if _, ok := metric(scrape, "takedown_events_queue_depth"); ok {
		t.Error("a collector exports a queue depth, but it has no queue")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Every message stored was acknowledged before the connection closed.
	nc, js, err := natsbus.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cons, err := js.Consumer(t.Context(), natsbus.DefaultStream, natsbus.DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.Delivered.Consumer != 60 {
		t.Errorf("after Run: %d unacknowledged, %d undelivered, %d delivered; want 0, 0, 60", info.NumAckPending, info.NumPending, info.Delivered.Consumer)
	}
	// Nothing of a sinkhole or of the evidence log was made in the data dir.
	if _, err := os.Stat(EvidenceDir(dir)); !os.IsNotExist(err) {
		t.Errorf("evidence dir: %v; a collector keeps no evidence log", err)
	}
	if _, err := net.Dial("tcp", a.MetricsAddr().String()); err == nil {
		t.Error("the metrics listener still answers after Run")
	}
}

// /healthz follows the collector's NATS connection: 503 naming it when the
// server is gone, and Run still stops cleanly.
func TestCollectorHealthFollowsNATS(t *testing.T) {
	url, kill := startNATS(t)
	dir, db, es := testStores(t)
	c := config.Default()
	c.Data = dir
	c.Web.MetricsListen = "127.0.0.1:0"
	a, err := New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry(), Collect: &CollectOptions{NATS: url}})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.MetricsAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz with NATS up: %d %q", code, body)
	}
	kill()
	for i := 0; ; i++ {
		code, body := httpGet(t, base+"/healthz")
		if code == 503 && strings.HasPrefix(body, "nats: ") {
			break
		}
		if code != 200 || i > 600 {
			t.Fatalf("/healthz with NATS gone: %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, scrape := httpGet(t, base+"/metrics"); !strings.Contains(scrape, "\ntakedown_collector_nats_connected 0\n") {
		t.Error("takedown_collector_nats_connected is not 0 with NATS gone")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return with NATS gone")
	}
}

// A collector that cannot reach NATS does not start, and releases the
// metrics listener it had bound.
func TestCollectorNewReleasesOnFailure(t *testing.T) {
	dir, db, es := testStores(t)
	metricsAddr, natsAddr := freePort(t), freePort(t) // nothing listens on natsAddr
	c := config.Default()
	c.Data = dir
	c.Web.MetricsListen = metricsAddr
	newApp := func(o Options) error {
		o.Config, o.Registry, o.Events, o.Registerer = c, db, es, prometheus.NewRegistry()
		a, err := New(t.Context(), o)
		if err == nil {
			a.Close()
		}
		return err
	}
	// Twice: the first opens what the process keeps (the store's files)
	// before the second counts.
	for i := range 2 {
		before := openFDs(t)
		if err := newApp(Options{Collect: &CollectOptions{NATS: "nats://" + natsAddr}}); err == nil || !strings.Contains(err.Error(), "connect nats") {
			t.Fatalf("New with NATS unreachable: %v", err)
		}
		if after := openFDs(t); i == 1 && after != before {
			t.Errorf("%d file descriptors open after New, %d before", after, before)
		}
		bindable(t, metricsAddr, false)
	}
	if err := newApp(Options{Collect: &CollectOptions{NATS: "nats://" + natsAddr}, Web: &WebOptions{Listen: "127.0.0.1:0"}}); err == nil || !strings.Contains(err.Error(), "dashboard") {
		t.Errorf("New of a collector with a dashboard: %v", err)
	}
}

// /healthz is 200 only between the start of Run and its shutdown, while no
// role has returned and every check passes.
func TestCollectorHealthPhases(t *testing.T) {
	var h health
	failing := fmt.Errorf("nats: RECONNECTING")
	var checkErr error
	h.checks = append(h.checks, func() error { return checkErr })
	for _, step := range []struct {
		what string
		do   func()
		want string
	}{
		{"before Run", func() {}, "starting"},
		{"running", func() { h.phase.Store(phaseRunning) }, ""},
		{"a check fails", func() { checkErr = failing }, "nats: RECONNECTING"},
		{"the check passes again", func() { checkErr = nil }, ""},
		{"a role returned", func() { h.roleStopped("registry"); h.roleStopped("geo") }, "registry stopped"},
		{"shutting down", func() { h.phase.Store(phaseStopping); h.roleStopped("dns") }, "stopping"},
	} {
		step.do()
		got := ""
		if err := h.err(); err != nil {
			got = err.Error()
		}
		if got != step.want {
			t.Errorf("%s: %q, want %q", step.what, got, step.want)
		}
	}
}
