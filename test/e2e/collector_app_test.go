package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/natsbus"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// publishBeacons publishes n HTTP contacts naming host, one source address
// each (10.9.block.i), as a sensor does, and returns once the stream
// acknowledged every one.
func publishBeacons(t *testing.T, url, host string, block byte, n int) {
	t.Helper()
	nc, js, err := natsbus.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := natsbus.EnsureStream(t.Context(), js, natsbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	q := event.NewQueue(n)
	listener := event.NewProducer(q, "http:e2e")
	for i := range n {
		listener.Offer(&event.Event{Timestamp: time.Now().UTC(), Protocol: "http", HTTPHost: host,
			SrcIP: netip.AddrFrom4([4]byte{10, 9, block, byte(i)})})
	}
	p, err := natsbus.NewPublisher(natsbus.PublisherOptions{JS: js, Queue: q, Sensor: "sink-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // publish what is queued, then return
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Published() != uint64(n) {
		t.Fatalf("published %d of %d", p.Published(), n)
	}
}

// The collector is assembled by the app like serve and the sensor: it
// serves /metrics and /healthz on web.metrics_listen without a dashboard,
// reloads on SIGHUP (an order imported meanwhile classifies what it stores
// next) without stopping, and stores exactly what was published.
func TestCollectorApp(t *testing.T) {
	natsURL := startNATS(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "collector")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "collector.yaml")
	// registry.poll is an hour: only the SIGHUP brings in the second order.
	// The sinkhole's sections are the defaults: a collector opens none.
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nregistry:\n  poll: 1h\nweb:\n  metrics_listen: %q\n", data, metricsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	order := func(name, caseID string) {
		t.Helper()
		mustRun(t, []byte(name+"\n"), "--data", data, "order", "import", "-", "--case", caseID, "--court", "Test", "--allow-reserved",
			"--effective", time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), "--expires", time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly))
	}
	order("c2-collect.example", "collect-1")

	col := exec.Command(binary, "--config", conf, "collector", "--nats", natsURL)
	colLog := &lockedBuffer{}
	col.Stdout, col.Stderr = colLog, colLog
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	colDone := make(chan error, 1)
	go func() { colDone <- col.Wait() }()
	t.Cleanup(func() { col.Process.Kill(); <-colDone; colDone <- nil })

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := client.Get("http://" + metricsAddr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// waitFor polls until ok says the collector is where the test wants
	// it; bounded, and failing at once if the collector exits.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); {
			select {
			case err := <-colDone:
				colDone <- err
				t.Fatalf("%s: the collector exited: %v\n%s", what, err, colLog.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached\n%s", what, colLog.String())
			}
		}
	}
	stored := func(want float64) func() bool {
		return func() bool {
			_, text, err := get("/metrics")
			v, _ := metricSum(text, "takedown_collector_events_stored_total")
			return err == nil && v == want
		}
	}
	waitFor("/healthz 200", func() bool { code, _, err := get("/healthz"); return err == nil && code == 200 })

	const seized, other, later = 120, 30, 50
	publishBeacons(t, natsURL, "c2-collect.example", 1, seized)
	publishBeacons(t, natsURL, "c2-later.example", 2, other)
	waitFor("first events stored", stored(seized+other))

	// A second order, then a service manager's reload: the collector
	// reloads through the app (the registry re-read) and keeps running.
	order("c2-later.example", "collect-2")
	if err := col.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("reload logged", func() bool { return strings.Contains(colLog.String(), "msg=reloaded") })
	publishBeacons(t, natsURL, "c2-later.example", 3, later)
	const total = seized + other + later
	waitFor("every event stored", stored(total))

	code, health, err := get("/healthz")
	if err != nil || code != 200 || health != "ok\n" {
		t.Errorf("/healthz after the reload: %d %q %v", code, health, err)
	}
	_, text, err := get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"takedown_collector_events_stored_total":    total,
		"takedown_collector_events_duplicate_total": 0,
		"takedown_collector_nats_connected":         1,
		"takedown_config_reloads_total":             1,
		"takedown_config_reload_failures_total":     0,
		"takedown_config_last_reload_successful":    1,
	} {
		if got, found := metricSum(text, name); !found || got != want {
			t.Errorf("%s = %v (found %v), want %v", name, got, found, want)
		}
	}
	// What came before the reload was stored before the rest was published:
	// two batches at least.
	if got, _ := metricSum(text, "takedown_collector_batches_total"); got < 2 {
		t.Errorf("takedown_collector_batches_total = %v, want 2 at least", got)
	}

	// SIGTERM: the collector commits and acknowledges its last batch, and
	// exits cleanly; /metrics stops with it.
	if err := col.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-colDone:
		colDone <- err
		if err != nil {
			t.Fatalf("collector: %v\n%s", err, colLog.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("collector did not stop:\n%s", colLog.String())
	}
	if _, _, err := get("/healthz"); err == nil {
		t.Error("/healthz still answers after the collector exited")
	}

	if n, rows := storedHealth(t, data); n != total || rows != total {
		t.Fatalf("stored %d (%d rows); published %d\n%s", n, rows, total, colLog.String())
	}
	// Each event carries the case of the registry in force when it was
	// stored: the second order only for what came after the reload.
	db, err := sqlite.OpenDir(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	recs, _, err := es.RecordsAfter(t.Context(), 0, 2*total)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range recs {
		e, err := event.UnmarshalJSONL(r)
		if err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s %s %d", e.HTTPHost, e.Case, e.SrcIP.As4()[2])]++
	}
	want := map[string]int{"c2-collect.example collect-1 1": seized, "c2-later.example  2": other, "c2-later.example collect-2 3": later}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored events by host, case and block: %v, want %v", got, want)
	}
}
