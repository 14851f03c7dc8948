package dnssink

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/registry"
)

// dgaSource is a registry.Source holding one order with one generator,
// expanded at each instant as the store expands it (registry.InForce).
type dgaSource struct {
	mu  sync.Mutex
	o   registry.Order
	ind registry.Indicator
}

var _ registry.Source = (*dgaSource)(nil)

func (d *dgaSource) Active(_ context.Context, at time.Time, caseID string) (*registry.ActiveSet, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := &registry.ActiveSet{At: at, Serial: 1}
	if caseID != "" && caseID != d.o.Case {
		return set, nil
	}
	es, next, err := registry.InForce(d.o, d.ind, at)
	if err != nil {
		return nil, err
	}
	set.Entries, set.NextChange = es, next
	registry.SortEntries(set.Entries)
	return set, nil
}

func (d *dgaSource) Serial(context.Context) (uint32, error) { return 1, nil }

// TestDGAAnswers: a generated name is answered from its day less the
// margin to its day's end plus the margin, within the order's window, and
// refused outside that; a name generated for a day outside the window is
// refused whatever the margin.
func TestDGAAnswers(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	src := &dgaSource{
		o:   registry.Order{ID: 1, Case: "goz-1", Court: "W.D. Pa.", Effective: day("2026-03-10"), Expires: day("2026-03-20")},
		ind: registry.Indicator{Kind: registry.KindDGA, Value: "newgoz?count=20&key=01051935&tlds=example,test&margin=6h"},
	}
	sp, err := registry.DGASpec(src.ind)
	if err != nil {
		t.Fatal(err)
	}
	// nameOf is a name generated for the day of s and for no day from
	// 2026-03-05 to 2026-03-25 but that one, so that each case below tests
	// one day's window.
	nameOf := func(s string) string {
		t.Helper()
		others := map[string]bool{}
		for d := day("2026-03-05"); d.Before(day("2026-03-26")); d = d.AddDate(0, 0, 1) {
			if d.Equal(day(s)) {
				continue
			}
			for _, n := range sp.Domains(d) {
				others[n] = true
			}
		}
		for _, n := range sp.Domains(day(s)) {
			if !others[n] {
				return n
			}
		}
		t.Fatalf("every name of %s is also generated for another day", s)
		return ""
	}
	var mu sync.Mutex
	now := day("2026-03-09") // before every case: the watcher never publishes a snapshot older than the one in force
	s := startSourceSink(t, src, Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	setNow := func(t0 time.Time) {
		mu.Lock()
		now = t0
		mu.Unlock()
		if err := s.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d string, h time.Duration) time.Time { return day(d).Add(h) }
	// In time order: the clock only moves forward, and the server takes
	// each change at the set's NextChange (a margin edge, a midnight), as
	// a running sinkhole does; the serial never changes.
	for _, tc := range []struct {
		name    string
		at      time.Time
		nameDay string
		rcode   int
	}{
		{"the window's first day before the order is in force", at("2026-03-09", 20*time.Hour), "2026-03-10", dns.RcodeRefused},
		{"a name of a day before the window, within the margin", at("2026-03-10", 3*time.Hour), "2026-03-09", dns.RcodeRefused},
		{"today's name at midnight", at("2026-03-15", 0), "2026-03-15", dns.RcodeSuccess},
		{"yesterday's name within the margin", at("2026-03-15", 5*time.Hour+59*time.Minute), "2026-03-14", dns.RcodeSuccess},
		{"yesterday's name at the margin's end", at("2026-03-15", 6*time.Hour), "2026-03-14", dns.RcodeRefused},
		{"today's name", at("2026-03-15", 12*time.Hour), "2026-03-15", dns.RcodeSuccess},
		{"a name of three days ago", at("2026-03-15", 12*time.Hour), "2026-03-12", dns.RcodeRefused},
		{"a day far outside the window", at("2026-03-15", 12*time.Hour), "2026-03-25", dns.RcodeRefused},
		{"tomorrow's name before the margin", at("2026-03-15", 17*time.Hour+59*time.Minute), "2026-03-16", dns.RcodeRefused},
		{"tomorrow's name at the margin's start", at("2026-03-15", 18*time.Hour), "2026-03-16", dns.RcodeSuccess},
		{"the window's last day, within the margin before it", at("2026-03-18", 20*time.Hour), "2026-03-19", dns.RcodeSuccess},
		{"a name of a day after the window, within the margin", at("2026-03-19", 20*time.Hour), "2026-03-20", dns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setNow(tc.at)
			name := nameOf(tc.nameDay)
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeA)
			for _, network := range []string{"udp", "tcp"} {
				r := s.exchange(t, network, m)
				if r.Rcode != tc.rcode {
					t.Fatalf("%s at %s, %s generated for %s: %s, want %s", network, tc.at.Format(time.RFC3339), name, tc.nameDay,
						dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if tc.rcode == dns.RcodeSuccess && (len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" || !r.Authoritative) {
					t.Fatalf("%s: answer %v, want the sinkhole's A, authoritative", name, r.Answer)
				}
			}
		})
	}
}
