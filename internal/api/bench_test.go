package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
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
