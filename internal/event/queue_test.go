package event

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProducerSetsListener(t *testing.T) {
	q := NewQueue(4)
	http := NewProducer(q, "http:127.0.0.1:8080")
	dns := NewProducer(q, "dns")
	if again := NewProducer(q, "dns"); again != dns {
		t.Fatal("NewProducer made a second producer of one name")
	}
	e := Event{Protocol: ProtoHTTP}
	http.Offer(&e)
	if e.Listener != "" {
		t.Fatal("Offer changed the caller's event")
	}
	dns.Offer(&Event{Protocol: ProtoDNS, Listener: "relayed"}) // a listener already named is kept
	q.Offer(&Event{Protocol: ProtoTCP})                        // no producer: no listener
	tests := []struct{ proto, listener string }{
		{ProtoHTTP, "http:127.0.0.1:8080"},
		{ProtoDNS, "relayed"},
		{ProtoTCP, ""},
	}
	for _, tc := range tests {
		got := <-q.C()
		if got.Protocol != tc.proto || got.Listener != tc.listener {
			t.Errorf("queued %s event with listener %q, want %s, %q", got.Protocol, got.Listener, tc.proto, tc.listener)
		}
	}
	var names []string
	for _, p := range q.Producers() {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"dns", "http:127.0.0.1:8080"}) {
		t.Fatalf("producers %v, want dns and http sorted", names)
	}
}

func TestProducerCountsDrops(t *testing.T) {
	q := NewQueue(1)
	a, b := NewProducer(q, "a"), NewProducer(q, "b")
	a.Offer(&Event{})
	a.Offer(&Event{})
	b.Offer(&Event{})
	if a.Received() != 2 || a.Dropped() != 1 || b.Received() != 1 || b.Dropped() != 1 {
		t.Fatalf("a %d/%d, b %d/%d; want received/dropped 2/1 and 1/1", a.Received(), a.Dropped(), b.Received(), b.Dropped())
	}
	if q.Received() != 3 || q.Dropped() != 2 {
		t.Fatalf("queue %d/%d, want 3/2", q.Received(), q.Dropped())
	}
}

func TestJSONLListener(t *testing.T) {
	e := Event{ID: "a", Timestamp: time.Date(2011, 3, 17, 10, 0, 0, 0, time.UTC), Protocol: ProtoHTTP,
		SrcIP: netip.MustParseAddr("192.0.2.1"), Listener: "http:127.0.0.1:8080"}
	b, err := MarshalJSONL(&e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalJSONL(b)
	if err != nil || got.Listener != e.Listener {
		t.Fatalf("round trip: listener %q, %v; want %q", got.Listener, err, e.Listener)
	}
	// Records written before the field existed are still version 1.
	old := `{"v":1,"id":"a","timestamp":"2011-03-17T10:00:00Z","protocol":"http","src_ip":"192.0.2.1"}`
	if got, err := UnmarshalJSONL([]byte(old)); err != nil || got.Listener != "" {
		t.Fatalf("record without listener: %+v, %v", got, err)
	}
	e.Listener = ""
	if b, _ := MarshalJSONL(&e); strings.Contains(string(b), `"listener"`) {
		t.Fatalf("empty listener written: %s", b)
	}
}
