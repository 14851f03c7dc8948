package app

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/registry"
)

// Every key is either applied live or refused by name, never ignored.
func TestReloadKeysCovered(t *testing.T) {
	for k := range config.Default().Settings() {
		live, restart := liveKeys[k] != "", restartKeys[k] != ""
		if live == restart {
			t.Errorf("%s: live %v, restart %v: want exactly one", k, live, restart)
		}
	}
	for _, m := range []map[string]string{liveKeys, restartKeys} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if _, ok := config.Default().Settings()[k]; !ok {
				t.Errorf("%s is listed but is no setting", k)
			}
		}
	}
}

// runningApp starts an App with a DNS sinkhole and returns it with its
// configuration and the DNS address.
func runningApp(t *testing.T) (*App, *config.Config, string, *slog.LevelVar) {
	t.Helper()
	dir, db, es := testStores(t)
	ind, _ := registry.Parse("evil.example", "")
	now := time.Now()
	if _, err := db.Import(t.Context(), registry.Order{Case: "b107", Court: "c", Family: "rustock",
		Effective: now.Add(-time.Hour), Expires: now.Add(time.Hour)}, []registry.Indicator{ind}, "test", false); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Data = dir
	c.DNS.Listen = []string{"127.0.0.1:0"}
	c.Listeners = nil
	c.Evidence.Enabled = false
	c.Registry.Poll = config.Duration(time.Hour) // only reloads change the answers
	lv := new(slog.LevelVar)
	a, err := New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry(), LogLevel: lv})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, c, a.dns.(*dnssink.Server).Addr().String(), lv
}

// answerOf asks addr for name's A record and returns the first answer.
func answerOf(t *testing.T, addr, name string) *dns.A {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a
		}
	}
	t.Fatalf("no A answer for %s: %v", name, r)
	return nil
}

// A failure in the last applier leaves every earlier component as it was:
// the IP databases, the registry index, the DNS answers, the log level and
// the configuration; the next good reload applies everything.
func TestReloadAllOrNothing(t *testing.T) {
	a, c, addr, lv := runningApp(t)
	ctx := t.Context()
	if got := answerOf(t, addr, "www.evil.example"); got.Hdr.Ttl != 300 || got.A.String() != "127.0.0.1" {
		t.Fatalf("before: %v", got)
	}
	// A second order: a reload would index it.
	ind, _ := registry.Parse("worse.example", "")
	now := time.Now()
	if _, err := a.opts.Registry.(registry.Store).Import(ctx, registry.Order{Case: "b108", Court: "c", Family: "rustock",
		Effective: now.Add(-time.Hour), Expires: now.Add(time.Hour)}, []registry.Indicator{ind}, "test", false); err != nil {
		t.Fatal(err)
	}
	next := *c
	next.DNS.TTL = 60
	next.Sinkhole.A = []string{"127.0.0.9"}
	next.Log.Level = "debug"
	next.Geo.Country = ""
	snap, geoCountry := a.reg.Load(), a.geo.Lookup(netip.MustParseAddr("81.2.69.142"))

	names := []string{}
	for _, ap := range a.appliers() {
		names = append(names, ap.name)
	}
	last := names[len(names)-1]
	a.failPrepare = func(name string) error {
		if name == last {
			return errors.New("injected failure")
		}
		return nil
	}
	if err := a.Reload(ctx, &next); err == nil || !strings.Contains(err.Error(), last+": injected failure") {
		t.Fatalf("reload with a failing %s: %v", last, err)
	}
	if a.reg.Load() != snap {
		t.Error("the registry snapshot changed")
	}
	if _, _, ok := a.caseOf("worse.example"); ok {
		t.Error("the new order is indexed")
	}
	if got := a.geo.Lookup(netip.MustParseAddr("81.2.69.142")); got != geoCountry {
		t.Error("the IP databases changed")
	}
	if got := answerOf(t, addr, "www.evil.example"); got.Hdr.Ttl != 300 || got.A.String() != "127.0.0.1" {
		t.Errorf("the DNS answer changed: %v", got)
	}
	m := new(dns.Msg)
	m.SetQuestion("www.worse.example.", dns.TypeA)
	if r, _, err := new(dns.Client).Exchange(m, addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("the new order is answered: %v %v", r, err)
	}
	if lv.Level() != slog.LevelInfo {
		t.Error("the log level changed")
	}
	if a.cfg.Load() != c || gauge(t, a.lastReloadOK) != 0 {
		t.Error("the configuration changed, or the metric says the reload succeeded")
	}

	a.failPrepare = nil
	if err := a.Reload(ctx, &next); err != nil {
		t.Fatal(err)
	}
	if got := answerOf(t, addr, "www.evil.example"); got.Hdr.Ttl != 60 || got.A.String() != "127.0.0.9" {
		t.Errorf("after a good reload: %v", got)
	}
	if got := answerOf(t, addr, "www.worse.example"); got.A.String() != "127.0.0.9" {
		t.Errorf("the new order after a good reload: %v", got)
	}
	if lv.Level() != slog.LevelDebug || gauge(t, a.lastReloadOK) != 1 {
		t.Error("log level or metric after a good reload")
	}
}

// Restart-only keys are refused by name, all at once, and nothing applies.
func TestReloadRefusesByName(t *testing.T) {
	a, c, addr, _ := runningApp(t)
	next := *c
	next.DNS.TTL = 60
	next.DNS.Listen = []string{"127.0.0.1:1"}
	next.Web.Listen = "127.0.0.1:2"
	next.Pipeline.Queue = 7
	err := a.Reload(t.Context(), &next)
	if err == nil {
		t.Fatal("reload of listen addresses succeeded")
	}
	for _, want := range []string{"dns.listen: needs a restart", "web.listen: needs a restart", "pipeline.queue: needs a restart"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if got := answerOf(t, addr, "evil.example"); got.Hdr.Ttl != 300 {
		t.Errorf("dns.ttl applied by a refused reload: %v", got)
	}
	if !slices.Contains(next.Changed(c), "dns.ttl") {
		t.Fatal("test is wrong: dns.ttl did not change")
	}
}
