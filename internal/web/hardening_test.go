package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
)

// gatedUsers holds every Authenticate until the gate opens, so a test sees
// how many hashes run at once.
type gatedUsers struct {
	Users
	gate    chan struct{}
	mu      sync.Mutex
	running int
	entered chan struct{}
}

func (g *gatedUsers) Authenticate(user, password string) (netscope.Role, bool) {
	g.mu.Lock()
	g.running++
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.gate
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	return g.Users.Authenticate(user, password)
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// postLogin posts a login form with a fixed CSRF pair.
func postLogin(t testing.TB, base, remote, user, password string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"csrf": {"c"}, "user": {user}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: "c"})
	if remote != "" {
		req.Header.Set("X-Forwarded-For", remote)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// At most LoginConcurrency hashes run at once; a login beyond is refused
// with 503 at once and does not use up a failure.
func TestLoginConcurrency(t *testing.T) {
	users := &gatedUsers{Users: testUsers(t), gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	reg := prometheus.NewRegistry()
	d := New(Options{Users: users, LoginConcurrency: 2, MaxLoginFailures: 3, Registerer: reg,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)

	codes := make(chan int, 2)
	for i := range 2 {
		go func() { codes <- postLogin(t, srv.URL, "192.0.2."+string(rune('1'+i)), "admin", "wrong").StatusCode }()
	}
	<-users.entered
	<-users.entered
	// Both slots taken: the third is refused without waiting.
	resp := postLogin(t, srv.URL, "192.0.2.9", "admin", "s3cret-admin")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third concurrent login: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(users.gate)
	for range 2 {
		if c := <-codes; c != http.StatusUnauthorized {
			t.Fatalf("gated wrong password: %d", c)
		}
	}
	if got := counterValue(t, d.metrics.hashes); got != 2 {
		t.Errorf("hashes %v, want 2", got)
	}
	if got := counterValue(t, d.metrics.busy); got != 1 {
		t.Errorf("busy %v, want 1", got)
	}
	// The busy refusal used up none of 192.0.2.9's failures.
	for i := range 3 {
		if c := postLogin(t, srv.URL, "192.0.2.9", "admin", "wrong").StatusCode; c != http.StatusUnauthorized {
			t.Fatalf("failure %d after a busy refusal: %d", i+1, c)
		}
	}
	if c := postLogin(t, srv.URL, "192.0.2.9", "admin", "s3cret-admin").StatusCode; c != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures: %d", c)
	}
	// One /64 is one client; the next /64 is another.
	for i, tc := range []struct {
		remote string
		want   int
	}{
		{"2001:db8:0:1::1", http.StatusUnauthorized}, {"2001:db8:0:1::2", http.StatusUnauthorized}, {"2001:db8:0:1::3", http.StatusUnauthorized},
		{"2001:db8:0:1::4", http.StatusTooManyRequests}, {"2001:db8:0:2::1", http.StatusUnauthorized},
	} {
		if c := postLogin(t, srv.URL, tc.remote, "admin", "wrong").StatusCode; c != tc.want {
			t.Errorf("attempt %d from %s: %d, want %d", i, tc.remote, c, tc.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	d := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, tc := range []struct {
		name, peer, xff, want string
	}{
		{"untrusted peer: header ignored", "192.0.2.1:5", "198.51.100.1", "192.0.2.1:5"},
		{"trusted proxy: last hop", "10.0.0.1:5", "198.51.100.1", "198.51.100.1"},
		{"client's own claim skipped", "10.0.0.1:5", "203.0.113.66, 198.51.100.1", "198.51.100.1"},
		{"chained trusted proxies", "10.0.0.1:5", "198.51.100.1, 10.0.0.2", "198.51.100.1"},
		{"garbage: the peer", "10.0.0.1:5", "nonsense", "10.0.0.1:5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set("X-Forwarded-For", tc.xff)
			if got := d.clientAddr(r); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSecureCookies(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name    string
		policy  SecureCookies
		tls     bool
		proxies []netip.Prefix
		proto   string
		want    bool
	}{
		{"auto, plain HTTP", SecureAuto, false, nil, "", false},
		{"auto, TLS", SecureAuto, true, nil, "", true},
		{"default is auto", "", true, nil, "", true},
		{"auto, trusted TLS proxy", SecureAuto, false, loopback, "https", true},
		{"auto, trusted plain proxy", SecureAuto, false, loopback, "http", false},
		{"auto, untrusted peer claims https", SecureAuto, false, nil, "https", false},
		{"always, plain HTTP", SecureAlways, false, nil, "", true},
		{"never, TLS", SecureNever, true, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{Users: testUsers(t), SecureCookies: tc.policy, TrustedProxies: tc.proxies})
			var srv *httptest.Server
			if tc.tls {
				srv = httptest.NewTLSServer(d)
			} else {
				srv = httptest.NewServer(d)
			}
			t.Cleanup(srv.Close)
			c := srv.Client()
			req, _ := http.NewRequest("GET", srv.URL+"/login", nil)
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cs := resp.Cookies()
			if len(cs) == 0 {
				t.Fatal("no cookie")
			}
			for _, ck := range cs {
				if ck.Secure != tc.want {
					t.Errorf("cookie %s Secure %v, want %v", ck.Name, ck.Secure, tc.want)
				}
			}
			if hsts := resp.Header.Get("Strict-Transport-Security") != ""; hsts != (tc.tls || tc.proto == "https" && tc.proxies != nil) {
				t.Errorf("HSTS sent %v", hsts)
			}
		})
	}
}

func TestMetricsNeedAnalyst(t *testing.T) {
	fx := apitest.New(t)
	reg := prometheus.NewRegistry()
	a := api.New(api.Options{Registry: fx.DB, Events: fx.Events, Stats: fx.Stats, Tokens: fx.DB})
	d := New(Options{API: a, Metrics: api.MetricsHandler(reg), Tokens: fx.DB, Users: testUsers(t), Registerer: reg})
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	secret := func(s token.Spec) string {
		_, sec, err := token.Issue(t.Context(), fx.DB, s, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return sec
	}
	nets, err := netscope.ParseNetworks("AS64500")
	if err != nil {
		t.Fatal(err)
	}
	get := func(c *http.Client, bearer string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		if resp.StatusCode == 200 && !strings.Contains(b, "takedown_web_login_hashes_total") {
			t.Errorf("metrics lack the login counters:\n%s", b)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		bearer string
		want   int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"garbage token", "tdk_nonsense", http.StatusUnauthorized},
		{"network token", secret(token.Spec{Role: netscope.RoleNetwork, Networks: nets}), http.StatusUnauthorized},
		{"analyst token", secret(token.Spec{Role: netscope.RoleAnalyst}), http.StatusOK},
		{"admin token", secret(token.Spec{Role: netscope.RoleAdmin}), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(http.DefaultClient, tc.bearer); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("session", func(t *testing.T) {
		c := client(t)
		if resp := login(t, c, srv.URL, "analyst", "s3cret-analyst"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		if got := get(c, ""); got != http.StatusOK {
			t.Errorf("status %d with a session", got)
		}
	})
}
