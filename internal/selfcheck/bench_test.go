package selfcheck

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// BenchmarkCheck is one whole check (rate limit, lookup in a real SQLite
// store of 14 days × 20,000 addresses, answer, JSON) for a seen and an
// unseen address.
func BenchmarkCheck(b *testing.B) {
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	es, err := sqlite.NewEventStore(b.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer es.Close()
	const addrs = 20000
	for d := range 14 {
		var batch store.Batch
		for i := range addrs {
			batch.Events = append(batch.Events, event.Event{ID: fmt.Sprintf("%d-%d", d, i), Protocol: event.ProtoHTTP, Family: "rustock",
				SrcIP:     netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}),
				Timestamp: now.AddDate(0, 0, -d).Add(-time.Duration(i) * time.Millisecond)})
		}
		if _, err := es.WriteBatch(b.Context(), &batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := es.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	f := newFixture(b, func(o *Options) { o.Lookup = es; o.RateLimit = RateLimit{Rate: 1e9, Burst: 1 << 30} })
	for _, c := range []struct{ name, addr string }{{"seen", "198.51.3.4"}, {"not-seen", "192.0.2.1"}} {
		b.Run(c.name, func(b *testing.B) {
			remote := c.addr + ":1"
			for b.Loop() {
				rec := f.do(b, httptest.NewRequest("GET", APIPath, nil), remote)
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
