package app

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// testStores opens a new SQLite store in a temporary data dir, closed at
// the test's end: the registry and the event store an App runs on.
func testStores(t *testing.T) (string, *sqlite.DB, *sqlite.EventStore) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close() })
	return dir, db, es
}

func testApp(t *testing.T) (*App, *config.Config) {
	t.Helper()
	dir, db, es := testStores(t)
	c := config.Default()
	c.Data = dir
	c.DNS.Listen = []string{"127.0.0.1:0"}
	c.Listeners = []config.Listener{{Kind: "http", Listen: "127.0.0.1:0"}}
	c.Evidence.Enabled = false
	a, err := New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, c
}

// A reload is one transaction: what cannot apply live is refused, a bad
// rules file is refused, and both keep the old state and say so in the
// last-reload metric.
func TestReload(t *testing.T) {
	a, c := testApp(t)
	ctx := t.Context()
	if err := a.Reload(ctx, c); err != nil {
		t.Fatalf("reload of the same config: %v", err)
	}
	if v := gauge(t, a.lastReloadOK); v != 1 {
		t.Fatalf("last reload metric %v after a good reload", v)
	}

	moved := *c
	moved.Listeners = []config.Listener{{Kind: "http", Listen: "127.0.0.1:1"}}
	if err := a.Reload(ctx, &moved); err == nil || !strings.Contains(err.Error(), "listeners: needs a restart") {
		t.Fatalf("reload with a new listen address: %v", err)
	}
	if v := gauge(t, a.lastReloadOK); v != 0 {
		t.Fatalf("last reload metric %v after a refused reload", v)
	}
	if a.cfg.Load() != c {
		t.Fatal("a refused reload replaced the configuration")
	}

	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - family: x\n    colour: blue\n"), 0o644)
	bad := *c
	bad.Pipeline.Rules = rules
	if err := a.Reload(ctx, &bad); err == nil || !strings.Contains(err.Error(), "pipeline.rules") {
		t.Fatalf("reload with a bad rules file: %v", err)
	}
	if a.cfg.Load() != c {
		t.Fatal("a refused reload replaced the configuration")
	}
	if err := a.Reload(ctx, c); err != nil || gauge(t, a.lastReloadOK) != 1 {
		t.Fatalf("good reload after failures: %v", err)
	}
}

// The connection sinkhole is told which seized indicator a Host belongs
// to, and the pipeline fills the case of events from the registry.
func TestCaseFromRegistry(t *testing.T) {
	a, _ := testApp(t)
	if _, _, ok := a.caseOf("c2.evil.example"); ok {
		t.Fatal("an empty registry matched a name")
	}
	ind, err := registry.Parse("evil.example", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := a.opts.Registry.(registry.Store).Import(t.Context(), registry.Order{Case: "b107", Court: "c", Family: "rustock",
		Effective: now.Add(-time.Hour), Expires: now.Add(time.Hour)}, []registry.Indicator{ind}, "test", false); err != nil {
		t.Fatal(err)
	}
	if err := a.reg.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fam, c, ok := a.caseOf("C2.Evil.example:443"); !ok || fam != "rustock" || c != "b107" {
		t.Fatalf("caseOf = %q %q %v", fam, c, ok)
	}
	e := event.Event{Protocol: event.ProtoHTTP, HTTPHost: "www.evil.example", Family: "unknown"}
	a.fillCase(&e)
	if e.Case != "b107" || e.Family != "rustock" {
		t.Fatalf("classified as case %q family %q", e.Case, e.Family)
	}
	kept := event.Event{Protocol: event.ProtoHTTP, HTTPHost: "www.evil.example", Case: "other", Family: "x"}
	a.fillCase(&kept)
	if kept.Case != "other" || kept.Family != "x" {
		t.Fatalf("a listener's classification was overwritten: %+v", kept)
	}
}

// Events stored while their append to the evidence log was lost (a crash
// between commit and append) are appended at the next start, once.
func TestEvidenceReconcile(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	c := config.Default()
	c.Data, c.DNS.Listen, c.Listeners, c.Web.Listen = dir, nil, nil, ""
	store3 := func(ids ...string) {
		var evs []event.Event
		for _, id := range ids {
			evs = append(evs, event.Event{ID: id, Timestamp: time.Now().UTC(), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("93.184.216.34")})
		}
		if _, err := es.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *App {
		a, err := New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	store3("a", "b", "c")
	a := open()
	if n := a.evidence.Size(); n != 3 {
		t.Fatalf("first start: the log holds %d entries; want the 3 stored events", n)
	}
	a.evidence.Close()
	store3("d", "e")
	a = open()
	if n := a.evidence.Size(); n != 5 {
		t.Fatalf("second start: the log holds %d entries; want 5 (each event once)", n)
	}
	a.evidence.Close()
	a = open()
	defer a.evidence.Close()
	if n := a.evidence.Size(); n != 5 {
		t.Fatalf("third start, nothing new: the log holds %d entries; want 5", n)
	}
}

// Options.HealthChecks (a sensor's NATS connection) are part of /healthz:
// a failing one is the App's health error while it runs.
func TestHealthChecksOption(t *testing.T) {
	dir, db, es := testStores(t)
	c := config.Default()
	c.Data = dir
	c.DNS.Listen = nil
	c.Listeners = nil
	c.Evidence.Enabled = false
	down := errors.New("the NATS connection is down")
	var failing atomic.Bool
	a, err := New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry(),
		HealthChecks: []func() error{func() error {
			if failing.Load() {
				return down
			}
			return nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.health.phase.Store(phaseRunning)
	if err := a.health.err(); err != nil {
		t.Fatalf("healthy App: %v", err)
	}
	failing.Store(true)
	if err := a.health.err(); !errors.Is(err, down) {
		t.Fatalf("with the check failing: %v", err)
	}
}
