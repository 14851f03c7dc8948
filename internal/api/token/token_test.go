package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/netscope"
)

func TestSpecValidate(t *testing.T) {
	nets, err := netscope.ParseNetworks("AS64500,192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    Spec
		wantErr string // substring; empty: valid
	}{
		{"admin", Spec{Role: netscope.RoleAdmin}, ""},
		{"analyst", Spec{Role: netscope.RoleAnalyst}, ""},
		{"network", Spec{Role: netscope.RoleNetwork, Networks: nets}, ""},
		{"unknown role", Spec{Role: "root"}, "unknown role"},
		{"network without networks", Spec{Role: netscope.RoleNetwork}, "needs --networks"},
		{"admin with networks", Spec{Role: netscope.RoleAdmin, Networks: nets}, "network tokens only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

type memStore map[Hash]Token

func (m memStore) CreateToken(_ context.Context, t Token, h Hash) error { m[h] = t; return nil }
func (m memStore) TokenByHash(_ context.Context, h Hash) (Token, error) {
	t, ok := m[h]
	if !ok {
		return Token{}, ErrNotFound
	}
	return t, nil
}
func (m memStore) Tokens(context.Context) ([]Token, error)              { return nil, nil }
func (m memStore) RevokeToken(context.Context, string, time.Time) error { return nil }

var _ Store = memStore(nil)

func TestIssue(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := memStore{}
	tok, secret, err := Issue(t.Context(), st, Spec{Role: netscope.RoleAnalyst, Note: "n"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, Prefix) {
		t.Errorf("secret %q lacks the prefix %q", secret, Prefix)
	}
	got, err := st.TokenByHash(t.Context(), HashSecret(secret))
	if err != nil || got.ID != tok.ID || got.Role != netscope.RoleAnalyst {
		t.Fatalf("stored token = %+v, %v; want %+v", got, err, tok)
	}
	if _, err := st.TokenByHash(t.Context(), HashSecret(secret+"x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a wrong secret found a token: %v", err)
	}
	if !tok.ValidAt(now.Add(100 * 365 * 24 * time.Hour)) {
		t.Error("a token without expiry expired")
	}
	if _, _, err := Issue(t.Context(), st, Spec{Role: netscope.RoleAdmin, Expires: now}, now); err == nil {
		t.Error("a token expiring now was issued")
	}
}
