package web

import (
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// usersOf returns a password file of "name role" pairs, each with
// password "s3cret-<name>".
func usersOf(t testing.TB, pairs ...[2]string) Users {
	t.Helper()
	var b strings.Builder
	for _, u := range pairs {
		h, err := hashPassword("s3cret-"+u[0], 1000)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u[0] + " " + u[1] + " " + h + "\n")
	}
	f, err := ParsePasswordFile("test", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSessionsSurviveRestart: sessions kept in the SQLite store outlive
// the dashboard (a restart), store only the hash of the cookie, expire,
// end at logout, and end when the user is removed or changes role.
func TestSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "takedown.db")
	db, err := sqlite.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fx := apitest.New(t)
	now := apitest.Now
	clock := func() time.Time { return now }
	// start serves a new dashboard (a new process, as far as sessions go)
	// over the same store, with the given users.
	start := func(users Users) *httptest.Server {
		a := api.New(api.Options{Registry: fx.DB, Events: fx.Events, Stats: fx.Stats, Tokens: fx.DB, Now: clock})
		srv := httptest.NewServer(New(Options{API: a, Users: users, Sessions: db, Now: clock, SessionTTL: time.Hour}))
		t.Cleanup(srv.Close)
		return srv
	}
	both := [][2]string{{"admin", "admin"}, {"analyst", "analyst"}}
	status := func(c *http.Client, srv *httptest.Server, path string) int {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	srv1 := start(usersOf(t, both...))
	admin, analyst := client(t), client(t)
	for _, l := range []struct {
		c    *http.Client
		user string
	}{{admin, "admin"}, {analyst, "analyst"}} {
		if resp := login(t, l.c, srv1.URL, l.user, "s3cret-"+l.user); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login %s: %d", l.user, resp.StatusCode)
		}
	}
	if code := status(admin, srv1, "/api/v1/orders"); code != 200 {
		t.Fatalf("admin before restart: %d", code)
	}

	// The cookie's value is nowhere in the database.
	u, _ := url.Parse(srv1.URL)
	var cookie string
	for _, ck := range admin.Jar.Cookies(u) {
		if ck.Name == SessionCookie {
			cookie = ck.Value
		}
	}
	raw, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n, leaked int
	if err := raw.QueryRow(`SELECT count(*), sum(instr(hex(key), hex(?)) > 0 OR instr(csrf, ?) > 0) FROM web_sessions`, cookie, cookie).Scan(&n, &leaked); err != nil {
		t.Fatal(err)
	}
	if cookie == "" || n != 2 || leaked != 0 {
		t.Fatalf("sessions table: %d rows, %d holding the cookie %q", n, leaked, cookie)
	}

	// A restart: the same cookies still work. The analyst is now an
	// admin in the user file: a changed role ends the session.
	srv1.Close()
	srv2 := start(usersOf(t, [2]string{"admin", "admin"}, [2]string{"analyst", "admin"}))
	// The cookie jar is keyed by host: both servers are on 127.0.0.1.
	if code := status(admin, srv2, "/api/v1/orders"); code != 200 {
		t.Fatalf("admin after restart: %d", code)
	}
	if code := status(analyst, srv2, "/api/v1/orders"); code != 401 {
		t.Fatalf("analyst whose role changed: %d", code)
	}

	// Unused for longer than the TTL: expired.
	now = now.Add(59 * time.Minute)
	if code := status(admin, srv2, "/api/v1/orders"); code != 200 {
		t.Fatalf("admin within the TTL: %d", code)
	}
	now = now.Add(59 * time.Minute) // extended by the last request
	if code := status(admin, srv2, "/api/v1/orders"); code != 200 {
		t.Fatalf("admin within the extended TTL: %d", code)
	}
	now = now.Add(61 * time.Minute)
	if code := status(admin, srv2, "/api/v1/orders"); code != 401 {
		t.Fatalf("admin after the TTL: %d", code)
	}

	// A removed user's session ends, and logout ends a session for good.
	c := client(t)
	login(t, c, srv2.URL, "admin", "s3cret-admin")
	srv3 := start(usersOf(t, [2]string{"analyst", "analyst"}))
	if code := status(c, srv3, "/"); code != http.StatusSeeOther {
		t.Fatalf("removed user's session: %d", code)
	}
	c = client(t)
	login(t, c, srv3.URL, "analyst", "s3cret-analyst")
	resp, err := c.Get(srv3.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	m := csrfField.FindStringSubmatch(body(t, resp))
	if m == nil {
		t.Fatal("no logout form")
	}
	if resp, err = c.PostForm(srv3.URL+"/logout", url.Values{"csrf": {m[1]}}); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %v", err)
	}
	srv4 := start(usersOf(t, [2]string{"analyst", "analyst"}))
	if code := status(c, srv4, "/api/v1/orders"); code != 401 {
		t.Fatalf("after logout and restart: %d", code)
	}
	if err := raw.QueryRow(`SELECT count(*) FROM web_sessions`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("sessions left: %d %v", n, err)
	}
}
