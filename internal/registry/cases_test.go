package registry

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
)

func caseIndex() *Index {
	return NewIndex(&ActiveSet{Entries: []Entry{
		{Kind: KindDomain, Value: "evil.example", Case: "b107", Family: "rustock"},
		{Kind: KindHost, Value: "cc.bad.example", Case: "b108"},
		{Kind: KindCIDR, Value: "198.51.100.0/24", Prefix: netip.MustParsePrefix("198.51.100.0/24"), Case: "b109", Family: "zeus"},
	}})
}

func TestCaseOf(t *testing.T) {
	ix := caseIndex()
	for _, tc := range []struct {
		host, family, caseID string
		ok                   bool
	}{
		{"C2.Evil.example:443", "rustock", "b107", true},
		{"evil.example.", "rustock", "b107", true},
		{"cc.bad.example", "", "b108", true},
		{"x.cc.bad.example", "", "", false},
		{"198.51.100.7", "zeus", "b109", true},
		{"[::ffff:198.51.100.7]:80", "zeus", "b109", true},
		{"198.51.101.7", "", "", false},
		{"", "", "", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			fam, c, ok := ix.CaseOf(tc.host)
			if fam != tc.family || c != tc.caseID || ok != tc.ok {
				t.Fatalf("CaseOf = %q %q %v; want %q %q %v", fam, c, ok, tc.family, tc.caseID, tc.ok)
			}
		})
	}
	var none *Index
	if _, _, ok := none.CaseOf("evil.example"); ok {
		t.Fatal("a nil index matched a name")
	}
}

func TestFillCase(t *testing.T) {
	ix := caseIndex()
	for _, tc := range []struct {
		name        string
		in          event.Event
		caseID, fam string
	}{
		{"by host, family from the order", event.Event{HTTPHost: "www.evil.example", Family: "unknown"}, "b107", "rustock"},
		{"a rule's family is kept", event.Event{HTTPHost: "www.evil.example", Family: "necurs"}, "b107", "necurs"},
		{"by SNI before Host", event.Event{SSLServerName: "cc.bad.example", HTTPHost: "www.evil.example"}, "b108", ""},
		{"by the matched DNS name", event.Event{Matched: "evil.example"}, "b107", "rustock"},
		{"by destination when the name is not seized", event.Event{HTTPHost: "other.example", DstIP: netip.MustParseAddr("198.51.100.1")}, "b109", "zeus"},
		{"a listener's case is kept", event.Event{HTTPHost: "www.evil.example", Case: "other", Family: "x"}, "other", "x"},
		{"nothing seized", event.Event{HTTPHost: "other.example", Family: "unknown"}, "", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.in
			ix.FillCase(&e)
			if e.Case != tc.caseID || e.Family != tc.fam {
				t.Fatalf("case %q family %q; want %q %q", e.Case, e.Family, tc.caseID, tc.fam)
			}
		})
	}
}

// daySource seizes evil.example only on 2024-03-02 (UTC); it fails when
// asked about 2024-03-05.
type daySource struct{ calls int }

func (d *daySource) Active(_ context.Context, at time.Time, _ string) (*ActiveSet, error) {
	d.calls++
	if at.Day() == 5 {
		return nil, errors.New("registry down")
	}
	set := &ActiveSet{At: at}
	if at.Day() == 2 {
		set.Entries = []Entry{{Kind: KindDomain, Value: "evil.example", Case: "b107", Family: "rustock"}}
	}
	return set, nil
}

func (d *daySource) Serial(context.Context) (uint32, error) { return 1, nil }

func TestHistoricCases(t *testing.T) {
	src := &daySource{}
	fill, errf := HistoricCases(t.Context(), src)
	at := func(day, hour int) event.Event {
		return event.Event{Timestamp: time.Date(2024, 3, day, hour, 0, 0, 0, time.UTC), HTTPHost: "evil.example"}
	}
	for _, tc := range []struct {
		e    event.Event
		want string
	}{{at(2, 1), "b107"}, {at(2, 23), "b107"}, {at(3, 1), ""}, {at(5, 1), ""}} {
		e := tc.e
		fill(&e)
		if e.Case != tc.want {
			t.Errorf("%s: case %q; want %q", e.Timestamp, e.Case, tc.want)
		}
	}
	if src.calls != 3 {
		t.Errorf("the registry was read %d times; want once per day (3)", src.calls)
	}
	if err := errf(); err == nil {
		t.Error("the registry's failure was not reported")
	}
}
