// Package apitest builds a populated store for the API's and the
// dashboard's tests: a real SQLite registry and event store with a known
// set of infected addresses, the stats engine over them, and tokens of
// every role. It is for tests only.
package apitest

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// Now is the fixture's clock.
var Now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// Host is one infected address of the fixture.
type Host struct {
	IP      string
	Country string
	ASN     uint32
	Family  string
}

// Hosts are the fixture's infected addresses, all seen today (two hours
// before Now) over HTTP. Countries: DE 6, US 7, BR 5, JP 5 (IPv6), FR 2.
// ASNs: 64501 (DE, 198.51.100.0/24), 64502 (US), 64503 (BR), 64504 (JP),
// 64505 (FR).
var Hosts = func() []Host {
	var hs []Host
	add := func(n int, f string, cc string, asn uint32, fam string) {
		for i := 1; i <= n; i++ {
			hs = append(hs, Host{fmt.Sprintf(f, i), cc, asn, fam})
		}
	}
	add(6, "198.51.100.%d", "DE", 64501, "rustock")
	add(7, "203.0.113.%d", "US", 64502, "rustock")
	add(5, "192.0.2.%d", "BR", 64503, "zeus")
	add(5, "2001:db8:1:%d::1", "JP", 64504, "zeus") // distinct /64s: IPv6 counts by /64
	add(2, "100.64.0.%d", "FR", 64505, "rustock")
	return hs
}()

// Resolver is a source seen only through DNS: never an infected host.
const Resolver = "198.51.100.250"

// Countries returns the fixture's countries, sorted.
func Countries() []string {
	seen := map[string]bool{}
	for _, h := range Hosts {
		seen[h.Country] = true
	}
	var out []string
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Fixture is a populated store.
type Fixture struct {
	DB     *sqlite.DB
	Events *sqlite.EventStore
	Stats  *stats.Engine
	// Notify is the subscribers and delivery ledger, empty.
	Notify *sqlite.NotifyStore
	// Secrets of tokens by name: admin, analyst, network (AS64501 and
	// 2001:db8:1::/48), network-fr (FR), expired, revoked.
	Secrets map[string]string
}

// New builds the fixture in t's temporary folder.
func New(t testing.TB) *Fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "takedown.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	es, err := sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{Now: func() time.Time { return Now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close() })
	var evs []event.Event
	at := Now.Add(-2 * time.Hour)
	for i, h := range Hosts {
		evs = append(evs, event.Event{ID: fmt.Sprintf("e%d", i), Timestamp: at.Add(time.Duration(i) * time.Second), Protocol: event.ProtoHTTP,
			SrcIP: netip.MustParseAddr(h.IP), SrcGeo: h.Country, SrcASN: h.ASN, Family: h.Family, Case: "CASE-1"})
		// The same hosts three days earlier, plus a baseline week ago.
		evs = append(evs, event.Event{ID: fmt.Sprintf("old%d", i), Timestamp: at.Add(-72 * time.Hour), Protocol: event.ProtoHTTP,
			SrcIP: netip.MustParseAddr(h.IP), SrcGeo: h.Country, SrcASN: h.ASN, Family: h.Family, Case: "CASE-1"})
	}
	evs = append(evs, event.Event{ID: "dns1", Timestamp: at, Protocol: event.ProtoDNS, SrcIP: netip.MustParseAddr(Resolver), SrcGeo: "DE", SrcASN: 64501, Case: "CASE-1", QName: "c2.example"})
	if _, err := es.WriteBatch(ctx, &store.Batch{Events: evs, Received: uint64(len(evs))}); err != nil {
		t.Fatal(err)
	}
	if f, ok := any(es).(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	inds := []registry.Indicator{
		{Kind: registry.KindDomain, Value: "c2.example"},
		{Kind: registry.KindIP, Value: "192.0.2.66", Prefix: netip.MustParsePrefix("192.0.2.66/32")},
	}
	if _, err := db.Import(ctx, registry.Order{Case: "CASE-1", Court: "E.D. Va.", Title: "Rustock", Family: "rustock",
		Effective: Now.Add(-30 * 24 * time.Hour), Expires: Now.Add(20 * 24 * time.Hour)}, inds, "test", false); err != nil {
		t.Fatal(err)
	}
	f := &Fixture{DB: db, Events: es, Notify: sqlite.NewNotifyStore(db), Secrets: map[string]string{}}
	f.Stats = stats.New(stats.Options{Source: es, Now: func() time.Time { return Now }})
	issue := func(name string, s token.Spec) string {
		tk, secret, err := token.Issue(ctx, db, s, Now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		f.Secrets[name] = secret
		return tk.ID
	}
	nets := func(s string) netscope.Networks {
		n, err := netscope.ParseNetworks(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	issue("admin", token.Spec{Role: netscope.RoleAdmin})
	issue("analyst", token.Spec{Role: netscope.RoleAnalyst})
	issue("network", token.Spec{Role: netscope.RoleNetwork, Networks: nets("AS64501,2001:db8:1::/48")})
	issue("network-fr", token.Spec{Role: netscope.RoleNetwork, Networks: nets("FR")})
	issue("expired", token.Spec{Role: netscope.RoleAdmin, Expires: Now.Add(-time.Minute)})
	id := issue("revoked", token.Spec{Role: netscope.RoleAdmin})
	if err := db.RevokeToken(ctx, id, Now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	return f
}

// AddSubscriber adds a subscriber of the given networks (netscope.ParseNetworks
// syntax) to the fixture's notification store.
func (f *Fixture) AddSubscriber(t testing.TB, id, org, networks string) {
	t.Helper()
	n, err := netscope.ParseNetworks(networks)
	if err != nil {
		t.Fatal(err)
	}
	s := notify.Subscriber{ID: id, Org: org, Contacts: []string{"abuse@" + id + ".example"}, Networks: n, Created: Now}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := f.Notify.AddSubscribers(context.Background(), []notify.Subscriber{s}); err != nil {
		t.Fatal(err)
	}
}

// RecordDelivery puts a (subscriber, day) report of rows rows into the
// ledger and records one attempt that ended in state (sent six hours after
// the day began, failed, or pending with errText and a next attempt an hour
// after Now).
func (f *Fixture) RecordDelivery(t testing.TB, sub string, day time.Time, rows int, state notify.State, errText string) {
	t.Helper()
	ctx := context.Background()
	d, _, err := f.Notify.CreateDelivery(ctx, &notify.Delivery{Subscriber: sub, Day: day, MessageID: "<" + sub + "." + day.Format(time.DateOnly) + "@takedown.test>",
		Created: day, Rows: rows, Recipients: []string{"abuse@" + sub + ".example"}, Message: []byte("Subject: test\r\n\r\nbody\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Attempts, d.LastError = state, 1, errText
	switch state {
	case notify.StateSent:
		d.Sent = day.Add(6 * time.Hour)
	case notify.StatePending:
		d.NextAttempt = Now.Add(time.Hour)
	}
	if err := f.Notify.RecordAttempt(ctx, &d); err != nil {
		t.Fatal(err)
	}
}
