package sqlite

import (
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/store/storetest"
	"github.com/takedown/takedown/internal/web/session"
)

// openAPITest opens a new store in a temporary data dir, closed in
// tb.Cleanup.
func openAPITest(tb testing.TB) *DB {
	tb.Helper()
	db, err := OpenDir(tb.Context(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestTokenStoreConformance(t *testing.T) {
	storetest.RunTokens(t, func(tb testing.TB) token.Store { return openAPITest(tb) })
}

func TestSessionStoreConformance(t *testing.T) {
	storetest.RunSessions(t, func(tb testing.TB) session.Store { return openAPITest(tb) })
}

// TestTokensStoreOnlyHashes: the row of a token holds the SHA-256 of its
// secret, not the secret.
func TestTokensStoreOnlyHashes(t *testing.T) {
	db := openAPITest(t)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tok, secret, err := token.Issue(t.Context(), db, token.Spec{Role: netscope.RoleAdmin}, now)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.SQL().QueryRow(`SELECT hash FROM api_tokens WHERE id = ?`, tok.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if h := token.HashSecret(secret); string(raw) != string(h[:]) {
		t.Fatalf("stored hash %x is not the SHA-256 of the secret", raw)
	}
}
