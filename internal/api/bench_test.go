package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// BenchmarkScopedEvents is one page of a network token's events: token
// lookup, scan of the day's aggregates, the scope check on every row and
// the JSON encoding.
func BenchmarkScopedEvents(b *testing.B) {
	benchGet(b, "/api/v1/events?window=24h", "network")
}

// BenchmarkStats is GET /api/v1/stats (the last 24 hours) with a token.
func BenchmarkStats(b *testing.B) {
	benchGet(b, "/api/v1/stats", "analyst")
}

// benchGet times GET target with the fixture's token of role, which must
// answer 200.
func benchGet(b *testing.B, target, role string) {
	b.Helper()
	f := apitest.New(b)
	h := api.New(api.Options{Registry: f.DB, Events: f.Events, Stats: f.Stats, Tokens: f.DB, Now: func() time.Time { return apitest.Now }})
	for b.Loop() {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+f.Secrets[role])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkHostileStats is the issue 17 request GET
// /api/v1/stats?from=<today>&to=9999-12-31 (2.9 million days named, one
// stored): its cost is that of the stored days. Compare bytes/op with
// BenchmarkStats.
func BenchmarkHostileStats(b *testing.B) {
	benchGet(b, "/api/v1/stats?from="+apitest.Now.Format(time.DateOnly)+"&to=9999-12-31&by=country", "network")
}

// BenchmarkHostileSeries is 800 weekly steps from today: the series ends
// with the stored history.
func BenchmarkHostileSeries(b *testing.B) {
	benchGet(b, "/api/v1/series?from="+apitest.Now.Format(time.DateOnly)+"&to="+apitest.Now.AddDate(0, 0, 7*799).Format(time.DateOnly)+"&every=week", "network")
}

// BenchmarkEventsScanBudget is the costliest events page: 120,000 rows
// stored on one day, a filter that keeps none of them, so the request
// reads until the scan budget (DefaultMaxScanRows) ends it.
func BenchmarkEventsScanBudget(b *testing.B) {
	f := apitest.New(b)
	day := apitest.Now.Add(-time.Hour)
	const n = 120000
	for i := 0; i < n; i += 10000 {
		evs := make([]event.Event, 0, 10000)
		for j := i; j < i+10000; j++ {
			evs = append(evs, event.Event{ID: fmt.Sprintf("bulk-%d", j), Timestamp: day, Protocol: event.ProtoHTTP,
				SrcIP: netip.AddrFrom4([4]byte{11, byte(j >> 16), byte(j >> 8), byte(j)}), SrcGeo: "US", SrcASN: 64999, Family: "bulk"})
		}
		if _, err := f.Events.WriteBatch(b.Context(), &store.Batch{Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Events.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	h := api.New(api.Options{Registry: f.DB, Events: f.Events, Stats: f.Stats, Tokens: f.DB, Now: func() time.Time { return apitest.Now }})
	for b.Loop() {
		req := httptest.NewRequest("GET", "/api/v1/events?from=1970-01-01&to=9999-12-31&limit=10000&family=none", nil)
		req.Header.Set("Authorization", "Bearer "+f.Secrets["admin"])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Header().Get("X-Next-Cursor") == "" {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
