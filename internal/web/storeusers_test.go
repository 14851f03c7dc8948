package web_test

// An external test package, because storetest imports package web: the
// package's own tests could not import it.

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/store/storetest"
	"github.com/takedown/takedown/internal/web"
	"github.com/takedown/takedown/internal/web/session"
)

// fastHash is the stored form of password with few iterations, to keep
// the tests fast (web.HashPassword takes about 0.3 CPU-seconds).
func fastHash(tb testing.TB, password string) string {
	tb.Helper()
	salt := []byte("0123456789abcdef")
	key, err := pbkdf2.Key(sha256.New, password, salt, 1000, 32)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawStdEncoding
	return "pbkdf2-sha256$1000$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key)
}

// openSQLite opens a new SQLite store, closed in tb.Cleanup.
func openSQLite(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.OpenDir(tb.Context(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// openPostgres opens the PostgreSQL store at dsn, closed in tb.Cleanup.
func openPostgres(tb testing.TB, dsn string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// storedUsers is every user of st.
func storedUsers(tb testing.TB, st web.UserStore) []web.User {
	tb.Helper()
	all, err := st.Users(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return all
}

// TestOpenUsersImportsFile: the users file adds and replaces users in the
// store and leaves the others; once the file is gone, the store's users
// stand, changes included.
func TestOpenUsersImportsFile(t *testing.T) {
	st, dir := openSQLite(t), t.TempDir()
	carol := web.User{Name: "carol", Role: netscope.RoleAnalyst, Hash: fastHash(t, "carol-pw")}
	for _, u := range []web.User{carol, {Name: "alice", Role: netscope.RoleAnalyst, Hash: fastHash(t, "old-alice-pw")}} {
		if err := st.PutUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	file := "# dashboard users\n" +
		"alice admin " + fastHash(t, "alice-pw") + "\n" +
		"\n" +
		"bob analyst " + fastHash(t, "bob-pw") + "\n"
	if err := os.WriteFile(filepath.Join(dir, web.UsersFileName), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	users, pw, err := web.OpenUsers(t.Context(), st, dir)
	if err != nil {
		t.Fatal(err)
	}
	if pw != "" {
		t.Fatalf("an admin password %q with users in the store", pw)
	}
	for _, c := range []struct {
		user, password string
		role           netscope.Role
		ok             bool
	}{
		{"alice", "alice-pw", netscope.RoleAdmin, true},
		{"alice", "old-alice-pw", "", false}, // replaced by the file's
		{"bob", "bob-pw", netscope.RoleAnalyst, true},
		{"bob", "alice-pw", "", false},
		{"carol", "carol-pw", netscope.RoleAnalyst, true}, // only in the store: kept
	} {
		if role, ok := users.Authenticate(c.user, c.password); ok != c.ok || role != c.role {
			t.Errorf("Authenticate(%s, %s) = %q, %v; want %q, %v", c.user, c.password, role, ok, c.role, c.ok)
		}
	}
	if names := userNames(storedUsers(t, st)); !slices.Equal(names, []string{"alice", "bob", "carol"}) {
		t.Fatalf("stored users %v", names)
	}

	// The store is the truth afterwards: without the file, a change made
	// in the store survives a restart.
	if err := os.Remove(filepath.Join(dir, web.UsersFileName)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutUser(t.Context(), web.User{Name: "alice", Role: netscope.RoleAnalyst, Hash: fastHash(t, "new-alice-pw")}); err != nil {
		t.Fatal(err)
	}
	users, pw, err = web.OpenUsers(t.Context(), st, dir)
	if err != nil || pw != "" {
		t.Fatalf("reopen: %v, password %q", err, pw)
	}
	if role, ok := users.Authenticate("alice", "new-alice-pw"); !ok || role != netscope.RoleAnalyst {
		t.Fatalf("alice after the change: %q, %v", role, ok)
	}
}

func userNames(us []web.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Name)
	}
	return out
}

// TestOpenUsersBadFile: a users file that does not parse is an error
// naming the file and line, and nothing of it is stored, not even its good
// lines, nor a first admin.
func TestOpenUsersBadFile(t *testing.T) {
	st, dir := openSQLite(t), t.TempDir()
	path := filepath.Join(dir, web.UsersFileName)
	file := "alice admin " + fastHash(t, "alice-pw") + "\n" +
		"bob network " + fastHash(t, "bob-pw") + "\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	users, pw, err := web.OpenUsers(t.Context(), st, dir)
	if err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("bad file: err %v, want one naming %s:2", err, path)
	}
	if users != nil || pw != "" {
		t.Fatalf("bad file: users %v, password %q", users, pw)
	}
	if all := storedUsers(t, st); len(all) != 0 {
		t.Fatalf("a bad file stored %+v", all)
	}
}

// TestOpenUsersFirstAdmin: an empty store, without a users file, gets an
// admin whose password is returned once and logs in; nothing is written
// to the data dir.
func TestOpenUsersFirstAdmin(t *testing.T) {
	st, dir := openSQLite(t), t.TempDir()
	users, pw, err := web.OpenUsers(t.Context(), st, dir)
	if err != nil || pw == "" {
		t.Fatalf("first open: %v, password %q", err, pw)
	}
	if role, ok := users.Authenticate("admin", pw); !ok || role != netscope.RoleAdmin {
		t.Fatalf("the returned password does not log in: %q, %v", role, ok)
	}
	if _, ok := users.Authenticate("admin", pw+"x"); ok {
		t.Fatal("a wrong password logs in")
	}
	all := storedUsers(t, st)
	if len(all) != 1 || all[0].Name != "admin" || strings.Contains(all[0].Hash, pw) {
		t.Fatalf("stored users %+v", all)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("data dir after OpenUsers: %v, %v", ents, err)
	}
	users, pw2, err := web.OpenUsers(t.Context(), st, dir)
	if err != nil || pw2 != "" {
		t.Fatalf("second open: %v, password %q returned again", err, pw2)
	}
	if _, ok := users.Authenticate("admin", pw); !ok {
		t.Fatal("the admin's password is lost on reopen")
	}
}

// TestStoreUsersUnknownAndRefused: an unknown user, an empty password and
// a user whose stored role is not a dashboard role do not log in, and Role
// knows only the dashboard's users.
func TestStoreUsersUnknownAndRefused(t *testing.T) {
	st := openSQLite(t)
	for _, u := range []web.User{
		{Name: "alice", Role: netscope.RoleAnalyst, Hash: fastHash(t, "alice-pw")},
		{Name: "net", Role: netscope.RoleNetwork, Hash: fastHash(t, "net-pw")},
	} {
		if err := st.PutUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	users := web.NewStoreUsers(st)
	if _, ok := users.Authenticate("nobody", "alice-pw"); ok {
		t.Fatal("an unknown user logs in")
	}
	if _, ok := users.Authenticate("alice", ""); ok {
		t.Fatal("an empty password logs in")
	}
	if _, ok := users.Authenticate("net", "net-pw"); ok {
		t.Fatal("a user with the network role logs in to the dashboard")
	}
	for name, want := range map[string]bool{"alice": true, "nobody": false, "net": false} {
		if _, ok := users.Role(name); ok != want {
			t.Errorf("Role(%s): ok %v, want %v", name, ok, want)
		}
	}
}

// failingStore is a UserStore whose lookups fail; it records whether each
// lookup had a deadline.
type failingStore struct {
	web.UserStore
	mu           sync.Mutex
	lookups      int
	withDeadline int
}

func (f *failingStore) User(ctx context.Context, _ string) (web.User, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if _, ok := ctx.Deadline(); ok {
		f.withDeadline++
	}
	return web.User{}, false, errors.New("store down")
}

// TestStoreUsersStoreDown: a store that fails refuses the login and the
// session's user, logs why, and every lookup is bounded by a deadline.
func TestStoreUsersStoreDown(t *testing.T) {
	f := &failingStore{}
	var logged bytes.Buffer
	users := web.NewStoreUsers(f)
	users.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	if _, ok := users.Authenticate("alice", "alice-pw"); ok {
		t.Fatal("a login passes while the store is down")
	}
	if _, ok := users.Role("alice"); ok {
		t.Fatal("a session's user is known while the store is down")
	}
	if f.lookups != 2 || f.withDeadline != 2 {
		t.Fatalf("%d lookups, %d with a deadline; want 2, 2", f.lookups, f.withDeadline)
	}
	if !strings.Contains(logged.String(), "store down") {
		t.Fatalf("the store's error is not logged: %q", logged.String())
	}
}

// TestMemorySessionsConformance: the in-memory session store passes the
// suite the stores pass, so a dashboard behaves alike on either.
func TestMemorySessionsConformance(t *testing.T) {
	storetest.RunSessions(t, func(testing.TB) session.Store { return session.NewMemory() })
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestUsersAndSessionsTwoNodes: two dashboard nodes on one PostgreSQL
// database, starting at once, create one admin between them; a login on
// one node is a session on the other, and removing the user on one ends
// it on the other.
func TestUsersAndSessionsTwoNodes(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	// Three handles, as three nodes: each opens (and migrates) the
	// store, then they open the users at once.
	nodes := []*postgres.DB{openPostgres(t, dsn), openPostgres(t, dsn), openPostgres(t, dsn)}
	users := make([]*web.StoreUsers, len(nodes))
	pws := make([]string, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, db := range nodes {
		wg.Go(func() { users[i], pws[i], errs[i] = web.OpenUsers(t.Context(), db, t.TempDir()) })
	}
	wg.Wait()
	var pw string
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		if pws[i] != "" {
			if pw != "" {
				t.Fatal("two nodes returned an admin password")
			}
			pw = pws[i]
		}
	}
	if pw == "" {
		t.Fatal("no node created the admin")
	}
	if all := storedUsers(t, nodes[0]); len(all) != 1 || all[0].Name != "admin" {
		t.Fatalf("stored users %+v, want one admin", all)
	}
	for i := range nodes {
		if role, ok := users[i].Authenticate("admin", pw); !ok || role != netscope.RoleAdmin {
			t.Fatalf("node %d: the admin's password does not log in", i)
		}
	}

	// A dashboard on each of two nodes, each with its own handle.
	serve := func(i int) *httptest.Server {
		s := httptest.NewServer(web.New(web.Options{Users: users[i], Sessions: nodes[i]}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := serve(0), serve(1)
	jar, _ := cookiejar.New(nil) // cookies ignore the port: both nodes get them
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(base, path string) *http.Response {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(a.URL, "/login")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		t.Fatal("no csrf field on the login page")
	}
	resp, err := c.PostForm(a.URL+"/login", url.Values{"csrf": {string(m[1])}, "user": {"admin"}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login on node a: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(b.URL, "/")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("node b with node a's session: %d %s, want 200", resp.StatusCode, resp.Header.Get("Location"))
	}

	if err := nodes[0].DeleteUser(t.Context(), "admin"); err != nil {
		t.Fatal(err)
	}
	resp = get(b.URL, "/")
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("node b after node a removed the user: %d %s, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
}
