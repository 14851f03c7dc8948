package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/web"
	"github.com/takedown/takedown/internal/web/session"
)

// The suites below are the API's and the dashboard's storage, which every
// store that serves them passes: token.Store, session.Store and
// web.UserStore. Each subtest gets a new, empty store from open; the
// backend closes it in tb.Cleanup. How a backend lays out its rows (only
// hashes, never secrets) is the backend's own test.

// apiNow has nanoseconds, so that a store that rounds times fails.
var apiNow = time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)

// RunTokens checks a token.Store: tokens found by the hash of their secret
// and nothing else, every field kept to the nanosecond, revocation that
// keeps its first time, ErrNotFound, and the listing order.
func RunTokens(t *testing.T, open func(tb testing.TB) token.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testTokenRoundTrip(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testTokenNotFound(t, open(t)) })
	t.Run("Revoke", func(t *testing.T) { testTokenRevoke(t, open(t)) })
	t.Run("List", func(t *testing.T) { testTokenList(t, open(t)) })
	t.Run("Unique", func(t *testing.T) { testTokenUnique(t, open(t)) })
}

// sameToken fails unless got is want, field by field.
func sameToken(tb testing.TB, what string, got, want token.Token) {
	tb.Helper()
	if got.ID != want.ID || got.Role != want.Role || got.Networks.String() != want.Networks.String() || got.Note != want.Note ||
		!got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) || !got.Revoked.Equal(want.Revoked) ||
		got.Expires.IsZero() != want.Expires.IsZero() || got.Revoked.IsZero() != want.Revoked.IsZero() {
		tb.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

func testTokenRoundTrip(t *testing.T, st token.Store) {
	nets, err := netscope.ParseNetworks("AS64500,192.0.2.0/24,2001:db8::/32,de")
	if err != nil {
		t.Fatal(err)
	}
	network, secret, err := token.Issue(t.Context(), st, token.Spec{Role: netscope.RoleNetwork, Networks: nets, Note: "abuse desk of AS64500", Expires: apiNow.Add(time.Hour)}, apiNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.TokenByHash(t.Context(), token.HashSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	sameToken(t, "network token", got, network)
	if !got.ValidAt(apiNow) || got.ValidAt(apiNow.Add(time.Hour)) {
		t.Fatalf("network token valid at now %v, at its expiry %v: want true, false", got.ValidAt(apiNow), got.ValidAt(apiNow.Add(time.Hour)))
	}
	admin, secret2, err := token.Issue(t.Context(), st, token.Spec{Role: netscope.RoleAdmin}, apiNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err = st.TokenByHash(t.Context(), token.HashSecret(secret2))
	if err != nil {
		t.Fatal(err)
	}
	sameToken(t, "admin token without expiry", got, admin)
	if !got.ValidAt(apiNow.Add(100 * 365 * 24 * time.Hour)) {
		t.Fatal("a token without expiry expires")
	}
}

func testTokenNotFound(t *testing.T, st token.Store) {
	if _, err := st.TokenByHash(t.Context(), token.HashSecret("tdk_none")); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("empty store: err %v, want ErrNotFound", err)
	}
	if all, err := st.Tokens(t.Context()); err != nil || len(all) != 0 {
		t.Fatalf("empty store lists %v, %v", all, err)
	}
	_, secret, err := token.Issue(t.Context(), st, token.Spec{Role: netscope.RoleAnalyst}, apiNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenByHash(t.Context(), token.HashSecret(secret+"x")); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("wrong secret: err %v, want ErrNotFound", err)
	}
}

func testTokenRevoke(t *testing.T, st token.Store) {
	tok, secret, err := token.Issue(t.Context(), st, token.Spec{Role: netscope.RoleAnalyst}, apiNow)
	if err != nil {
		t.Fatal(err)
	}
	other, otherSecret, err := token.Issue(t.Context(), st, token.Spec{Role: netscope.RoleAnalyst}, apiNow)
	if err != nil {
		t.Fatal(err)
	}
	first := apiNow.Add(time.Minute)
	if err := st.RevokeToken(t.Context(), tok.ID, first); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(t.Context(), tok.ID, first.Add(time.Hour)); err != nil {
		t.Fatalf("revoke twice: %v", err)
	}
	got, err := st.TokenByHash(t.Context(), token.HashSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	tok.Revoked = first
	sameToken(t, "revoked token", got, tok)
	if got.ValidAt(apiNow) {
		t.Fatal("revoked token still valid")
	}
	got, err = st.TokenByHash(t.Context(), token.HashSecret(otherSecret))
	if err != nil {
		t.Fatal(err)
	}
	sameToken(t, "the other token", got, other)
	if err := st.RevokeToken(t.Context(), "nope", apiNow); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("revoke unknown: err %v, want ErrNotFound", err)
	}
}

func testTokenList(t *testing.T, st token.Store) {
	// Stored out of order; listed by creation, then id.
	mk := func(id string, created time.Time) token.Token {
		return token.Token{ID: id, Role: netscope.RoleAnalyst, Note: "token " + id, Created: created}
	}
	want := []token.Token{
		mk("0000000000000003", apiNow.Add(-time.Hour)),
		mk("000000000000000a", apiNow),
		mk("000000000000000b", apiNow),
		mk("0000000000000001", apiNow.Add(time.Nanosecond)),
	}
	for i, j := range []int{3, 2, 0, 1} {
		if err := st.CreateToken(t.Context(), want[j], token.HashSecret(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.Tokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Fatalf("Tokens lists %d, want %d: %+v", len(all), len(want), all)
	}
	for i := range want {
		sameToken(t, "token "+want[i].ID, all[i], want[i])
	}
}

func testTokenUnique(t *testing.T, st token.Store) {
	tok, secret, err := token.Issue(t.Context(), st, token.Spec{Role: netscope.RoleAdmin}, apiNow)
	if err != nil {
		t.Fatal(err)
	}
	sameID := token.Token{ID: tok.ID, Role: netscope.RoleAnalyst, Created: apiNow}
	if err := st.CreateToken(t.Context(), sameID, token.HashSecret("tdk_other")); err == nil {
		t.Fatal("a second token with the same id was stored")
	}
	sameHash := token.Token{ID: token.NewID(), Role: netscope.RoleAnalyst, Created: apiNow}
	if err := st.CreateToken(t.Context(), sameHash, token.HashSecret(secret)); err == nil {
		t.Fatal("a second token with the same secret hash was stored")
	}
	got, err := st.TokenByHash(t.Context(), token.HashSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	sameToken(t, "the first token", got, tok)
	if all, err := st.Tokens(t.Context()); err != nil || len(all) != 1 {
		t.Fatalf("Tokens after refused duplicates: %+v, %v", all, err)
	}
}

// RunSessions checks a session.Store: sessions found by key, every field
// kept to the nanosecond, extension, deletion that is no error when there
// is nothing to delete, and a purge of exactly the sessions expired at now.
func RunSessions(t *testing.T, open func(tb testing.TB) session.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testSessionRoundTrip(t, open(t)) })
	t.Run("Extend", func(t *testing.T) { testSessionExtend(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testSessionDelete(t, open(t)) })
	t.Run("Purge", func(t *testing.T) { testSessionPurge(t, open(t)) })
}

// sessionIs fails unless the session under k is want.
func sessionIs(tb testing.TB, st session.Store, k session.Key, want session.Session) {
	tb.Helper()
	got, ok, err := st.Session(tb.Context(), k)
	if err != nil || !ok {
		tb.Fatalf("Session: ok %v, err %v; want %+v", ok, err, want)
	}
	if got.User != want.User || got.Role != want.Role || got.CSRF != want.CSRF || !got.Expires.Equal(want.Expires) {
		tb.Fatalf("Session: got %+v, want %+v", got, want)
	}
}

// sessionGone fails unless there is no session under k.
func sessionGone(tb testing.TB, st session.Store, k session.Key, what string) {
	tb.Helper()
	if s, ok, err := st.Session(tb.Context(), k); err != nil || ok {
		tb.Fatalf("%s: got %+v, ok %v, err %v; want none", what, s, ok, err)
	}
}

func testSessionRoundTrip(t *testing.T, st session.Store) {
	sessionGone(t, st, session.KeyOf("nothing"), "empty store")
	admin := session.Session{User: "admin", Role: netscope.RoleAdmin, CSRF: "csrf-1", Expires: apiNow.Add(time.Hour)}
	analyst := session.Session{User: "analyst", Role: netscope.RoleAnalyst, CSRF: "csrf-2", Expires: apiNow.Add(2 * time.Hour)}
	for k, s := range map[string]session.Session{"cookie-1": admin, "cookie-2": analyst} {
		if err := st.CreateSession(t.Context(), session.KeyOf(k), s); err != nil {
			t.Fatal(err)
		}
	}
	sessionIs(t, st, session.KeyOf("cookie-1"), admin)
	sessionIs(t, st, session.KeyOf("cookie-2"), analyst)
	sessionGone(t, st, session.KeyOf("cookie-3"), "another cookie")
}

func testSessionExtend(t *testing.T, st session.Store) {
	k := session.KeyOf("cookie")
	s := session.Session{User: "admin", Role: netscope.RoleAdmin, CSRF: "csrf", Expires: apiNow.Add(time.Hour)}
	if err := st.CreateSession(t.Context(), k, s); err != nil {
		t.Fatal(err)
	}
	s.Expires = apiNow.Add(3*time.Hour + time.Nanosecond)
	if err := st.ExtendSession(t.Context(), k, s.Expires); err != nil {
		t.Fatal(err)
	}
	sessionIs(t, st, k, s)
	if err := st.ExtendSession(t.Context(), session.KeyOf("other"), s.Expires); err != nil {
		t.Fatalf("extend a missing session: %v", err)
	}
	sessionGone(t, st, session.KeyOf("other"), "extending a missing session")
}

func testSessionDelete(t *testing.T, st session.Store) {
	// Two sessions of one user (two browsers): logging out of one keeps
	// the other.
	s := session.Session{User: "admin", Role: netscope.RoleAdmin, CSRF: "csrf", Expires: apiNow.Add(time.Hour)}
	k1, k2 := session.KeyOf("browser-1"), session.KeyOf("browser-2")
	for _, k := range []session.Key{k1, k2} {
		if err := st.CreateSession(t.Context(), k, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteSession(t.Context(), k1); err != nil {
		t.Fatal(err)
	}
	sessionGone(t, st, k1, "deleted session")
	sessionIs(t, st, k2, s)
	if err := st.DeleteSession(t.Context(), k1); err != nil {
		t.Fatalf("delete a missing session: %v", err)
	}
}

func testSessionPurge(t *testing.T, st session.Store) {
	at := map[string]time.Time{
		"before": apiNow.Add(-time.Nanosecond),
		"at":     apiNow,
		"after":  apiNow.Add(time.Nanosecond),
	}
	for name, exp := range at {
		if err := st.CreateSession(t.Context(), session.KeyOf(name), session.Session{User: name, Role: netscope.RoleAnalyst, CSRF: name, Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PurgeSessions(t.Context(), apiNow); err != nil {
		t.Fatal(err)
	}
	sessionGone(t, st, session.KeyOf("before"), "session expired before now, after the purge")
	sessionGone(t, st, session.KeyOf("at"), "session expiring at now, after the purge")
	sessionIs(t, st, session.KeyOf("after"), session.Session{User: "after", Role: netscope.RoleAnalyst, CSRF: "after", Expires: at["after"]})
}

// RunUsers checks a web.UserStore: users by exact name, put that replaces,
// listing by name in byte order, deletion, and a first user added only to
// an empty store.
func RunUsers(t *testing.T, open func(tb testing.TB) web.UserStore) {
	t.Run("PutReplace", func(t *testing.T) { testUserPutReplace(t, open(t)) })
	t.Run("List", func(t *testing.T) { testUserList(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testUserDelete(t, open(t)) })
	t.Run("FirstUser", func(t *testing.T) { testFirstUser(t, open(t)) })
}

// testHash is a made-up hash: a store keeps the string as it is.
func testHash(s string) string { return "pbkdf2-sha256$1$" + s + "$" + s }

// userIs fails unless the store's user called want.Name is want.
func userIs(tb testing.TB, st web.UserStore, want web.User) {
	tb.Helper()
	got, ok, err := st.User(tb.Context(), want.Name)
	if err != nil || !ok || got != want {
		tb.Fatalf("User(%q): %+v, ok %v, err %v; want %+v", want.Name, got, ok, err, want)
	}
}

// userGone fails unless the store has no user called name.
func userGone(tb testing.TB, st web.UserStore, name, what string) {
	tb.Helper()
	if u, ok, err := st.User(tb.Context(), name); err != nil || ok {
		tb.Fatalf("%s: User(%q) = %+v, ok %v, err %v; want none", what, name, u, ok, err)
	}
}

// usersAre fails unless the store lists exactly want, in that order.
func usersAre(tb testing.TB, st web.UserStore, want ...web.User) {
	tb.Helper()
	got, err := st.Users(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	if !slices.Equal(got, want) {
		tb.Fatalf("Users: %+v, want %+v", got, want)
	}
}

func testUserPutReplace(t *testing.T, st web.UserStore) {
	usersAre(t, st)
	userGone(t, st, "alice", "empty store")
	alice := web.User{Name: "alice", Role: netscope.RoleAnalyst, Hash: testHash("one")}
	if err := st.PutUser(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	userIs(t, st, alice)
	// Names are exact: no case folding.
	userGone(t, st, "Alice", "another case")
	alice.Role, alice.Hash = netscope.RoleAdmin, testHash("two")
	if err := st.PutUser(t.Context(), alice); err != nil {
		t.Fatalf("replace: %v", err)
	}
	userIs(t, st, alice)
	usersAre(t, st, alice)
}

func testUserList(t *testing.T, st web.UserStore) {
	// Byte order: upper case before lower case.
	want := []web.User{
		{Name: "Zed", Role: netscope.RoleAnalyst, Hash: testHash("z")},
		{Name: "alice", Role: netscope.RoleAdmin, Hash: testHash("a")},
		{Name: "bob", Role: netscope.RoleAnalyst, Hash: testHash("b")},
		{Name: "carol", Role: netscope.RoleAnalyst, Hash: testHash("c")},
	}
	for _, i := range []int{3, 1, 0, 2} {
		if err := st.PutUser(t.Context(), want[i]); err != nil {
			t.Fatal(err)
		}
	}
	usersAre(t, st, want...)
}

func testUserDelete(t *testing.T, st web.UserStore) {
	alice := web.User{Name: "alice", Role: netscope.RoleAdmin, Hash: testHash("a")}
	bob := web.User{Name: "bob", Role: netscope.RoleAnalyst, Hash: testHash("b")}
	for _, u := range []web.User{alice, bob} {
		if err := st.PutUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteUser(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	userGone(t, st, "alice", "deleted user")
	userIs(t, st, bob)
	usersAre(t, st, bob)
	if err := st.DeleteUser(t.Context(), "alice"); err != nil {
		t.Fatalf("delete a missing user: %v", err)
	}
}

func testFirstUser(t *testing.T, st web.UserStore) {
	first := web.User{Name: "admin", Role: netscope.RoleAdmin, Hash: testHash("first")}
	added, err := st.AddFirstUser(t.Context(), first)
	if err != nil || !added {
		t.Fatalf("first user on an empty store: added %v, err %v", added, err)
	}
	userIs(t, st, first)
	// Another node's first admin, or any other first user, once there is
	// a user: nothing happens and it is no error.
	for _, u := range []web.User{
		{Name: "admin", Role: netscope.RoleAdmin, Hash: testHash("second")},
		{Name: "root", Role: netscope.RoleAdmin, Hash: testHash("root")},
	} {
		added, err := st.AddFirstUser(t.Context(), u)
		if err != nil || added {
			t.Fatalf("first user %s on a store with a user: added %v, err %v", u.Name, added, err)
		}
	}
	usersAre(t, st, first)
	// Any user counts, not only an admin.
	if err := st.DeleteUser(t.Context(), "admin"); err != nil {
		t.Fatal(err)
	}
	bob := web.User{Name: "bob", Role: netscope.RoleAnalyst, Hash: testHash("b")}
	if err := st.PutUser(t.Context(), bob); err != nil {
		t.Fatal(err)
	}
	if added, err := st.AddFirstUser(t.Context(), first); err != nil || added {
		t.Fatalf("first user on a store with an analyst: added %v, err %v", added, err)
	}
	usersAre(t, st, bob)
	// Empty again: a first user is added again.
	if err := st.DeleteUser(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	if added, err := st.AddFirstUser(t.Context(), first); err != nil || !added {
		t.Fatalf("first user on an emptied store: added %v, err %v", added, err)
	}
	usersAre(t, st, first)
}
