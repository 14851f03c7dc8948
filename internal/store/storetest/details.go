package storetest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// testDetails: a store that keeps each key's detail (store.DetailReader)
// names, for every key, the event a report would choose from its raw
// events (an HTTP request over other protocols, then the later, then the
// greater ID), or DetailTie where the rank cannot tell; events come in
// several batches, flushes and an import, with re-deliveries. A store that
// keeps none reports 0.
func testDetails(t *testing.T, s store.EventStore) {
	rng := rand.New(rand.NewPCG(7, 16))
	var all []event.Event
	n := 0
	mk := func(ip string, proto string, sec int, url string) event.Event {
		n++
		return event.Event{ID: fmt.Sprintf("det-%04d", n), Timestamp: day0.Add(time.Duration(sec) * time.Second),
			Protocol: proto, SrcIP: netip.MustParseAddr(ip), Family: "rustock", Case: "c", HTTPURL: url}
	}
	for k := range 40 {
		ip := fmt.Sprintf("198.51.100.%d", k+1)
		for range 1 + rng.IntN(6) {
			proto := []string{event.ProtoHTTP, event.ProtoHTTPS, event.ProtoUDP, event.ProtoTCP, event.ProtoDNS}[rng.IntN(5)]
			url := ""
			if proto == event.ProtoHTTP && rng.IntN(3) > 0 {
				url = "/gate.php"
			}
			// Few distinct seconds: ties happen.
			all = append(all, mk(ip, proto, rng.IntN(4)*3600, url))
		}
	}
	// A DNS-only key, and a tie broken by a later, better event.
	all = append(all, mk("198.51.100.200", event.ProtoDNS, 10, ""))
	all = append(all, mk("198.51.100.201", event.ProtoHTTP, 10, "/a"), mk("198.51.100.201", event.ProtoHTTP, 10, "/b"))
	late := mk("198.51.100.201", event.ProtoHTTP, 20, "/c")
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	third := len(all) / 3
	write(t, s, &store.Batch{Events: all[:third]})
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	write(t, s, &store.Batch{Events: all[third : 2*third]})
	write(t, s, &store.Batch{Events: all[:third]}) // re-delivered: changes nothing
	if imp, ok := s.(store.Importer); ok {
		im, err := imp.BeginImport(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := im.Write(t.Context(), &store.Batch{Events: all[2*third:]}); err != nil {
			t.Fatal(err)
		}
		if err := im.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	} else {
		write(t, s, &store.Batch{Events: all[2*third:]})
	}
	check := func(events []event.Event) {
		t.Helper()
		if err := s.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		if err := s.ScanDayIPs(t.Context(), day0, day0.Add(24*time.Hour), func(a *store.DayIP) error {
			got[a.IP.String()] = a.Detail
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		dr, ok := s.(store.DetailReader)
		if !ok {
			for ip, d := range got {
				if d != 0 {
					t.Fatalf("%s: detail %d from a store that keeps none", ip, d)
				}
			}
			return
		}
		// What a report would choose from the raw events.
		best := map[string]*event.Event{}
		tie := map[string]bool{}
		for i := range events {
			e := &events[i]
			ip := e.SrcIP.String()
			r := store.DetailRank(e)
			if r == 0 {
				continue
			}
			switch b := best[ip]; {
			case b == nil || r > store.DetailRank(b):
				best[ip], tie[ip] = e, false
			case r == store.DetailRank(b):
				tie[ip] = true
			}
		}
		seqs := map[int64]string{}
		for ip, d := range got {
			switch {
			case best[ip] == nil && d != 0:
				t.Errorf("%s: detail %d for a key without a direct event", ip, d)
			case best[ip] != nil && tie[ip] && d != store.DetailTie:
				t.Errorf("%s: detail %d, want a tie", ip, d)
			case best[ip] != nil && !tie[ip] && d <= 0:
				t.Errorf("%s: detail %d, want event %s", ip, d, best[ip].ID)
			case d > 0:
				seqs[d] = ip
			}
		}
		var list []int64
		for q := range seqs {
			list = append(list, q)
		}
		read := 0
		if err := dr.EventsBySeq(t.Context(), list, func(seq int64, e *event.Event) error {
			read++
			if ip := seqs[seq]; e.ID != best[ip].ID {
				t.Errorf("%s: detail is event %s, want %s", ip, e.ID, best[ip].ID)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if read != len(list) {
			t.Errorf("EventsBySeq read %d of %d events", read, len(list))
		}
	}
	check(all)
	write(t, s, &store.Batch{Events: []event.Event{late}})
	check(append(all, late))
}
