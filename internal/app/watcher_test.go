package app

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// sinkholes is an App with both sinkholes reading one registry watcher;
// the connection sinkhole's events come out on events (a forwarder takes
// the pipeline's place).
type sinkholes struct {
	a       *App
	reg     registry.Store
	dnsAddr string
	webAddr string // the http listener
	events  chan event.Event
}

func startSinkholes(t *testing.T) *sinkholes {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := config.Default()
	c.Data = dir
	c.DNS.Listen = []string{"127.0.0.1:0"}
	c.Listeners = []config.Listener{{Kind: "http", Listen: "127.0.0.1:0"}}
	c.Evidence.Enabled = false
	c.Registry.Poll = config.Duration(20 * time.Millisecond)
	s := &sinkholes{reg: db, events: make(chan event.Event, 64)}
	forward := func(q *event.Queue) (func(context.Context) error, error) {
		return func(ctx context.Context) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case e := <-q.C():
					s.events <- e
				}
			}
		}, nil
	}
	s.a, err = New(t.Context(), Options{Config: c, Registry: db, Forward: forward, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	s.dnsAddr = s.a.dns.(*dnssink.Server).Addr().String()
	s.webAddr = s.a.Addrs()["http"][0].String()
	return s
}

// dnsSeized tells whether the DNS sinkhole answers name with the sinkhole.
func (s *sinkholes) dnsSeized(t *testing.T, name string) bool {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	s.drain()
	return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// drain drops the events waiting (the DNS sinkhole's).
func (s *sinkholes) drain() {
	for {
		select {
		case <-s.events:
		default:
			return
		}
	}
}

// httpCase is the case the connection sinkhole gives a request for host.
func (s *sinkholes) httpCase(t *testing.T, host string) string {
	t.Helper()
	s.drain()
	req, _ := http.NewRequest("GET", "http://"+s.webAddr+"/gate.php", nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{}).DialContext}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-s.events:
			if e.HTTPHost == host {
				return e.Case
			}
		case <-deadline:
			t.Fatalf("no event for a request to %s", host)
			return ""
		}
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

// An order imported, one revoked and one expired reach both sinkholes
// through the one registry watcher; the expiry not before its instant.
func TestRegistryWatcherFeedsBothSinkholes(t *testing.T) {
	s := startSinkholes(t)
	ctx := t.Context()
	if s.dnsSeized(t, "www.expiring.example") || s.httpCase(t, "www.expiring.example") != "" {
		t.Fatal("seized before any order")
	}
	now := time.Now()
	expires := now.Add(2 * time.Second)
	for _, o := range []struct {
		caseID, name string
		expires      time.Time
	}{{"b301", "expiring.example", expires}, {"b302", "revoked.example", now.Add(time.Hour)}} {
		ind, err := registry.Parse(o.name, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.reg.Import(ctx, registry.Order{Case: o.caseID, Court: "c", Effective: now.Add(-time.Hour), Expires: o.expires},
			[]registry.Indicator{ind}, "test", false); err != nil {
			t.Fatal(err)
		}
	}
	for host, want := range map[string]string{"www.expiring.example": "b301", "cc.revoked.example": "b302"} {
		eventually(t, host+" imported, in DNS", func() bool { return s.dnsSeized(t, host) })
		eventually(t, host+" imported, in the connection sinkhole", func() bool { return s.httpCase(t, host) == want })
	}

	if err := s.reg.Revoke(ctx, "b302", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoked, out of DNS", func() bool { return !s.dnsSeized(t, "cc.revoked.example") })
	eventually(t, "revoked, out of the connection sinkhole", func() bool { return s.httpCase(t, "cc.revoked.example") == "" })

	check := func(seized bool, reader string) bool {
		if !seized && time.Now().Before(expires) {
			t.Fatalf("%s: expired before its instant", reader)
		}
		return !seized
	}
	eventually(t, "expired, out of DNS", func() bool { return check(s.dnsSeized(t, "www.expiring.example"), "dns") })
	eventually(t, "expired, out of the connection sinkhole", func() bool {
		return check(s.httpCase(t, "www.expiring.example") != "", "connection sinkhole")
	})
	if st := s.a.reg.Load().Set; st.Serial == 0 || len(st.Entries) != 0 {
		t.Errorf("the watcher's snapshot holds %d entries (serial %d); want none", len(st.Entries), st.Serial)
	}
}
