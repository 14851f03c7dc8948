package notify_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
)

// rawOnly hides a store's details (store.DetailReader), so that Collect
// reads every raw event of the keys.
type rawOnly struct{ src notify.Source }

func (r rawOnly) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	return r.src.ScanDayIPs(ctx, from, to, fn)
}

func (r rawOnly) ScanDayEvents(ctx context.Context, day time.Time, prefixes []netip.Prefix, fn func(*event.Event) error) error {
	return r.src.ScanDayEvents(ctx, day, prefixes, fn)
}

// TestCollectDetailsAsRawEvents: on a store that names each key's best
// event, Collect's rows are those it makes from the raw events alone, for
// a network and an ASN: keys with many events, HTTP and not, ties on the
// same second, several families per address.
func TestCollectDetailsAsRawEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := range 2500 {
		ip := fmt.Sprintf("198.51.%d.%d", rng.IntN(2), 1+rng.IntN(250))
		e := event.Event{ID: fmt.Sprintf("ev-%04d", i), Timestamp: day.Add(time.Duration(rng.IntN(6)) * time.Hour),
			Protocol: []string{event.ProtoHTTP, event.ProtoHTTPS, event.ProtoUDP, event.ProtoTCP, event.ProtoDNS}[rng.IntN(5)],
			SrcIP:    netip.MustParseAddr(ip), SrcPort: uint16(1024 + i), SrcASN: 64500 + uint32(rng.IntN(2)), SrcGeo: "US",
			Family: []string{"rustock", "kelihos"}[rng.IntN(2)], Case: "c"}
		if e.Protocol == event.ProtoHTTP && rng.IntN(2) == 0 {
			e.HTTPMethod, e.HTTPURL = "POST", fmt.Sprintf("/gate/%d", i)
		}
		evs = append(evs, e)
	}
	// IDs out of the order of arrival, so that a tie is not broken by it.
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	db, ns := newStore(t)
	// In several batches, so that details are folded across flushes.
	for lo := 0; lo < len(evs); lo += 500 {
		seed(t, db, evs[lo:lo+500])
	}
	if _, ok := any(ns).(store.DetailReader); !ok {
		t.Fatal("the SQLite store keeps no details")
	}
	sets := []netscope.Networks{
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.0.0/23")}}, // more keys than one read by number takes
		{ASNs: []uint32{64501}},
	}
	got, err := notify.Collect(t.Context(), ns, day, sets)
	if err != nil {
		t.Fatal(err)
	}
	want, err := notify.Collect(t.Context(), rawOnly{ns}, day, sets)
	if err != nil {
		t.Fatal(err)
	}
	if len(want[0]) <= 512 {
		t.Fatalf("test: %d rows in the /23, want more than one read by number takes", len(want[0]))
	}
	for i := range sets {
		if len(want[i]) == 0 {
			t.Fatalf("set %d: no rows", i)
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			for j := range min(len(got[i]), len(want[i])) {
				if !reflect.DeepEqual(got[i][j], want[i][j]) {
					t.Fatalf("set %d row %d:\n got %+v\nwant %+v", i, j, got[i][j], want[i][j])
				}
			}
			t.Fatalf("set %d: %d rows, want %d", i, len(got[i]), len(want[i]))
		}
	}
}
