package selfcheck

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/store"
)

// now is the fixed clock of the tests: 2011-09-13 15:04 UTC.
var now = time.Date(2011, 9, 13, 15, 4, 5, 0, time.UTC)

// fakeStore answers from fixed rows and records every address asked for.
type fakeStore struct {
	mu    sync.Mutex
	rows  map[netip.Addr][]store.DayIP
	asked []netip.Addr
	err   error
}

var _ Store = (*fakeStore)(nil)

func (f *fakeStore) Lookup(_ context.Context, a netip.Addr, from, to time.Time) ([]store.DayIP, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, a)
	if f.err != nil {
		return nil, f.err
	}
	var out []store.DayIP
	for _, r := range f.rows[a] {
		if !r.Day.Before(from) && r.Day.Before(to) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeStore) Asked() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

// dayIP is one aggregate daysAgo days before now.
func dayIP(addr, family string, daysAgo int, protos store.Protocols) store.DayIP {
	d := now.Truncate(24*time.Hour).AddDate(0, 0, -daysAgo)
	return store.DayIP{Day: d, IP: netip.MustParseAddr(addr), Family: family,
		FirstSeen: d.Add(2 * time.Hour), LastSeen: d.Add(20 * time.Hour), Hits: 3, Protocols: protos}
}

// infected, second and resolver are the fixture's addresses.
const (
	infected = "198.51.100.7"
	second   = "2001:db8:5::42"
	resolver = "203.0.113.53"
	clean    = "192.0.2.200"
)

func fixtureStore() *fakeStore {
	return &fakeStore{rows: map[netip.Addr][]store.DayIP{
		netip.MustParseAddr(infected): {
			dayIP(infected, "rustock", 20, store.ProtoHTTP), // outside the 14-day window
			dayIP(infected, "rustock", 9, store.ProtoHTTP),
			dayIP(infected, "rustock", 3, store.ProtoHTTPS|store.ProtoDNS),
			dayIP(infected, "rustock", 1, store.ProtoHTTP),
		},
		netip.MustParseAddr(second): {
			dayIP(second, "kelihos", 0, store.ProtoTCP),
			dayIP(second, "", 2, store.ProtoUDP),
		},
		netip.MustParseAddr(resolver): {
			dayIP(resolver, "rustock", 5, store.ProtoDNS),
		},
	}}
}

func trust(tb testing.TB, list ...string) *proxyproto.Trust {
	tb.Helper()
	t, err := proxyproto.ParseTrust(list)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

type fixture struct {
	srv   *Server
	store *fakeStore
	reg   *prometheus.Registry
}

func newFixture(tb testing.TB, mod func(*Options)) *fixture {
	tb.Helper()
	f := &fixture{store: fixtureStore(), reg: prometheus.NewRegistry()}
	o := Options{Lookup: f.store, Registerer: f.reg, Now: func() time.Time { return now },
		TrustedForwarders: trust(tb, "10.0.0.0/8"), RateLimit: RateLimit{Burst: 1000}}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	f.srv = s
	return f
}

// do sends req to the handler from remote ("ip:port").
func (f *fixture) do(tb testing.TB, req *http.Request, remote string) *httptest.ResponseRecorder {
	tb.Helper()
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

func decodeAnswer(tb testing.TB, body string) Answer {
	tb.Helper()
	var a Answer
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		tb.Fatalf("decode answer: %v\n%s", err, body)
	}
	return a
}
