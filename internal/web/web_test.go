package web

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
)

// testUsers has admin/s3cret-admin and analyst/s3cret-analyst, hashed
// with few iterations to keep the tests fast.
func testUsers(t testing.TB) Users {
	t.Helper()
	return usersOf(t, [2]string{"admin", "admin"}, [2]string{"analyst", "analyst"})
}

// newServer starts the dashboard over the API fixture.
// newServer serves the dashboard over fx; mods change the API's options.
func newServer(t testing.TB, fx *apitest.Fixture, mods ...func(*api.Options)) *httptest.Server {
	t.Helper()
	o := api.Options{Registry: fx.DB, Events: fx.Events, Stats: fx.Stats, Tokens: fx.DB, Now: func() time.Time { return apitest.Now },
		Notify: fx.Notify, NotifySchedule: api.NotifySchedule{Enabled: true, At: "06:00"},
		Baseline: api.Window{From: apitest.Now.Add(-5 * 24 * time.Hour), To: apitest.Now.Add(-2 * 24 * time.Hour)}}
	for _, m := range mods {
		m(&o)
	}
	a := api.New(o)
	d := New(Options{API: a, Users: testUsers(t)})
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return srv
}

func client(t testing.TB) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func body(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login logs c in and returns the login answer.
func login(t testing.TB, c *http.Client, base, user, password string) *http.Response {
	t.Helper()
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	m := csrfField.FindStringSubmatch(body(t, resp))
	if m == nil {
		t.Fatal("no csrf field on the login page")
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {m[1]}, "user": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestLoginSessionCSRF(t *testing.T) {
	srv := newServer(t, apitest.New(t))
	c := client(t)
	resp, err := c.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("/ without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
		t.Errorf("CSP %q", csp)
	}

	t.Run("wrong password", func(t *testing.T) {
		c := client(t)
		resp := login(t, c, srv.URL, "admin", "wrong")
		b := body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, "Wrong user name or password") {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == SessionCookie && ck.Value != "" {
				t.Fatal("a wrong password got a session")
			}
		}
	})
	t.Run("form without csrf", func(t *testing.T) {
		resp, err := client(t).PostForm(srv.URL+"/login", url.Values{"user": {"admin"}, "password": {"s3cret-admin"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	resp = login(t, c, srv.URL, "admin", "s3cret-admin")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d %s", resp.StatusCode, body(t, resp))
	}
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", sess)
	}
	resp, _ = c.Get(srv.URL + "/")
	page := body(t, resp)
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("index: %d", resp.StatusCode)
	}
	if strings.Contains(page, "<script>") {
		t.Error("inline script in the page")
	}
	// Reads work with the session.
	resp, _ = c.Get(srv.URL + "/api/v1/orders")
	if resp.StatusCode != 200 {
		t.Fatalf("orders with a session: %d %s", resp.StatusCode, body(t, resp))
	}
	// A state-changing request needs the CSRF header.
	post := func(csrf string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/tokens", strings.NewReader(`{"role":"analyst"}`))
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		return resp.StatusCode
	}
	if got := post(""); got != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %d", got)
	}
	if got := post("wrong"); got != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d", got)
	}
	if got := post(m[1]); got != http.StatusCreated {
		t.Errorf("POST with the CSRF token: %d", got)
	}
	// Logout ends the session.
	resp, _ = c.PostForm(srv.URL+"/logout", url.Values{"csrf": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	resp, _ = client(t).Do(func() *http.Request {
		r, _ := http.NewRequest("GET", srv.URL+"/api/v1/orders", nil)
		r.AddCookie(sess)
		return r
	}())
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old session after logout: %d", resp.StatusCode)
	}
}

func TestOpenPasswordFile(t *testing.T) {
	dir := t.TempDir()
	f, pw, err := OpenPasswordFile(dir)
	if err != nil || pw == "" {
		t.Fatalf("first open: %v %q", err, pw)
	}
	if r, ok := f.Authenticate("admin", pw); !ok || r != "admin" {
		t.Fatal("the printed password does not log in")
	}
	if _, ok := f.Authenticate("admin", pw+"x"); ok {
		t.Fatal("a wrong password logs in")
	}
	f2, pw2, err := OpenPasswordFile(dir)
	if err != nil || pw2 != "" {
		t.Fatalf("second open: %v, password %q printed again", err, pw2)
	}
	if _, ok := f2.Authenticate("admin", pw); !ok {
		t.Fatal("password lost on reopen")
	}
	if _, err := ParsePasswordFile("u", []byte("bob network pbkdf2-sha256$1$AA$AA\nbob\n")); err == nil || !strings.Contains(err.Error(), "u:1:") || !strings.Contains(err.Error(), "u:2:") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestLoginThrottle(t *testing.T) {
	fx := apitest.New(t)
	a := api.New(api.Options{Registry: fx.DB, Events: fx.Events, Stats: fx.Stats, Tokens: fx.DB})
	var now atomic.Int64 // unix seconds; the server reads it from its own goroutines
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	d := New(Options{API: a, Users: testUsers(t), MaxLoginFailures: 3, Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	c := client(t)
	for i := range 3 {
		if resp := login(t, c, srv.URL, "admin", "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i, resp.StatusCode)
		}
	}
	// Now even the right password is refused from this address.
	if resp := login(t, c, srv.URL, "admin", "s3cret-admin"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures: status %d", resp.StatusCode)
	}
	now.Add(16 * 60)
	if resp := login(t, c, srv.URL, "admin", "s3cret-admin"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: status %d", resp.StatusCode)
	}
}
