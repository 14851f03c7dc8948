package bundle

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
)

var t0 = time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)

// eventRecord returns the JSON-lines bytes of a test event.
func eventRecord(tb testing.TB, i int, caseID string, ts time.Time) []byte {
	tb.Helper()
	e := &event.Event{
		ID: fmt.Sprintf("test-%08d", i), Timestamp: ts, Protocol: event.ProtoHTTP, Transport: "tcp",
		SrcIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), SrcPort: uint16(1024 + i%60000),
		DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Case: caseID, Family: "rustock",
		HTTPMethod: "GET", HTTPURL: "/login.php", HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0",
	}
	b, err := event.MarshalJSONL(e)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// openLog opens a log in dir, closed at the end of the test.
func openLog(tb testing.TB, dir string) *evidence.Log {
	tb.Helper()
	l, err := evidence.Open(tb.Context(), dir, evidence.Options{Origin: "takedown.test/evidence"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func appendN(tb testing.TB, l *evidence.Log, recs [][]byte) uint64 {
	tb.Helper()
	first, err := l.Append(tb.Context(), recs)
	if err != nil {
		tb.Fatal(err)
	}
	return first
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
