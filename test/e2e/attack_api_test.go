package e2e

// The API's attack suite (issue 17): hostile windows, pages and scopes
// against the real `takedown serve`, asserting on what a request cost
// (the work counters in /metrics) and what it answered, never on time.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// apiAttackEnv is a served store holding, for yesterday: DE 7 addresses
// in AS64501 (the network token's), NL 7 in AS64502, FR 1 in AS64503, and
// 3,000 addresses of other networks (US, AS64999).
type apiAttackEnv struct {
	web             string
	analyst, netTok string
	ownRows         int
}

const attackOthers = 3000

func startAPIAttackEnv(t *testing.T) *apiAttackEnv {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	e := &apiAttackEnv{web: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp")), ownRows: 7}
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp"))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb: {listen: %q, public_stats: true, min_count: 5}\nselfcheck: {listen: \"\"}\ndns:\n  listen: [%q]\nlisteners:\n  - {kind: http, listen: %q}\n",
		data, e.web, dnsAddr, httpAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1).Add(10 * time.Hour)
	var lines bytes.Buffer
	n := 0
	add := func(ip, cc string, asn int) {
		n++
		fmt.Fprintf(&lines, `{"v":1,"id":"attack-%d","timestamp":%q,"protocol":"http","transport":"tcp","src_ip":%q,"src_port":40000,"src_asn":%d,"src_geo":%q,"dst_ip":"192.0.2.1","dst_port":80,"case":"ATTACK-1","family":"rustock"}`+"\n",
			n, at.Add(time.Duration(n)*time.Second).Format(time.RFC3339), ip, asn, cc)
	}
	for i := 1; i <= 7; i++ {
		add(fmt.Sprintf("198.51.100.%d", i), "DE", 64501)
		add(fmt.Sprintf("203.0.113.%d", i), "NL", 64502)
	}
	add("192.0.2.77", "FR", 64503)
	for i := range attackOthers {
		add(fmt.Sprintf("11.0.%d.%d", i/250, i%250+1), "US", 64999)
	}
	events := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(events, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "--data", data, "events", "import", "--format", "jsonl", events)
	token := func(args ...string) string {
		var created struct{ Secret string }
		out := mustRun(t, nil, append([]string{"--data", data, "token", "create", "--json"}, args...)...).stdout
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" {
			t.Fatalf("token create: %v %s", err, out)
		}
		return created.Secret
	}
	e.analyst = token("--role", "analyst")
	e.netTok = token("--role", "network", "--networks", "AS64501")
	startServe(t, e.web, "--config", conf)
	return e
}

// get returns the status and body of path on the dashboard's address.
func (e *apiAttackEnv) get(t *testing.T, path, tok string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+e.web+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	// A request the server cannot bound would run for minutes: give up
	// long before (the old code built 2.9 million days for to=9999).
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// counter returns a counter's value for route from /metrics (read with the
// analyst token: /metrics is not public).
func (e *apiAttackEnv) counter(t *testing.T, name, route string) float64 {
	t.Helper()
	code, b := e.get(t, "/metrics", e.analyst)
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, b)
	}
	v, found := metricSum(string(b), name, `route="`+route+`"`)
	if !found {
		return 0
	}
	return v
}

// cost runs one request and returns its status, body and the growth of
// counter name for route.
func (e *apiAttackEnv) cost(t *testing.T, name, route, path, tok string) (int, []byte, float64) {
	t.Helper()
	before := e.counter(t, name, route)
	code, b := e.get(t, path, tok)
	return code, b, e.counter(t, name, route) - before
}

func TestAttackAPI(t *testing.T) {
	e := startAPIAttackEnv(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)

	t.Run("stats to 9999-12-31 builds the stored days only", func(t *testing.T) {
		// Anonymous: public statistics are on.
		code, b, days := e.cost(t, "takedown_api_stats_days_total", "stats", "/api/v1/stats?from="+today.Format(time.DateOnly)+"&to=9999-12-31&by=country", "")
		if code != 200 || days < 1 || days > 1 {
			t.Fatalf("%d, %v day pieces: %s", code, days, b)
		}
		code, b, days = e.cost(t, "takedown_api_stats_days_total", "stats", "/api/v1/stats?from=1970-01-01&to=9999-12-31&baseline_from=1900-01-01&baseline_to=1990-01-01", "")
		if code != 200 || days > 2 {
			t.Fatalf("%d, %v day pieces for the whole calendar: %s", code, days, b)
		}
	})

	t.Run("series over 800 weeks ends with the history", func(t *testing.T) {
		path := "/api/v1/series?from=" + today.Format(time.DateOnly) + "&to=" + today.AddDate(0, 0, 7*799).Format(time.DateOnly) + "&every=week"
		code, b, days := e.cost(t, "takedown_api_stats_days_total", "series", path, e.netTok)
		if code != 200 || days > 1 {
			t.Fatalf("%d, %v day pieces: %s", code, days, b)
		}
		code, b = e.get(t, "/api/v1/series?from=1970-01-01&every=day", e.netTok)
		if code != 400 || !bytes.Contains(b, []byte(`"too_large"`)) {
			t.Fatalf("a series of 20,000 days: %d %s, want 400 too_large", code, b)
		}
	})

	t.Run("events from 1970 with a huge limit", func(t *testing.T) {
		code, b := e.get(t, "/api/v1/events?from=1970-01-01&limit=1000000000", e.analyst)
		if code != 400 || !bytes.Contains(b, []byte(`"too_large"`)) {
			t.Fatalf("limit=1e9: %d %s, want 400 too_large", code, b)
		}
		code, b, rows := e.cost(t, "takedown_api_rows_scanned_total", "events", "/api/v1/events?from=1970-01-01&limit=10000", e.analyst)
		var page struct {
			Rows []json.RawMessage `json:"rows"`
		}
		if code != 200 || json.Unmarshal(b, &page) != nil || len(page.Rows) != attackOthers+15 || rows != float64(attackOthers+15) {
			t.Fatalf("%d, %d rows listed, %v scanned: %.200s", code, len(page.Rows), rows, b)
		}
	})

	t.Run("a network token reads its own rows only", func(t *testing.T) {
		code, b, rows := e.cost(t, "takedown_api_rows_scanned_total", "events", "/api/v1/events?from=1970-01-01&to=9999-12-31", e.netTok)
		var page struct {
			Rows []struct {
				IP string `json:"src_ip"`
			} `json:"rows"`
		}
		if code != 200 || json.Unmarshal(b, &page) != nil || len(page.Rows) != e.ownRows {
			t.Fatalf("%d: %s", code, b)
		}
		// In proportion to its own 7 rows, not the store's 3,015.
		if rows != float64(e.ownRows) {
			t.Errorf("%v rows scanned for a network of %d rows among %d", rows, e.ownRows, attackOthers+15)
		}
	})

	t.Run("small counts cannot be subtracted", func(t *testing.T) {
		const k = 5
		type result struct {
			UniqueIPs uint64 `json:"unique_ips"`
			Hosts     uint64 `json:"estimated_hosts"`
			Rows      []struct {
				Key       string `json:"key"`
				UniqueIPs uint64 `json:"unique_ips"`
			} `json:"rows"`
		}
		for _, tok := range []string{"", e.netTok} {
			for _, by := range []string{"", "country", "asn"} {
				code, b := e.get(t, "/api/v1/stats?window=7d&by="+by, tok)
				var r result
				if code != 200 || json.Unmarshal(b, &r) != nil {
					t.Fatalf("%d %s", code, b)
				}
				var shown uint64
				for _, row := range r.Rows {
					if row.Key == "FR" || row.Key == "64503" || row.UniqueIPs%k != 0 {
						t.Errorf("by %s: row %s %d published", by, row.Key, row.UniqueIPs)
					}
					shown += row.UniqueIPs
				}
				if r.UniqueIPs%k != 0 || r.Hosts%k != 0 {
					t.Errorf("by %q: total %d, hosts %d published exactly", by, r.UniqueIPs, r.Hosts)
				}
				// What a hidden FR could be, given every published figure
				// stands for [v, v+k): more than one value.
				if by == "country" {
					lo := max(1, int(r.UniqueIPs)-int(shown)-len(r.Rows)*(k-1))
					hi := min(k-1, int(r.UniqueIPs)+k-1-int(shown))
					if hi <= lo {
						t.Errorf("FR follows from total %d and rows %+v: %d..%d", r.UniqueIPs, r.Rows, lo, hi)
					}
				}
			}
		}
	})
}
