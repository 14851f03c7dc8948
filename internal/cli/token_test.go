package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api/token"
)

func runToken(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	g := &globals{data: dir, stdout: &out, stderr: &out, now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}
	root := newRoot(g)
	root.AddCommand(newTokenCmd(g))
	root.SetArgs(append([]string{"--data", dir}, args...))
	root.SetOut(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	out, err := runToken(t, dir, "token", "create", "--role", "network", "--networks", "AS64500,192.0.2.0/24,DE", "--expires", "2027-01-01", "--json")
	if err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	var created struct {
		Token  token.Token
		Secret string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Secret, token.Prefix) || created.Token.Networks.String() != "AS64500,192.0.2.0/24,DE" {
		t.Fatalf("created %+v", created)
	}
	for _, bad := range [][]string{
		{"token", "create", "--role", "network"},
		{"token", "create", "--role", "root"},
		{"token", "create", "--role", "analyst", "--networks", "DE"},
		{"token", "create", "--role", "admin", "--expires", "2020-01-01"},
		{"token", "revoke", "nope"},
	} {
		if _, err := runToken(t, dir, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		} else if _, ok := err.(*UsageError); !ok {
			t.Errorf("%v: %T %v, want a usage error", bad, err, err)
		}
	}
	if out, err := runToken(t, dir, "token", "revoke", created.Token.ID); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	out, err = runToken(t, dir, "token", "list")
	if err != nil || !strings.Contains(out, created.Token.ID) || !strings.Contains(out, "revoked") || strings.Contains(out, created.Secret) {
		t.Fatalf("list: %v\n%s", err, out)
	}
}
