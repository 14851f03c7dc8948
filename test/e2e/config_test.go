package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config check reports every problem as file:line and exits 2, or says ok;
// an unknown subcommand anywhere exits 2 naming it, --help or not.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(mustRun(t, nil, "config", "example").stdout), 0o644)
	if r := mustRun(t, nil, "config", "check", good); strings.TrimSpace(r.stdout) != good+": ok" {
		t.Errorf("config check of the example: %q", r.stdout)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("log:\n  level: loud\ndns:\n  colour: blue\n  ttl: 0\nregistry:\n  poll: 3x\n"), 0o644)
	for _, args := range [][]string{{"config", "check", bad}, {"--config", bad, "config", "check"}, {"serve", "--config", bad, "--check-config"}} {
		r := run(t, nil, args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d", args, r.code)
		}
		for _, want := range []string{bad + ":2: log.level:", bad + ":4: dns.colour: unknown key", bad + ":5: dns.ttl:", bad + ":7: registry.poll:"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, want, r.stderr)
			}
		}
	}
	for _, args := range [][]string{{"config", "chek", good}, {"evidence", "nope", "--help"}, {"--data", dir, "order", "nope"}, {"subscriber", "nope"}} {
		r := run(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, `unknown command "`+args[len(args)-1-boolInt(args[len(args)-1] == "--help" || args[len(args)-1] == good)]+`"`) {
			t.Errorf("%v: exit %d, %s", args, r.code, r.stderr)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
