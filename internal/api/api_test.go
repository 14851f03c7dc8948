package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

type env struct {
	f   *apitest.Fixture
	srv *httptest.Server
}

func newEnv(t *testing.T, mod func(*api.Options, *apitest.Fixture)) *env {
	t.Helper()
	f := apitest.New(t)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_conn_accepted_total", Help: "x"})
	c.Add(42)
	q := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_dns_queries_total", Help: "x"}, []string{"transport", "rcode"})
	q.WithLabelValues("udp", "NOERROR").Add(10)
	q.WithLabelValues("tcp", "REFUSED").Add(5)
	rl := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_dns_rrl_limited_total", Help: "x"}, []string{"action"})
	rl.WithLabelValues("slip").Add(3)
	reg.MustRegister(c, q, rl)
	// The sinkhole route reads typed counters, not the registry: the
	// figures below differ from the registry's on purpose.
	counters := func() api.Counters {
		ok := true
		return api.Counters{Connections: 41, DNSQueries: 16, RateLimited: 4, SelfChecks: 7, LastReloadOK: &ok}
	}
	o := api.Options{Registry: f.DB, Events: f.Events, Stats: f.Stats, Tokens: f.DB, Gatherer: reg, Counters: counters, Now: func() time.Time { return apitest.Now }}
	if mod != nil {
		mod(&o, f)
	}
	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", api.New(o))
	mux.Handle("/metrics", api.MetricsHandler(reg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{f, srv}
}

// get fetches path with the named token ("" for none) and returns status
// and body.
func (e *env) do(t testing.TB, method, path, tok, body string) (int, []byte, http.Header) {
	t.Helper()
	return e.request(t, method, path, tok, body, nil)
}

func (e *env) request(t testing.TB, method, path, tok, body string, mod func(*http.Request)) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		s, ok := e.f.Secrets[tok]
		if !ok {
			s = tok
		}
		req.Header.Set("Authorization", "Bearer "+s)
	}
	if mod != nil {
		mod(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// doCT is do with a Content-Type.
func (e *env) doCT(t testing.TB, method, path, tok, ct, body string) (int, []byte, http.Header) {
	t.Helper()
	return e.request(t, method, path, tok, body, func(r *http.Request) { r.Header.Set("Content-Type", ct) })
}

func (e *env) get(t testing.TB, path, tok string) (int, []byte) {
	t.Helper()
	code, b, _ := e.do(t, "GET", path, tok, "")
	return code, b
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

type errDoc struct {
	Error struct {
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestAccess(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		path string
		tok  string
		want int
		code string
	}{
		{"/api/v1/health", "", 200, ""},
		{"/api/v1/openapi.json", "", 200, ""},
		{"/api/v1/orders", "", 401, "unauthorized"},
		{"/api/v1/orders", "network", 403, "forbidden"},
		{"/api/v1/orders", "analyst", 200, ""},
		{"/api/v1/orders", "expired", 401, "unauthorized"},
		{"/api/v1/orders", "revoked", 401, "unauthorized"},
		{"/api/v1/orders", "tdk_not-a-token", 401, "unauthorized"},
		{"/api/v1/orders/CASE-1", "admin", 200, ""},
		{"/api/v1/orders/NOPE", "admin", 404, "not_found"},
		{"/api/v1/indicators", "network", 200, ""},
		{"/api/v1/indicators", "", 401, "unauthorized"},
		{"/api/v1/exports/rpz?sinkhole_a=192.0.2.1", "network", 200, ""},
		{"/api/v1/exports/nope", "network", 404, "unknown_format"},
		{"/api/v1/stats", "", 401, "unauthorized"},
		{"/api/v1/stats", "network", 200, ""},
		{"/api/v1/stats?by=planet", "analyst", 400, "bad_parameter"},
		{"/api/v1/stats?from=yesterday", "analyst", 400, "bad_parameter"},
		{"/api/v1/events", "", 401, "unauthorized"},
		{"/api/v1/events", "network", 200, ""},
		{"/api/v1/sinkhole", "network", 403, "forbidden"},
		{"/api/v1/sinkhole", "analyst", 200, ""},
		{"/api/v1/evidence/checkpoints", "analyst", 501, "not_configured"},
		{"/api/v1/tokens", "analyst", 403, "forbidden"},
		{"/api/v1/tokens", "admin", 200, ""},
		{"/api/v1/nothing", "admin", 404, "no_route"},
	}
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.tok, func(t *testing.T) {
			code, body := e.get(t, tt.path, tt.tok)
			if code != tt.want {
				t.Fatalf("status %d, want %d: %s", code, tt.want, body)
			}
			if tt.code != "" {
				d := decode[errDoc](t, body)
				if d.Error.Code != tt.code || d.Error.Status != code || d.Error.Message == "" {
					t.Fatalf("error %+v, want code %s", d.Error, tt.code)
				}
			}
		})
	}
	t.Run("method", func(t *testing.T) {
		code, body, h := e.do(t, "DELETE", "/api/v1/orders", "admin", "")
		if code != 405 || decode[errDoc](t, body).Error.Code != "method_not_allowed" || h.Get("Allow") != "GET" {
			t.Fatalf("status %d allow %q: %s", code, h.Get("Allow"), body)
		}
	})
}

func TestStatsThreshold(t *testing.T) {
	e := newEnv(t, func(o *api.Options, _ *apitest.Fixture) { o.PublicStats = true })
	keys := func(tok string) []string {
		code, body := e.get(t, "/api/v1/stats?by=country", tok)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		r := decode[stats.Result](t, body)
		if r.UniqueIPs != uint64(len(apitest.Hosts)) {
			t.Fatalf("unique_ips %d, want %d", r.UniqueIPs, len(apitest.Hosts))
		}
		var ks []string
		for _, row := range r.Rows {
			ks = append(ks, row.Key)
		}
		slices.Sort(ks)
		return ks
	}
	if got, want := keys(""), []string{"BR", "DE", "JP", "US"}; !slices.Equal(got, want) {
		t.Errorf("anonymous rows %v, want %v (FR has 2 < 5)", got, want)
	}
	if got, want := keys("network"), []string{"BR", "DE", "JP", "US"}; !slices.Equal(got, want) {
		t.Errorf("network rows %v, want %v", got, want)
	}
	if got, want := keys("analyst"), apitest.Countries(); !slices.Equal(got, want) {
		t.Errorf("analyst rows %v, want %v", got, want)
	}
	// The API's document is the engine's document.
	_, body := e.get(t, "/api/v1/stats?window=7d&by=family", "analyst")
	r := decode[stats.Result](t, body)
	direct, err := e.f.Stats.Stats(t.Context(), stats.Query{From: apitest.Now.Add(-7 * 24 * time.Hour), To: apitest.Now, By: stats.ByFamily})
	if err != nil {
		t.Fatal(err)
	}
	if r.UniqueIPs != direct.UniqueIPs || len(r.Rows) != len(direct.Rows) || r.Rows[0] != direct.Rows[0] {
		t.Errorf("api %+v, engine %+v", r, direct)
	}
}

func TestOrdersDaysLeft(t *testing.T) {
	e := newEnv(t, nil)
	_, body := e.get(t, "/api/v1/orders", "analyst")
	d := decode[struct {
		Orders []struct {
			Case     string `json:"case"`
			DaysLeft *int   `json:"days_left"`
			Expiring bool   `json:"expiring_within_30_days"`
			Counts   map[string]int
		} `json:"orders"`
	}](t, body)
	if len(d.Orders) != 1 || d.Orders[0].DaysLeft == nil || *d.Orders[0].DaysLeft != 20 || !d.Orders[0].Expiring {
		t.Fatalf("orders %s", body)
	}
}

func TestTokensAPI(t *testing.T) {
	e := newEnv(t, nil)
	code, body, _ := e.do(t, "POST", "/api/v1/tokens", "admin", `{"role":"network","networks":"AS64502"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	created := decode[struct {
		Token  struct{ ID string }
		Secret string
	}](t, body)
	e.f.Secrets["new"] = created.Secret
	if code, body := e.get(t, "/api/v1/events", "new"); code != 200 || !strings.Contains(string(body), "203.0.113.1\"") {
		t.Fatalf("new token: %d %s", code, body)
	}
	if code, _, _ := e.do(t, "POST", "/api/v1/tokens", "analyst", `{"role":"admin"}`); code != 403 {
		t.Fatalf("analyst created a token: %d", code)
	}
	if code, body, _ := e.do(t, "POST", "/api/v1/tokens", "admin", `{"role":"network"}`); code != 400 {
		t.Fatalf("network token without networks: %d %s", code, body)
	}
	if code, body, _ := e.do(t, "DELETE", "/api/v1/tokens/"+created.Token.ID, "admin", ""); code != 204 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := e.get(t, "/api/v1/events", "new"); code != 401 {
		t.Fatalf("revoked token still works: %d", code)
	}
}

func TestMetricsAndSinkhole(t *testing.T) {
	e := newEnv(t, nil)
	code, body := e.get(t, "/metrics", "")
	if code != 200 || !strings.Contains(string(body), "takedown_conn_accepted_total 42") {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	_, body = e.get(t, "/api/v1/sinkhole", "analyst")
	s := decode[api.Sinkhole](t, body)
	if s.Connections != 41 || s.DNSQueries != 16 || s.RateLimited != 4 || s.SelfChecks != 7 || s.LastReloadOK == nil || !*s.LastReloadOK ||
		!s.MetricsAvailable || s.StoredTotal == 0 {
		t.Fatalf("sinkhole %+v", s)
	}
	// The fixture's events name no listener: the store counts them as
	// stored by the unnamed listener.
	if len(s.Listeners) != 1 || s.Listeners[0].Name != store.UnnamedListener || s.Listeners[0].Stored != s.StoredTotal {
		t.Fatalf("sinkhole listeners %+v", s.Listeners)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestAccessLog: every read of IP-level rows leaves one JSON line before it
// is answered; a read that cannot be logged is refused.
func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, func(o *api.Options, _ *apitest.Fixture) { o.AccessLog = &buf })
	code, body := e.get(t, "/api/v1/events?window=7d&format=csv", "network")
	if code != 200 || !strings.Contains(string(body), "198.51.100.1,") {
		t.Fatalf("events: %d %s", code, body)
	}
	if code, _ := e.get(t, "/api/v1/stats?by=country", "network"); code != 200 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("access log (aggregates are not IP-level data):\n%s", buf.String())
	}
	var rec struct {
		Who, Role, Path, Query, Remote string
		Rows                           int
		Networks                       struct{ ASNs []uint32 }
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	wantRows := strings.Count(string(body), "\n") - 1 // minus the header
	if !strings.HasPrefix(rec.Who, "token:") || rec.Role != "network" || rec.Path != "/api/v1/events" || rec.Query != "window=7d&format=csv" ||
		rec.Rows != wantRows || rec.Rows == 0 || len(rec.Networks.ASNs) != 1 || rec.Remote == "" {
		t.Fatalf("access record %s (want %d rows)", lines[0], wantRows)
	}

	e = newEnv(t, func(o *api.Options, _ *apitest.Fixture) { o.AccessLog = failingWriter{} })
	code, body = e.get(t, "/api/v1/events?window=7d", "analyst")
	if code != 500 || strings.Contains(string(body), "198.51.100") {
		t.Fatalf("unlogged read answered: %d %s", code, body)
	}
}
