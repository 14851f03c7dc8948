package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
	"github.com/takedown/takedown/internal/web"
	"github.com/takedown/takedown/internal/web/session"
)

var _ web.UserStore = (*DB)(nil)

// openAPITest opens the store at dsn, closed in tb.Cleanup.
func openAPITest(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestTokensSessionsUsers runs the token, session and user suites, each
// subtest on a new database of one server, and checks that rows hold only
// hashes.
func TestTokensSessionsUsers(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	open := func(tb testing.TB) *DB { return openAPITest(tb, srv.NewDatabase(tb)) }
	t.Run("Tokens", func(t *testing.T) {
		storetest.RunTokens(t, func(tb testing.TB) token.Store { return open(tb) })
	})
	t.Run("Sessions", func(t *testing.T) {
		storetest.RunSessions(t, func(tb testing.TB) session.Store { return open(tb) })
	})
	t.Run("Users", func(t *testing.T) {
		storetest.RunUsers(t, func(tb testing.TB) web.UserStore { return open(tb) })
	})
	t.Run("OnlyHashes", func(t *testing.T) { testOnlyHashes(t, open(t)) })
	t.Run("FirstUserRace", func(t *testing.T) { testFirstUserRace(t, srv.NewDatabase(t)) })
}

// testFirstUserRace: a node adding the first admin while another node's
// admin is inserted but not yet committed (so it sees no user) waits for
// that row, then adds nothing and does not fail; the other node's admin
// stands.
func testFirstUserRace(t *testing.T, dsn string) {
	db, other := openAPITest(t, dsn), openAPITest(t, dsn)
	winner := DashboardUser{Name: "admin", Role: netscope.RoleAdmin, Hash: "pbkdf2-sha256$1$winner$winner"}
	tx, err := other.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `INSERT INTO dashboard_users (name, role, hash) VALUES ($1, $2, $3)`, winner.Name, string(winner.Role), winner.Hash); err != nil {
		t.Fatal(err)
	}
	type result struct {
		added bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		added, err := db.AddFirstUser(t.Context(), DashboardUser{Name: "admin", Role: netscope.RoleAdmin, Hash: "pbkdf2-sha256$1$loser$loser"})
		done <- result{added, err}
	}()
	// Wait until the insert waits for the other node's row: it has seen
	// no user, which is the race.
	for waiting := 0; waiting == 0; {
		select {
		case r := <-done:
			t.Fatalf("AddFirstUser returned (added %v, err %v) before the other node committed", r.added, r.err)
		default:
		}
		err := other.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND a.datname = current_database()`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.added {
		t.Fatalf("AddFirstUser after the other node's: added %v, err %v; want false, nil", r.added, r.err)
	}
	all, err := db.Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0] != winner {
		t.Fatalf("stored users %+v, want %+v", all, winner)
	}
}

// testOnlyHashes: a token's row holds the SHA-256 of its secret and a
// session's row the SHA-256 of its cookie, never the values.
func testOnlyHashes(t *testing.T, db *DB) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tok, secret, err := token.Issue(t.Context(), db, token.Spec{Role: netscope.RoleAdmin}, now)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.Pool().QueryRow(t.Context(), `SELECT hash FROM api_tokens WHERE id = $1`, tok.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if h := token.HashSecret(secret); string(raw) != string(h[:]) {
		t.Fatalf("stored token hash %x is not the SHA-256 of the secret", raw)
	}
	const cookie = "the-cookie-value"
	if err := db.CreateSession(t.Context(), session.KeyOf(cookie), session.Session{User: "admin", Role: netscope.RoleAdmin, CSRF: "c", Expires: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool().QueryRow(t.Context(), `SELECT key FROM web_sessions`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if k := session.KeyOf(cookie); string(raw) != string(k[:]) {
		t.Fatalf("stored session key %x is not the SHA-256 of the cookie", raw)
	}
}
