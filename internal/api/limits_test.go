package api_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// counter reads the sum of the samples of name with label route from the
// env's /metrics.
func (e *env) counter(t testing.TB, name, route string) float64 {
	t.Helper()
	code, b := e.get(t, "/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, `route="`+route+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

type eventsPage struct {
	Rows []struct {
		Day    string `json:"day"`
		IP     string `json:"src_ip"`
		Family string `json:"family"`
	} `json:"rows"`
	Next string `json:"next_cursor"`
}

func TestLimitsRefuseWithTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	// History longer than a window may be: one source 900 days before the
	// fixture's days.
	old := apitest.Now.AddDate(0, 0, -900)
	if _, err := e.f.Events.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{{ID: "ancient", Timestamp: old, Protocol: event.ProtoHTTP,
		SrcIP: netip.MustParseAddr("198.51.100.9"), SrcGeo: "DE", SrcASN: 64501, Family: "rustock"}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Events.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
	}{
		{"events limit", "/api/v1/events?limit=1000000000"},
		{"events over the history", "/api/v1/events?from=1970-01-01&to=9999-12-31"},
		{"stats over the history", "/api/v1/stats?from=1970-01-01&to=9999-12-31"},
		{"stats baseline over the history", "/api/v1/stats?baseline_from=1970-01-01&baseline_to=9999-12-31"},
		{"series of too many points", "/api/v1/series?from=1970-01-01&every=day"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := e.get(t, tc.path, "admin")
			if code != 400 || decode[errDoc](t, b).Error.Code != "too_large" {
				t.Fatalf("%s: %d %s, want 400 too_large", tc.path, code, b)
			}
		})
	}
	// The same requests within the history's last 800 days are answered.
	from := apitest.Now.AddDate(0, 0, -799).Format(time.DateOnly)
	for _, path := range []string{"/api/v1/events?from=" + from + "&to=9999-12-31", "/api/v1/stats?from=" + from + "&to=9999-12-31&by=country"} {
		if code, b := e.get(t, path, "admin"); code != 200 {
			t.Errorf("%s: %d %s", path, code, b)
		}
	}
}

// TestHostileWindowsCostTheHistory: a window to 9999-12-31 or from 1970
// costs the days the store holds, not the days it names.
func TestHostileWindowsCostTheHistory(t *testing.T) {
	e := newEnv(t, nil)
	today := apitest.Now.Truncate(24 * time.Hour)
	for _, tc := range []struct {
		route, path string
		maxPieces   float64
	}{
		// The fixture holds 4 days; the window reaches 9999.
		{"stats", "/api/v1/stats?from=" + today.Format(time.DateOnly) + "&to=9999-12-31&by=country", 1},
		{"stats", "/api/v1/stats?from=1970-01-01&to=9999-12-31", 4},
		// 800 weekly steps from today (5,600 days) end with the history.
		{"series", "/api/v1/series?from=" + today.Format(time.DateOnly) + "&to=" + today.AddDate(0, 0, 7*799).Format(time.DateOnly) + "&every=week", 1},
	} {
		before := e.counter(t, "takedown_api_stats_days_total", tc.route)
		code, b := e.get(t, tc.path, "admin")
		if code != 200 {
			t.Fatalf("%s: %d %s", tc.path, code, b)
		}
		if got := e.counter(t, "takedown_api_stats_days_total", tc.route) - before; got > tc.maxPieces || got < 1 {
			t.Errorf("%s: %v day pieces combined, want 1 to %v", tc.path, got, tc.maxPieces)
		}
	}
	// The figures are those of the history: 25 infected addresses.
	_, b := e.get(t, "/api/v1/stats?from=1970-01-01&to=9999-12-31", "admin")
	if got := decode[stats.Result](t, b).UniqueIPs; got != uint64(len(apitest.Hosts)) {
		t.Errorf("unique_ips %d, want %d", got, len(apitest.Hosts))
	}
}

// TestNetworkScanReadsOwnRows: a network token's events request reads its
// own networks' rows from the store, not everyone's.
func TestNetworkScanReadsOwnRows(t *testing.T) {
	e := newEnv(t, nil)
	own := 0 // AS64501 (DE) and 2001:db8:1::/48 (JP), on two days
	for _, h := range apitest.Hosts {
		if h.ASN == 64501 || strings.HasPrefix(h.IP, "2001:db8:1:") {
			own += 2
		}
	}
	for _, tc := range []struct {
		tok, query string
		max        int
	}{
		{"network", "", own + 1}, // +1: the resolver in AS64501, read and not listed
		{"network-fr", "", 4},
		{"admin", "&cidr=198.51.100.0/24", 13},
		{"admin", "&asn=64505", 4},
		{"admin", "&country=br", 10},
	} {
		before := e.counter(t, "takedown_api_rows_scanned_total", "events")
		code, b := e.get(t, "/api/v1/events?from=1970-01-01"+tc.query, tc.tok)
		if code != 200 {
			t.Fatalf("%s: %d %s", tc.tok, code, b)
		}
		scanned := e.counter(t, "takedown_api_rows_scanned_total", "events") - before
		rows := len(decode[eventsPage](t, b).Rows)
		if scanned > float64(tc.max) || rows == 0 || scanned < float64(rows) {
			t.Errorf("%s%s: %v rows scanned for %d rows listed, want at most %d", tc.tok, tc.query, scanned, rows, tc.max)
		}
	}
}

// TestEventsPagesByPlace: pages that end on the scan budget or the limit
// list every row once; a cursor whose row has gone continues after its
// place, not at the next day.
func TestEventsPagesByPlace(t *testing.T) {
	e := newEnv(t, func(o *api.Options, _ *apitest.Fixture) { o.MaxScanRows = 3 })
	_, b := e.get(t, "/api/v1/events?from=1970-01-01&limit=10000", "admin")
	all := decode[eventsPage](t, b)
	if len(all.Rows) != 3 || all.Next == "" {
		t.Fatalf("first page under a budget of 3 rows: %d rows, cursor %q", len(all.Rows), all.Next)
	}
	for _, limit := range []int{1, 2, 7} {
		seen := map[string]bool{}
		n, cursor := 0, ""
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("no end of pages")
			}
			_, b := e.get(t, fmt.Sprintf("/api/v1/events?from=1970-01-01&limit=%d&cursor=%s", limit, cursor), "admin")
			p := decode[eventsPage](t, b)
			for _, r := range p.Rows {
				k := r.Day + "/" + r.IP + "/" + r.Family
				if seen[k] {
					t.Fatalf("limit %d: row %s listed twice", limit, k)
				}
				seen[k] = true
				n++
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if n != 2*len(apitest.Hosts) {
			t.Errorf("limit %d: %d rows over all pages, want %d", limit, n, 2*len(apitest.Hosts))
		}
	}

	// A cursor at a place whose row is gone (198.51.100.2, family "zzz",
	// never stored) continues with 198.51.100.3 the same day.
	day := apitest.Now.Truncate(24 * time.Hour)
	c := base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(day.Unix(), 10) + "|198.51.100.2|zzz"))
	e2 := newEnv(t, nil)
	_, b = e2.get(t, "/api/v1/events?from=1970-01-01&cidr=198.51.100.0/24&cursor="+url.QueryEscape(c), "admin")
	p := decode[eventsPage](t, b)
	if len(p.Rows) != 4 || p.Rows[0].IP != "198.51.100.3" || p.Rows[0].Day != day.Format(time.DateOnly) {
		t.Errorf("after a vanished row: %+v, want 198.51.100.3 to .6 of %s", p.Rows, day.Format(time.DateOnly))
	}
}

// TestSmallCountsCannotBeSubtracted: for callers who do not see
// everything, no hidden row's count follows from the published figures.
// The fixture: DE 6, US 7, BR 5, JP 5, FR 2; threshold 5 hides FR.
func TestSmallCountsCannotBeSubtracted(t *testing.T) {
	e := newEnv(t, func(o *api.Options, _ *apitest.Fixture) { o.PublicStats, o.MinCount = true, 5 })
	const k = 5
	for _, tok := range []string{"", "network"} {
		for _, by := range []string{"country", "asn", "family"} {
			_, b := e.get(t, "/api/v1/stats?window=7d&by="+by+"&baseline_from=2026-11-20&baseline_to=2026-11-26", tok)
			r := decode[stats.Result](t, b)
			// Every published count is a multiple of k.
			counts := []uint64{r.UniqueIPs, r.EstimatedHosts, r.ResolverIPsExcluded}
			if r.Baseline != nil {
				counts = append(counts, r.Baseline.UniqueIPs)
			}
			var shown uint64
			for _, row := range r.Rows {
				if row.UniqueIPs < k {
					t.Errorf("%q by %s: row %s of %d shown", tok, by, row.Key, row.UniqueIPs)
				}
				shown += row.UniqueIPs
				counts = append(counts, row.UniqueIPs)
			}
			for _, c := range counts {
				if c%k != 0 {
					t.Errorf("%q by %s: published count %d is not a multiple of %d: %s", tok, by, c, k, b)
				}
			}
			// The one hidden country: the values of FR consistent with a
			// total in [T, T+k) and rows each in [R, R+k).
			if by == "country" {
				lo := max(1, int(r.UniqueIPs)-int(shown)-len(r.Rows)*(k-1))
				hi := min(k-1, int(r.UniqueIPs)+k-1-int(shown))
				if hi-lo < 1 {
					t.Errorf("%q: FR is pinned to %d..%d by total %d and rows %+v", tok, lo, hi, r.UniqueIPs, r.Rows)
				}
			}
		}
	}
	// Analysts see exact figures.
	_, b := e.get(t, "/api/v1/stats?window=7d&by=country", "analyst")
	if r := decode[stats.Result](t, b); r.UniqueIPs != 25 || len(r.Rows) != 5 {
		t.Errorf("analyst: %d addresses, %d rows; want 25 and 5", r.UniqueIPs, len(r.Rows))
	}
}
