package stats_test

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// memSource is an in-memory stats.Source and stats.RawEvents over a list
// of events, aggregated the way every store aggregates them.
type memSource struct {
	events []event.Event
	aggs   []store.DayIP
	noRaw  bool // CountEvents reports 0, as after PurgeEvents
}

var (
	_ stats.Source    = (*memSource)(nil)
	_ stats.RawEvents = (*memSource)(nil)
)

func newMemSource(events []event.Event) *memSource {
	m := &memSource{events: events}
	for _, d := range store.Aggregate(events) {
		m.aggs = append(m.aggs, store.DayIP{Day: time.Unix(d.Key.Day, 0).UTC(), IP: d.Key.IP, Family: d.Key.Family, Case: d.Case,
			Country: d.Country, ASN: d.ASN, Org: d.Org, FirstSeen: time.Unix(0, d.FirstSeen).UTC(), LastSeen: time.Unix(0, d.LastSeen).UTC(),
			Hits: d.Hits, Protocols: d.Protocols, BotIDs: d.BotIDs})
	}
	slices.SortFunc(m.aggs, func(a, b store.DayIP) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return compareStrings(a.Family, b.Family)
	})
	return m
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *memSource) ScanDayIPs(_ context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	for i := range m.aggs {
		a := m.aggs[i]
		if a.Day.Before(from) || !a.Day.Before(to) {
			continue
		}
		if err := fn(&a); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSource) Health(context.Context) (store.Health, error) {
	return store.Health{Received: uint64(len(m.events)), Stored: uint64(len(m.events))}, nil
}

func (m *memSource) CountEvents(_ context.Context, from, to time.Time) (int64, error) {
	if m.noRaw {
		return 0, nil
	}
	var n int64
	for i := range m.events {
		if !m.events[i].Timestamp.Before(from) && m.events[i].Timestamp.Before(to) {
			n++
		}
	}
	return n, nil
}

func (m *memSource) ScanEventSources(_ context.Context, from, to time.Time, fn func(netip.Addr, string, store.Protocols) error) error {
	for i := range m.events {
		e := &m.events[i]
		if e.Timestamp.Before(from) || !e.Timestamp.Before(to) {
			continue
		}
		if err := fn(e.SrcIP.Unmap(), e.Family, store.ProtocolBit(e.Protocol)); err != nil {
			return err
		}
	}
	return nil
}
