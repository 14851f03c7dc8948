package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
)

func TestTokens(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	nets, err := netscope.ParseNetworks("AS64500,192.0.2.0/24,2001:db8::/32,de")
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := token.Issue(t.Context(), db, token.Spec{Role: netscope.RoleNetwork, Networks: nets, Expires: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.SQL().QueryRow(`SELECT hash FROM api_tokens WHERE id = ?`, tok.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if string(raw) == secret || len(raw) != 32 {
		t.Fatalf("stored hash %x is not a SHA-256", raw)
	}
	got, err := db.TokenByHash(t.Context(), token.HashSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.Role != netscope.RoleNetwork || got.Networks.String() != nets.String() || !got.Expires.Equal(tok.Expires) {
		t.Fatalf("got %+v, want %+v", got, tok)
	}
	if _, err := db.TokenByHash(t.Context(), token.HashSecret(secret+"x")); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("wrong secret: err %v, want ErrNotFound", err)
	}
	if err := db.RevokeToken(t.Context(), tok.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeToken(t.Context(), "nope", now); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	got, _ = db.TokenByHash(t.Context(), token.HashSecret(secret))
	if got.ValidAt(now) {
		t.Fatal("revoked token still valid")
	}
	all, err := db.Tokens(t.Context())
	if err != nil || len(all) != 1 {
		t.Fatalf("Tokens: %v %v", all, err)
	}
}
