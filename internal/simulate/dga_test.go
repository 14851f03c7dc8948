package simulate

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/dga"
	"github.com/takedown/takedown/internal/event"
)

// dgaOptions is testOptions with a newGOZ family under .example and .test
// on a quarter of the hosts; day 3 of the history has no generated names
// (as for a day outside an order), so the family's hosts call the fixed
// names that day.
func dgaOptions(tb testing.TB) Options {
	tb.Helper()
	sp, err := dga.Parse("newgoz?tlds=example,test&count=20")
	if err != nil {
		tb.Fatal(err)
	}
	o := testOptions(tb)
	o.Days = 10
	gap := o.Start.AddDate(0, 0, 3)
	o.DGA = &DGA{Family: "newgoz", Share: 0.25, Names: func(day time.Time) []string {
		if day.Equal(gap) {
			return nil
		}
		return sp.Domains(day)
	}}
	return o
}

// TestDGAHistory: the family's hosts beacon to /gate.php on one of the
// day's generated names and the default rules leave them to the indicator
// family; everyone else is Rustock; the truth's per-family figures equal
// the distinct addresses per family read back from the written history,
// for every day and every 7-day window.
func TestDGAHistory(t *testing.T) {
	o := dgaOptions(t)
	s := newSim(t, o)
	b := history(t, s)
	days := s.Days()
	perDay := make([]map[string]map[netip.Addr]bool, days)
	for d := range perDay {
		perDay[d] = map[string]map[netip.Addr]bool{}
	}
	var dgaEvents, gapDGA int
	for line := range bytes.Lines(b) {
		ev, err := event.UnmarshalJSONL(line)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Resolver() {
			continue
		}
		d := int(ev.Timestamp.Sub(s.Start()) / (24 * time.Hour))
		day := s.Start().AddDate(0, 0, d)
		switch ev.HTTPURL {
		case DGABeaconPath:
			dgaEvents++
			if ev.Family != "newgoz" || ev.Tag != "indicator" || !slices.Contains(s.GeneratedNames(day), ev.HTTPHost) {
				t.Fatalf("%s: DGA beacon family %q tag %q host %q (not one of %s's names)", ev.ID, ev.Family, ev.Tag, ev.HTTPHost, day.Format(time.DateOnly))
			}
			if d == 3 {
				gapDGA++
			}
		case BeaconPath:
			if ev.Family != "rustock" || !slices.Contains(testDomains, ev.HTTPHost) {
				t.Fatalf("%s: beacon family %q host %q", ev.ID, ev.Family, ev.HTTPHost)
			}
		default:
			t.Fatalf("%s: path %q", ev.ID, ev.HTTPURL)
		}
		if perDay[d][ev.Family] == nil {
			perDay[d][ev.Family] = map[netip.Addr]bool{}
		}
		perDay[d][ev.Family][ev.SrcIP] = true
	}
	if dgaEvents == 0 || gapDGA != 0 {
		t.Fatalf("%d DGA beacons, %d on the day without names (want some, and none)", dgaEvents, gapDGA)
	}
	tr, err := s.Truth()
	if err != nil {
		t.Fatal(err)
	}
	count := func(from, to int) map[string]int {
		ips := map[string]map[netip.Addr]bool{}
		for d := from; d <= to; d++ {
			for f, set := range perDay[d] {
				if ips[f] == nil {
					ips[f] = map[netip.Addr]bool{}
				}
				maps.Copy(ips[f], set)
			}
		}
		out := map[string]int{}
		for f, set := range ips {
			out[f] = len(set)
		}
		return out
	}
	for d := range days {
		if want := count(d, d); !maps.Equal(tr.Daily[d].Families, want) {
			t.Errorf("day %d: truth families %v; history %v", d, tr.Daily[d].Families, want)
		}
		if want := count(max(0, d-window+1), d); !maps.Equal(tr.Weekly[d].Families, want) {
			t.Errorf("window ending day %d: truth families %v; history %v", d, tr.Weekly[d].Families, want)
		}
	}
	if n := tr.Daily[3].Families["newgoz"]; n != 0 {
		t.Errorf("day 3 without names: %d newgoz addresses", n)
	}
	if tr.Last.Families["newgoz"] == 0 || tr.Last.Families["rustock"] == 0 {
		t.Errorf("last week: families %v, want both", tr.Last.Families)
	}
}

// TestDGAOff: without a DGA every direct address is Rustock's, and the
// truth says so.
func TestDGAOff(t *testing.T) {
	o := testOptions(t)
	o.Days = 8
	tr, err := newSim(t, o).Truth()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(tr.Daily, tr.Weekly...) {
		if want := map[string]int{"rustock": p.UniqueIPs}; !maps.Equal(p.Families, want) {
			t.Fatalf("%s: families %v, want %v", p.From.Format(time.DateOnly), p.Families, want)
		}
	}
}

func TestDGAOptionsBad(t *testing.T) {
	for name, d := range map[string]*DGA{
		"no names":   {Family: "newgoz"},
		"no family":  {Names: func(time.Time) []string { return nil }},
		"bad share":  {Family: "newgoz", Share: 2, Names: func(time.Time) []string { return nil }},
		"bad family": {Family: "new goz\"", Names: func(time.Time) []string { return nil }},
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			o.DGA = d
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), "dga:") {
				t.Errorf("New accepted %+v: %v", d, err)
			}
		})
	}
}

// TestDGALive: live beacons of the family's hosts go to /gate.php with a
// Host among the live day's generated names; the others to /login.php on a
// fixed name.
func TestDGALive(t *testing.T) {
	o := dgaOptions(t)
	o.Now = func() time.Time { return o.Start.AddDate(0, 0, o.Days).Add(time.Hour) } // the day after the history
	s := newSim(t, o)
	today := s.GeneratedNames(o.Now())
	if len(today) == 0 {
		t.Fatal("no generated names for the live day")
	}
	f, httpAddr, _ := startFakeSink(t)
	rep, err := s.RunLive(t.Context(), Targets{HTTP: httpAddr, Beacons: 300, Concurrency: 8})
	if err != nil || rep.Failed != 0 {
		t.Fatalf("RunLive: %v %+v", err, rep)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Fatal(f.errs)
	}
	var gen, fixed int
	for _, req := range f.reqs {
		host := ""
		for l := range strings.SplitSeq(req, "\r\n") {
			if h, ok := strings.CutPrefix(l, "Host: "); ok {
				host = h
			}
		}
		switch {
		case strings.HasPrefix(req, "POST "+DGABeaconPath+" ") && slices.Contains(today, host):
			gen++
		case strings.HasPrefix(req, "POST "+BeaconPath+" ") && slices.Contains(testDomains, host):
			fixed++
		default:
			t.Fatalf("unexpected beacon %q", req)
		}
	}
	if gen == 0 || fixed == 0 {
		t.Errorf("%d DGA and %d fixed beacons of %d, want both", gen, fixed, len(f.reqs))
	}
	t.Log(fmt.Sprintf("%d DGA beacons, %d fixed", gen, fixed))
}
