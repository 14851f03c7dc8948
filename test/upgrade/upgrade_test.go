// Package upgrade checks that this build opens and migrates the data dirs
// that earlier releases wrote, with every figure unchanged. Each
// testdata/<release>/ was made by scripts/make-upgrade-fixture.sh with that
// release's binary and is never regenerated: a release adds its own.
package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/cli"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// takedown runs the command line in-process on data dir data.
func takedown(t *testing.T, data string, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.WithoutCancel(t.Context()), append([]string{"--data", data}, args...), strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Logf("takedown %v: exit %d\n%s", args, code, errb.String())
	}
	return out.String(), code
}

func TestUpgradeFixtures(t *testing.T) {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) == 0 {
		t.Fatal("no fixture in testdata: run scripts/make-upgrade-fixture.sh")
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) { checkFixture(t, filepath.Join("testdata", e.Name())) })
	}
}

// sameOutput reports whether this build printed what the release did. A
// JSON document may have gained fields (an AS row's org, say): every value
// the release printed must be there, the same, and no array may change
// length; other output must be byte-identical.
func sameOutput(file, got, want string) bool {
	if got == want {
		return true
	}
	if !strings.HasSuffix(file, ".json") {
		return false
	}
	var g, w any
	if json.Unmarshal([]byte(got), &g) != nil || json.Unmarshal([]byte(want), &w) != nil {
		return false
	}
	return extends(g, w)
}

// extends reports whether got holds everything want does.
func extends(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if gv, ok := g[k]; !ok || !extends(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !extends(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return got == want
}

// checkFixture opens a copy of one release's data dir with this build
// (which migrates it), replays the commands the release ran and requires
// the same output, then exports evidence from it and verifies the package
// with the release's key.
func checkFixture(t *testing.T, dir string) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(data, os.DirFS(filepath.Join(dir, "data"))); err != nil {
		t.Fatal(err)
	}
	// The store opens and its schema comes up to this build's.
	db, err := sqlite.OpenDir(t.Context(), data)
	if err != nil {
		t.Fatalf("this build cannot open the %s store: %v", filepath.Base(dir), err)
	}
	var events int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if events == 0 {
		t.Fatal("the migrated store holds no raw events")
	}

	cmds, err := os.ReadFile(filepath.Join(dir, "expected", "commands"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(cmds)), "\n") {
		f := strings.Split(line, " ")
		file, args := f[0], f[1:]
		want, err := os.ReadFile(filepath.Join(dir, "expected", file))
		if err != nil {
			t.Fatal(err)
		}
		got, code := takedown(t, data, args...)
		if code != 0 || !sameOutput(file, got, string(want)) {
			t.Errorf("takedown %s: exit %d; output differs from what the release printed (expected/%s)\ngot:\n%s\nwant:\n%s",
				strings.Join(args, " "), code, file, got, want)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d recorded commands", n)
	}

	// Evidence from the migrated copy verifies offline with the release's key.
	pkg := filepath.Join(t.TempDir(), "pkg")
	if out, code := takedown(t, data, "evidence", "export", "--case", "rustock-2011", "--from", "2011-09-06", "--to", "2011-09-10", "-o", pkg, "--for", "upgrade test"); code != 0 {
		t.Fatalf("evidence export from the migrated copy: exit %d\n%s", code, out)
	}
	out, code := takedown(t, data, "evidence", "verify", pkg, "--key", filepath.Join(dir, "key.pub"))
	if code != 0 || !strings.Contains(out, "VERIFIED") {
		t.Fatalf("evidence verify with the release's key: exit %d\n%s", code, out)
	}
}
