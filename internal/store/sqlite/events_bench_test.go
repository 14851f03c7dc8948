package sqlite

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// BenchmarkWriteBatch stores batches of 8192 events from 100,000 distinct
// addresses (about 2.5 events per key per batch).
func BenchmarkWriteBatch(b *testing.B) {
	_, s := openEvents(b, filepath.Join(b.TempDir(), FileName))
	const size = 8192
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	events := make([]event.Event, size)
	n := 0
	for b.Loop() {
		for i := range events {
			n++
			ip := uint32(n*7919) % 100000
			events[i] = event.Event{ID: fmt.Sprintf("bench-%d", n), Timestamp: day.Add(time.Duration(n) * time.Millisecond), Protocol: "http",
				SrcIP: netip.AddrFrom4([4]byte{10, byte(ip >> 16), byte(ip >> 8), byte(ip)}), Family: "rustock", Case: "c", SrcGeo: "US", SrcASN: 64500, SrcOrg: "Example",
				HTTPHost: "c2.example", HTTPURL: "/login.php", HTTPAgent: "Mozilla/4.0"}
		}
		if _, err := s.WriteBatch(b.Context(), &store.Batch{Events: events}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}
