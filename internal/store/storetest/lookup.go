package storetest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// LookupStore is an event store with the reads of the public self-check
// page (Lookup, selfcheck.Store) and of the evidence log's reconciliation
// (SeqOf and RecordsAfter, app's storedLog).
type LookupStore interface {
	store.EventStore
	Lookup(ctx context.Context, addr netip.Addr, from, to time.Time) ([]store.DayIP, error)
	SeqOf(ctx context.Context, ts time.Time, id string) (int64, bool, error)
	RecordsAfter(ctx context.Context, after int64, limit int) ([][]byte, int64, error)
}

// OpenLookup returns a new, empty store for one subtest; the backend
// closes it in tb.Cleanup.
type OpenLookup func(tb testing.TB) LookupStore

// RunLookup runs the suite of Lookup, SeqOf and RecordsAfter against
// stores made by open.
func RunLookup(t *testing.T, open OpenLookup) {
	t.Run("Lookup", func(t *testing.T) { testLookup(t, open) })
	t.Run("LookupRefusals", func(t *testing.T) { testLookupRefusals(t, open) })
	t.Run("RecordsAfter", func(t *testing.T) { testLookupRecordsAfter(t, open) })
	t.Run("RecordsAfterPaging", func(t *testing.T) { testLookupRecordsPaging(t, open) })
	t.Run("SeqOfPurged", func(t *testing.T) { testLookupSeqOfPurged(t, open) })
}

// lookupNow is the self-check's clock: midday, so that a window ending
// "now" ends in the middle of a day.
var lookupNow = time.Date(2011, 9, 13, 12, 0, 0, 0, time.UTC)

// lookupAt is lookupNow's UTC day minus daysAgo, plus off.
func lookupAt(daysAgo int, off time.Duration) time.Time {
	return time.Unix(store.DayOf(lookupNow), 0).UTC().AddDate(0, 0, -daysAgo).Add(off)
}

func lookupRows(tb testing.TB, s LookupStore, addr string, from, to time.Time) []store.DayIP {
	tb.Helper()
	rows, err := s.Lookup(tb.Context(), netip.MustParseAddr(addr), from, to)
	if err != nil {
		tb.Fatalf("Lookup(%s): %v", addr, err)
	}
	return rows
}

func testLookup(t *testing.T, open OpenLookup) {
	s := open(t)
	const infected, neighbour, v6 = "198.51.100.7", "198.51.100.8", "2001:db8:5::43"
	var evs []event.Event
	add := func(ts time.Time, addr, proto, family string) {
		evs = append(evs, event.Event{ID: fmt.Sprintf("lookup-%d", len(evs)), Timestamp: ts, SrcIP: netip.MustParseAddr(addr), Protocol: proto,
			Family: family, Case: "case-1", SrcGeo: "US", SrcASN: 64500, SrcOrg: "Example"})
	}
	add(lookupAt(15, time.Hour), infected, event.ProtoHTTP, "rustock") // before the window
	add(lookupAt(13, 5*time.Hour+7), infected, event.ProtoHTTP, "rustock")
	add(lookupAt(2, 9*time.Hour+1), infected, event.ProtoHTTP, "rustock")
	add(lookupAt(2, 3*time.Hour+2), infected, event.ProtoDNS, "rustock")
	add(lookupAt(2, 4*time.Hour), infected, event.ProtoTCP, "kelihos")
	add(lookupAt(0, 2*time.Hour+3), "::ffff:"+infected, event.ProtoHTTPS, "rustock")
	add(lookupAt(1, time.Hour), neighbour, event.ProtoHTTP, "rustock")
	add(lookupAt(4, time.Hour+5), v6, event.ProtoTCP, "kelihos")
	write(t, s, &store.Batch{Events: evs})
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	row := func(daysAgo int, addr, family string, first, last time.Time, hits uint64, protos store.Protocols) store.DayIP {
		return store.DayIP{Day: lookupAt(daysAgo, 0), IP: netip.MustParseAddr(addr), Family: family, FirstSeen: first, LastSeen: last, Hits: hits, Protocols: protos}
	}
	window := []store.DayIP{
		row(13, infected, "rustock", evs[1].Timestamp, evs[1].Timestamp, 1, store.ProtoHTTP),
		row(2, infected, "kelihos", evs[4].Timestamp, evs[4].Timestamp, 1, store.ProtoTCP),
		row(2, infected, "rustock", evs[3].Timestamp, evs[2].Timestamp, 2, store.ProtoHTTP|store.ProtoDNS),
		row(0, infected, "rustock", evs[5].Timestamp, evs[5].Timestamp, 1, store.ProtoHTTPS),
	}
	for _, tc := range []struct {
		name, addr string
		from, to   time.Time
		want       []store.DayIP
	}{
		// Ordered by day then family; only the asked address.
		{"fourteen days", infected, lookupNow.AddDate(0, 0, -13), lookupNow, window},
		// A mapped address is looked up, and answered, as IPv4.
		{"mapped", "::ffff:" + infected, lookupNow.AddDate(0, 0, -13), lookupNow, window},
		// [from, to): a partial first or last day counts whole, a window
		// ending at midnight does not reach into the next day.
		{"partial days", infected, lookupAt(13, 23*time.Hour), lookupAt(2, time.Second), window[:3]},
		{"ends at midnight", infected, lookupAt(13, 0), lookupAt(2, 0), window[:1]},
		{"nothing in the window", infected, lookupAt(12, 0), lookupAt(3, 0), nil},
		{"neighbour", neighbour, lookupAt(13, 0), lookupNow, []store.DayIP{row(1, neighbour, "rustock", evs[6].Timestamp, evs[6].Timestamp, 1, store.ProtoHTTP)}},
		{"ipv6", v6, lookupAt(13, 0), lookupNow, []store.DayIP{row(4, v6, "kelihos", evs[7].Timestamp, evs[7].Timestamp, 1, store.ProtoTCP)}},
		{"ipv6 with a zone", v6 + "%eth0", lookupAt(13, 0), lookupNow, []store.DayIP{row(4, v6, "kelihos", evs[7].Timestamp, evs[7].Timestamp, 1, store.ProtoTCP)}},
		{"ipv6 neighbour", "2001:db8:5::44", lookupAt(13, 0), lookupNow, nil},
		{"empty window", infected, lookupAt(0, 0), lookupAt(0, 0), nil},
		{"reversed window", infected, lookupNow, lookupAt(13, 0), nil},
		{"longest window", infected, lookupAt(399, 0), lookupAt(-1, 0), append([]store.DayIP{row(15, infected, "rustock", evs[0].Timestamp, evs[0].Timestamp, 1, store.ProtoHTTP)}, window...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lookupRows(t, s, tc.addr, tc.from, tc.to)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Lookup\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func testLookupRefusals(t *testing.T, open OpenLookup) {
	s := open(t)
	if _, err := s.Lookup(t.Context(), netip.MustParseAddr("198.51.100.7"), lookupAt(400, 0), lookupAt(-1, 0)); err == nil {
		t.Error("a window of 401 days was accepted")
	}
	if _, err := s.Lookup(t.Context(), netip.MustParseAddr("198.51.100.7"), lookupNow.AddDate(-2, 0, 0), lookupNow); err == nil {
		t.Error("a two-year window was accepted")
	}
	if _, err := s.Lookup(t.Context(), netip.Addr{}, lookupAt(1, 0), lookupNow); err == nil {
		t.Error("the zero address was accepted")
	}
}

// recordsAfter returns every record after after, limit at a time, and the
// last sequence number.
func lookupRecordsAfter(tb testing.TB, s LookupStore, after int64, limit int) ([][]byte, int64) {
	tb.Helper()
	var all [][]byte
	for {
		recs, last, err := s.RecordsAfter(tb.Context(), after, limit)
		if err != nil {
			tb.Fatalf("RecordsAfter(%d): %v", after, err)
		}
		if len(recs) > limit {
			tb.Fatalf("RecordsAfter(%d, %d) returned %d records", after, limit, len(recs))
		}
		if len(recs) == 0 {
			if last != after {
				tb.Fatalf("RecordsAfter(%d) returned nothing and last %d", after, last)
			}
			return all, after
		}
		if last <= after {
			tb.Fatalf("RecordsAfter(%d) returned last %d", after, last)
		}
		all, after = append(all, recs...), last
	}
}

func lookupSeqOf(tb testing.TB, s LookupStore, e *event.Event) int64 {
	tb.Helper()
	seq, ok, err := s.SeqOf(tb.Context(), e.Timestamp, e.ID)
	if err != nil || !ok {
		tb.Fatalf("SeqOf(%s) = %v, %v", e.ID, ok, err)
	}
	return seq
}

// SameRecords fails tb unless got are the JSON-lines records of events,
// in order.
func SameRecords(tb testing.TB, got [][]byte, events []event.Event) {
	tb.Helper()
	if len(got) != len(events) {
		tb.Fatalf("%d records, want %d", len(got), len(events))
	}
	for i := range events {
		want, err := event.MarshalJSONL(&events[i])
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(got[i], want) {
			tb.Errorf("record %d\n got %s\nwant %s", i, got[i], want)
		}
	}
}

// RecordsAfter returns the stored events as the JSON-lines records
// MarshalJSONL made of them, byte for byte, in the order they were
// stored; SeqOf numbers them in that order; re-delivered events keep
// their number.
func testLookupRecordsAfter(t *testing.T, open OpenLookup) {
	s := open(t)
	cases := RecordCases()
	write(t, s, &store.Batch{Events: cases})
	recs, last := lookupRecordsAfter(t, s, 0, 100)
	SameRecords(t, recs, cases)
	prev := int64(0)
	for i := range cases {
		seq := lookupSeqOf(t, s, &cases[i])
		if seq <= prev {
			t.Fatalf("SeqOf(%s) = %d, not above the event before's %d", cases[i].ID, seq, prev)
		}
		prev = seq
	}
	if last != prev {
		t.Fatalf("RecordsAfter's last %d, want the last event's %d", last, prev)
	}
	if _, ok, err := s.SeqOf(t.Context(), cases[0].Timestamp, "never-stored"); ok || err != nil {
		t.Fatalf("SeqOf of an unknown event = %v, %v", ok, err)
	}
	if _, ok, err := s.SeqOf(t.Context(), cases[0].Timestamp.AddDate(0, 0, 1), cases[0].ID); ok || err != nil {
		t.Fatalf("SeqOf on another day = %v, %v", ok, err)
	}
	// A second batch: a re-delivered event (and one twice in the batch)
	// is stored once and keeps its number; only the new ones follow.
	fresh := []event.Event{ev("records-a", time.Hour, "192.0.2.1", event.ProtoHTTP, "rustock"), ev("records-b", 2*time.Hour, "192.0.2.2", event.ProtoTCP, "kelihos")}
	first := lookupSeqOf(t, s, &cases[0])
	write(t, s, &store.Batch{Events: []event.Event{fresh[0], cases[0], fresh[0], fresh[1]}})
	if seq := lookupSeqOf(t, s, &cases[0]); seq != first {
		t.Fatalf("a re-delivered event's number changed from %d to %d", first, seq)
	}
	more, last2 := lookupRecordsAfter(t, s, last, 100)
	SameRecords(t, more, fresh)
	if last2 != lookupSeqOf(t, s, &fresh[1]) {
		t.Fatalf("last %d, want records-b's", last2)
	}
	all, _ := lookupRecordsAfter(t, s, 0, 100)
	SameRecords(t, all, append(RecordCases(), fresh...))
	// After the last number, nothing.
	if recs, l, err := s.RecordsAfter(t.Context(), last2, 100); err != nil || len(recs) != 0 || l != last2 {
		t.Fatalf("RecordsAfter(last) = %d records, %d, %v", len(recs), l, err)
	}
}

// Any page size gives the same records in the same order; the last
// number returned resumes exactly after the page.
func testLookupRecordsPaging(t *testing.T, open OpenLookup) {
	s := open(t)
	var evs []event.Event
	for b := range 3 {
		var batch []event.Event
		for i := range 7 {
			batch = append(batch, ev(fmt.Sprintf("page-%d-%d", b, i), time.Duration(7*b+i)*time.Minute, fmt.Sprintf("192.0.2.%d", i+1), event.ProtoHTTP, "rustock"))
		}
		write(t, s, &store.Batch{Events: batch})
		evs = append(evs, batch...)
	}
	for _, limit := range []int{1, 2, 5, 7, 21, 100} {
		got, last := lookupRecordsAfter(t, s, 0, limit)
		SameRecords(t, got, evs)
		if last != lookupSeqOf(t, s, &evs[len(evs)-1]) {
			t.Errorf("limit %d: last %d", limit, last)
		}
	}
	if recs, l, err := s.RecordsAfter(t.Context(), 0, 0); err != nil || len(recs) != 0 || l != 0 {
		t.Fatalf("RecordsAfter(0, 0) = %d records, %d, %v", len(recs), l, err)
	}
	// From the middle of a batch.
	got, _ := lookupRecordsAfter(t, s, lookupSeqOf(t, s, &evs[9]), 4)
	SameRecords(t, got, evs[10:])
}

// Purged events have no number and are not returned.
func testLookupSeqOfPurged(t *testing.T, open OpenLookup) {
	s := open(t)
	old := ev("purged-old", -24*time.Hour, "192.0.2.1", event.ProtoHTTP, "rustock")
	kept := ev("purged-kept", time.Hour, "192.0.2.2", event.ProtoHTTP, "rustock")
	write(t, s, &store.Batch{Events: []event.Event{old, kept}})
	if _, err := s.PurgeEvents(t.Context(), day0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.SeqOf(t.Context(), old.Timestamp, old.ID); ok || err != nil {
		t.Fatalf("SeqOf of a purged event = %v, %v", ok, err)
	}
	got, _ := lookupRecordsAfter(t, s, 0, 10)
	SameRecords(t, got, []event.Event{kept})
}
