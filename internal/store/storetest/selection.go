package storetest

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// testSelect checks a backend's store.SelectScanner, when it has one,
// against ScanDayIPs filtered by Selection.Selects: the same rows in the
// same order for prefixes (IPv4 and IPv6, which must not match each
// other's bytes), ASNs, countries and their union, after any position,
// including one whose row does not exist.
func testSelect(t *testing.T, s store.EventStore) {
	ss, ok := s.(store.SelectScanner)
	if !ok {
		t.Skip("the backend scans every row")
	}
	var evs []event.Event
	n := 0
	add := func(d int, ip, cc string, asn uint32, fam string) {
		n++
		evs = append(evs, event.Event{ID: fmt.Sprintf("sel-%d", n), Timestamp: day0.Add(time.Duration(d)*24*time.Hour + time.Duration(n)*time.Second),
			Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr(ip), SrcGeo: cc, SrcASN: asn, Family: fam, Case: "c"})
	}
	for d := range 3 {
		if d == 1 {
			continue // a day without rows inside the window
		}
		for i := 1; i <= 4; i++ {
			add(d, fmt.Sprintf("198.51.100.%d", i), "DE", 64501, "a")
			add(d, fmt.Sprintf("198.51.100.%d", i), "DE", 64501, "b")
			add(d, fmt.Sprintf("203.0.113.%d", i), "NL", 64502, "a")
			// Its first four bytes are 198.51.100.x's: a /24 of IPv4 must
			// not select it.
			add(d, fmt.Sprintf("c633:6402:%d::1", i), "US", 64503, "a")
			add(d, fmt.Sprintf("2001:db8:%d::1", i), "fr", 64504, "a")
		}
	}
	write(t, s, &store.Batch{Events: evs})
	all := dayIPs(t, s, day0, day0.Add(72*time.Hour))
	sels := map[string]*store.Selection{
		"all":       nil,
		"none":      {},
		"v4 prefix": {Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		"v6 prefix": {Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}},
		"host":      {Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.3/32")}},
		"asn":       {ASNs: []uint32{64502, 64503}},
		"country":   {Countries: []string{"FR"}},
		"union":     {Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/31")}, ASNs: []uint32{64501}, Countries: []string{"NL"}},
		// More than a store may keep prepared (a query of its own shape).
		"many": {Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/31"), netip.MustParsePrefix("198.51.100.3/32"),
			netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("10.0.0.0/8")},
			Countries: []string{"FR"}},
	}
	afters := []*store.Position{nil,
		{Day: day0.Unix(), IP: netip.MustParseAddr("198.51.100.2"), Family: "a"},
		{Day: day0.Unix(), IP: netip.MustParseAddr("198.51.100.2"), Family: "zz"},   // no such row
		{Day: day0.Add(24 * time.Hour).Unix(), IP: netip.MustParseAddr("10.0.0.1")}, // an empty day
	}
	for name, sel := range sels {
		for _, after := range afters {
			var want []store.DayIP
			for _, a := range all {
				if sel.Selects(&a) && (after == nil || store.PositionOf(&a).Compare(*after) > 0) {
					want = append(want, a)
				}
			}
			var got []store.DayIP
			err := ss.ScanDayIPsSelect(t.Context(), day0, day0.Add(72*time.Hour), sel, after, func(a *store.DayIP) error {
				c := *a
				got = append(got, c)
				return nil
			})
			if err != nil {
				t.Fatalf("%s after %v: %v", name, after, err)
			}
			if len(got) != len(want) {
				t.Errorf("%s after %v: %d rows, want %d", name, after, len(got), len(want))
				continue
			}
			for i := range got {
				if store.PositionOf(&got[i]).Compare(store.PositionOf(&want[i])) != 0 {
					t.Errorf("%s after %v: row %d is %v, want %v", name, after, i, store.PositionOf(&got[i]), store.PositionOf(&want[i]))
					break
				}
			}
		}
	}
	// fn's error stops the scan.
	stop := errors.New("stop")
	calls := 0
	if err := ss.ScanDayIPsSelect(t.Context(), day0, day0.Add(72*time.Hour), nil, nil, func(*store.DayIP) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("stop: %v after %d calls", err, calls)
	}
}
