package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// readmeBlock returns the shell lines of the README's code block under the
// heading, as a user would copy them.
func readmeBlock(t testing.TB, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatalf("README.md %s has no sh block", heading)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("README.md %s: unterminated block", heading)
	}
	return block
}

// evidenceData makes a data dir with a Rustock order and ten days of
// simulated history from 2011-09-04, and runs serve once so that the
// evidence log takes the stored events (serve appends what it lacks at
// start). It returns the data dir and the serve config.
func evidenceData(t *testing.T) (data, conf, addr string) {
	t.Helper()
	dir := t.TempDir()
	data = filepath.Join(dir, "data")
	mustRun(t, []byte("aactsxgiv.example\n"), "--data", data, "order", "import", "-", "--case", "rustock-2011", "--court", "W.D. Wash.",
		"--effective", "2011-03-16", "--expires", "2036-03-16", "--allow-reserved")
	hist := filepath.Join(dir, "history.jsonl")
	mustRun(t, nil, "--data", data, "simulate", "--bots", "100", "--days", "10", "--start", "2011-09-04", "--case", "rustock-2011", "--seed", "7", "--history", hist)
	mustRun(t, nil, "--data", data, "events", "import", "--format", "jsonl", hist)
	addr = fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf = filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb:\n  listen: \"\"\ndns:\n  listen: []\nlisteners:\n  - {kind: http, listen: %q}\n", data, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	stopServe(t, startServe(t, addr, "--config", conf))
	return data, conf, addr
}

func stopServe(t testing.TB, s *server) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs)
	}
}

// shell runs script with sh in dir, the binary first on PATH and the data
// dir in TAKEDOWN_DATA, as a user runs the README's lines.
func shell(t testing.TB, dir, data, script string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "sh", "-ec", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"), "TAKEDOWN_DATA="+data, "TAKEDOWN_ACTOR=e2e")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The README's evidence lines, run as written: `evidence key > key.pub`,
// export, then `verify pkg --key key.pub` exits 0. `evidence key -o`
// writes a key file that verify reads too.
func TestEvidenceKeyReadmeSequence(t *testing.T) {
	data, _, _ := evidenceData(t)
	work := t.TempDir()
	block := readmeBlock(t, "### Evidence")
	if !strings.Contains(block, "evidence key > key.pub") || !strings.Contains(block, "--key key.pub") {
		t.Fatalf("README's evidence block no longer shows key > key.pub then verify --key key.pub:\n%s", block)
	}
	out, err := shell(t, work, data, block)
	if err != nil {
		t.Fatalf("README evidence block failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "VERIFIED: all") {
		t.Fatalf("verify did not say VERIFIED:\n%s", out)
	}
	printed, err := os.ReadFile(filepath.Join(work, "key.pub"))
	if err != nil || !strings.Contains(string(printed), "fingerprint SHA256:") {
		t.Fatalf("key.pub is not what evidence key prints: %v\n%s", err, printed)
	}

	// key -o: one OpenSSH line, that verify and ssh-keygen read.
	k2 := filepath.Join(work, "k2.pub")
	r := mustRun(t, nil, "--data", data, "evidence", "key", "-o", k2)
	b, err := os.ReadFile(k2)
	if err != nil || strings.Count(string(b), "\n") != 1 || !strings.HasPrefix(string(b), "ssh-ed25519 ") {
		t.Fatalf("evidence key -o wrote %q (%v); stdout %s", b, err, r.stdout)
	}
	mustRun(t, nil, "evidence", "verify", filepath.Join(work, "pkg"), "--key", k2)
	// A key file of another log is refused (exit 1, the check names it).
	other := filepath.Join(t.TempDir(), "other")
	mustRun(t, nil, "--data", other, "evidence", "key", "-o", filepath.Join(work, "other.pub"))
	if r := run(t, nil, "evidence", "verify", filepath.Join(work, "pkg"), "--key", filepath.Join(work, "other.pub")); r.code != 1 || !strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("verify with another log's key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// evidence rotate-key: refused while serve holds the log; afterwards the
// server signs with the new key, and a package spanning the rotation (the
// 2011 history before it, live beacons after it) verifies offline with the
// first key and with the new one.
func TestEvidenceRotateKey(t *testing.T) {
	data, conf, addr := evidenceData(t)
	work := t.TempDir()
	first := filepath.Join(work, "first.pub")
	mustRun(t, nil, "--data", data, "evidence", "key", "-o", first)

	srv := startServe(t, addr, "--config", conf)
	if r := run(t, nil, "--data", data, "evidence", "rotate-key"); r.code == 0 || !strings.Contains(r.stderr, "another process") {
		t.Fatalf("rotate-key while serve runs: exit %d\n%s", r.code, r.stderr)
	}
	stopServe(t, srv)

	r := mustRun(t, nil, "--data", data, "evidence", "rotate-key", "--who", "custodian@dcu")
	if !strings.Contains(r.stdout, "evidence key rotated") {
		t.Fatalf("rotate-key said:\n%s", r.stdout)
	}
	second := filepath.Join(work, "second.pub")
	mustRun(t, nil, "--data", data, "evidence", "key", "-o", second)
	if a, b := readFile(t, first), readFile(t, second); a == b {
		t.Fatal("evidence key prints the same key after rotate-key")
	}

	// Live beacons after the rotation: case rustock-2011, today.
	before, _ := storedHealth(t, data)
	srv = startServe(t, addr, "--config", conf)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 5 {
		if err := beacon(client, addr); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if stored, _ := storedHealth(t, data); stored >= before+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live beacons not stored:\n%s", srv.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopServe(t, srv)

	pkg := filepath.Join(work, "pkg")
	mustRun(t, nil, "--data", data, "evidence", "export", "--case", "rustock-2011", "-o", pkg, "--for", "FBI")
	evs := readFile(t, filepath.Join(pkg, "events.jsonl"))
	if !strings.Contains(evs, `"timestamp":"2011-09-`) || !strings.Contains(evs, `"timestamp":"`+time.Now().UTC().Format("2006-01-")) {
		t.Fatal("the package does not span the rotation: it lacks the 2011 history or the live beacons")
	}
	if ents, err := os.ReadDir(filepath.Join(pkg, "keys")); err != nil || len(ents) != 3 {
		t.Fatalf("package keys/: %v, %d files; want the rotation record, its signature and proof", err, len(ents))
	}
	for _, key := range []string{first, second} {
		r := mustRun(t, nil, "evidence", "verify", pkg, "--key", key)
		if !strings.Contains(r.stdout, "key rotations") || !strings.Contains(r.stdout, "VERIFIED") {
			t.Fatalf("verify --key %s:\n%s", filepath.Base(key), r.stdout)
		}
	}
	// The log still audits: old checkpoints with the old key, new with the new.
	mustRun(t, nil, "--data", data, "evidence", "audit")
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// evidenceKey is the OpenSSH line of the evidence key that `takedown ARGS…
// evidence key` prints (ARGS: the node's --config, or --data and --db).
func evidenceKey(t testing.TB, args ...string) string {
	t.Helper()
	k := sshKeyIn(mustRun(t, nil, append(args, "evidence", "key")...).stdout)
	if k == "" {
		t.Fatalf("evidence key %v printed no OpenSSH key", args)
	}
	return k
}

// sshKeyIn is the first line of out that is an OpenSSH Ed25519 public key.
func sshKeyIn(out string) string {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "ssh-ed25519 ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
