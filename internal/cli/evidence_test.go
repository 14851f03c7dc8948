package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/evidence/bundle"
)

var evT0 = time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)

// runEvidence runs `takedown --data DATA evidence ARGS…` and returns its
// output and exit status.
func runEvidence(t *testing.T, data string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(t.Context(), append([]string{"--data", data, "evidence"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// fillEvidence appends n events of case C-1, an hour apart from evT0, to
// the evidence log of the data dir.
func fillEvidence(t *testing.T, data string, n int) {
	t.Helper()
	l, err := evidence.Open(t.Context(), filepath.Join(data, "evidence"), evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range n {
		e := &event.Event{
			ID: fmt.Sprintf("test-%08d", i), Timestamp: evT0.Add(time.Duration(i) * time.Hour), Protocol: event.ProtoHTTP, Transport: "tcp",
			SrcIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), SrcPort: uint16(1024 + i),
			DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Case: "C-1", Family: "rustock",
			HTTPMethod: "GET", HTTPURL: "/login.php", HTTPHost: "c2.example",
		}
		b, err := event.MarshalJSONL(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(t.Context(), [][]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEvidenceCommands runs the commands end to end: key, checkpoint,
// export, audit, verify (text and JSON), rotate-key, and the refusal of an
// edited log, with their output and exit status.
func TestEvidenceCommands(t *testing.T) {
	data := t.TempDir()
	keyPub := filepath.Join(data, "evidence", "key.pub")
	if _, serr, code := runEvidence(t, data, "key"); code != ExitOK {
		t.Fatalf("key: exit %d\n%s", code, serr)
	}
	fillEvidence(t, data, 20)
	out, serr, code := runEvidence(t, data, "checkpoint")
	if code != ExitOK || !strings.Contains(out, "\n20\n") {
		t.Fatalf("checkpoint: exit %d\n%s%s", code, out, serr)
	}
	pkg := filepath.Join(t.TempDir(), "pkg")
	out, serr, code = runEvidence(t, data, "export", "--case", "C-1", "--from", "2011-03-17T02:00:00Z", "--to", "2011-03-17T05:00:00Z", "-o", pkg, "--for", "LE")
	if code != ExitOK || !strings.Contains(out, "evidence package written to "+pkg+"\nverify with: takedown evidence verify "+pkg+" --key 'ssh-ed25519 ") || !strings.Contains(out, "checkpoint:\n") {
		t.Fatalf("export: exit %d\n%s%s", code, out, serr)
	}
	evs, err := os.ReadFile(filepath.Join(pkg, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(evs, []byte("\n")); n != 3 {
		t.Fatalf("window [2h, 5h) exported %d events, want 3", n)
	}
	out, serr, code = runEvidence(t, data, "audit")
	if code != ExitOK || out != "evidence audit passed: 21 entries re-hashed, 2 checkpoints reproduced (latest size 21)\n" {
		t.Fatalf("audit: exit %d\n%q%s", code, out, serr)
	}
	out, serr, code = runEvidence(t, data, "verify", pkg, "--key", keyPub)
	if code != ExitOK || strings.Count(out, "\nok  ") != 9 || !strings.HasPrefix(out, "package "+pkg+", trusted key SHA256:") || !strings.HasSuffix(out, "VERIFIED: all 9 checks passed\n") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, serr)
	}
	out, _, code = runEvidence(t, data, "verify", pkg, "--key", keyPub, "--json")
	var rep bundle.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK || !rep.OK() || len(rep.Checks) != 9 {
		t.Fatalf("verify --json: exit %d, %v\n%s", code, err, out)
	}

	// rotate-key: the new key signs a later package, which the first key
	// still verifies.
	out, serr, code = runEvidence(t, data, "rotate-key", "--who", "op")
	if code != ExitOK || !strings.HasPrefix(out, "evidence key rotated: the old key signed tree sizes up to 22 (the rotation record is entry 21)") || !strings.Contains(out, "\nnew key SHA256:") {
		t.Fatalf("rotate-key: exit %d\n%s%s", code, out, serr)
	}
	pkg2 := filepath.Join(t.TempDir(), "pkg")
	if out, serr, code := runEvidence(t, data, "export", "--case", "C-1", "-o", pkg2); code != ExitOK {
		t.Fatalf("export after rotation: exit %d\n%s%s", code, out, serr)
	}
	out, serr, code = runEvidence(t, data, "verify", pkg2, "--key", filepath.Join(pkg, "key.pub"))
	if code != ExitOK || !strings.Contains(out, "ok    key rotations") {
		t.Fatalf("verify after rotation with the first key: exit %d\n%s%s", code, out, serr)
	}

	// Edit one stored event: audit and every command that opens the log refuse.
	dataFile := filepath.Join(data, "evidence", "journal")
	b, err := os.ReadFile(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("198.51.100.3"))
	b[i+len("198.51.100.")] = '4'
	if err := os.WriteFile(dataFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, serr, code := runEvidence(t, data, "audit"); code != ExitFailure || !strings.Contains(serr, "takedown: evidence audit failed: ") {
		t.Fatalf("audit of an edited log: exit %d\n%s", code, serr)
	}
	if _, _, code := runEvidence(t, data, "checkpoint"); code != ExitFailure {
		t.Fatalf("checkpoint of an edited log: exit %d", code)
	}
}

// TestEvidenceVerifyKeys: what `evidence key` prints and what `evidence
// key -o` writes are both keys that verify --key reads; another log's key
// fails the package (exit 1); a missing or unreadable key is a usage error
// (exit 2), and so is a printed form whose fingerprint line names another
// key.
func TestEvidenceVerifyKeys(t *testing.T) {
	data := t.TempDir()
	fillEvidence(t, data, 5)
	pkg := filepath.Join(t.TempDir(), "pkg")
	if out, serr, code := runEvidence(t, data, "export", "--case", "C-1", "-o", pkg); code != ExitOK {
		t.Fatalf("export: exit %d\n%s%s", code, out, serr)
	}
	printed, serr, code := runEvidence(t, data, "key")
	if code != ExitOK {
		t.Fatalf("key: exit %d\n%s", code, serr)
	}
	printedFile := filepath.Join(t.TempDir(), "printed.pub")
	if err := os.WriteFile(printedFile, []byte(printed), 0o644); err != nil {
		t.Fatal(err)
	}
	written := filepath.Join(t.TempDir(), "key.pub")
	out, _, code := runEvidence(t, data, "key", "-o", written)
	if code != ExitOK || !strings.HasPrefix(out, "public key written to "+written+"\nfingerprint SHA256:") {
		t.Fatalf("key -o: exit %d\n%s", code, out)
	}
	wb, err := os.ReadFile(written)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(wb, []byte("\n")) != 1 || !bytes.HasPrefix(wb, []byte("ssh-ed25519 ")) || !bytes.HasSuffix(wb, []byte(" "+evidence.Principal+"\n")) {
		t.Fatalf("key -o wrote %q, want one OpenSSH line", wb)
	}
	for name, key := range map[string]string{"printed": printedFile, "key -o": written, "the key itself": strings.Split(printed, "\n")[0]} {
		if out, _, code := runEvidence(t, data, "verify", pkg, "--key", key); code != ExitOK {
			t.Errorf("%s form: exit %d\n%s", name, code, out)
		}
	}

	other := t.TempDir()
	if _, _, code := runEvidence(t, other, "key", "-o", filepath.Join(other, "other.pub")); code != ExitOK {
		t.Fatal("key of another log failed")
	}
	out, _, code = runEvidence(t, data, "verify", pkg, "--key", filepath.Join(other, "other.pub"))
	if code != ExitFailure || !strings.Contains(out, "FAIL  manifest signature") || !strings.Contains(out, "NOT VERIFIED: ") {
		t.Fatalf("verify with another key: exit %d\n%s", code, out)
	}
	if _, serr, code := runEvidence(t, data, "verify", pkg); code != ExitUsage || !strings.Contains(serr, "--key is required") {
		t.Fatalf("verify without --key: exit %d\n%s", code, serr)
	}
	if _, serr, code := runEvidence(t, data, "verify", pkg, "--key", "not a key"); code != ExitUsage || !strings.Contains(serr, "takedown: evidence verify: trusted key: public key: ") {
		t.Fatalf("verify with a bad key: exit %d\n%s", code, serr)
	}
	if _, serr, code := runEvidence(t, data, "verify", pkg, "--key", "not a key", "--json"); code != ExitUsage || !strings.Contains(serr, "takedown: trusted key: public key: ") {
		t.Fatalf("verify --json with a bad key: exit %d\n%s", code, serr)
	}
	forged := strings.Replace(printed, "fingerprint SHA256:", "fingerprint SHA256:x", 1)
	if _, serr, code := runEvidence(t, data, "verify", pkg, "--key", forged); code != ExitUsage || !strings.Contains(serr, "the fingerprint line says") {
		t.Fatalf("verify with a fingerprint line naming another key: exit %d\n%s", code, serr)
	}
}

// TestEvidenceKeyPrinted: `evidence key` makes the key on first use and
// prints both key forms, the origin and the fingerprint that ssh-keygen -l
// prints.
func TestEvidenceKeyPrinted(t *testing.T) {
	data := t.TempDir()
	out, serr, code := runEvidence(t, data, "key")
	if code != ExitOK {
		t.Fatalf("key: exit %d\n%s", code, serr)
	}
	k, err := evidence.LoadKey(filepath.Join(data, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	if want := k.SSHPublicKey() + "\n" + k.VerifierKey() + "\nfingerprint " + k.Fingerprint() + "\norigin " + k.Name + "\n"; out != want {
		t.Fatalf("key printed\n%s\nwant\n%s", out, want)
	}
	if !strings.HasPrefix(k.Name, "takedown.invalid/evidence/") {
		t.Fatalf("origin %q, want the default", k.Name)
	}
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		p := filepath.Join(t.TempDir(), "k.pub")
		if err := os.WriteFile(p, []byte(k.SSHPublicKey()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fp, err := exec.CommandContext(t.Context(), keygen, "-l", "-f", p).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(fp), k.Fingerprint()) {
			t.Errorf("ssh-keygen -l says %q, we say %s", fp, k.Fingerprint())
		}
	}
}

// TestEvidenceWhileServing: with the log held by a writer (what `serve`
// does: Open, Run, Append), key, checkpoint, audit and export succeed and
// see the writer's entries; the writer goes on appending and
// checkpointing after the export's custody record; rotate-key is refused.
func TestEvidenceWhileServing(t *testing.T) {
	data := t.TempDir()
	fillEvidence(t, data, 6)
	w, err := evidence.Open(t.Context(), filepath.Join(data, "evidence"), evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if _, err := w.Append(t.Context(), [][]byte{[]byte(`{"type":"marker","n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if out, serr, code := runEvidence(t, data, "key"); code != ExitOK || !strings.HasPrefix(out, "ssh-ed25519 ") {
		t.Fatalf("key while serving: exit %d\n%s%s", code, out, serr)
	}
	out, serr, code := runEvidence(t, data, "checkpoint")
	if code != ExitOK || !strings.Contains(out, "\n7\n") {
		t.Fatalf("checkpoint while serving: exit %d\n%s%s", code, out, serr)
	}
	out, serr, code = runEvidence(t, data, "audit")
	if code != ExitOK || !strings.HasPrefix(out, "evidence audit passed: 7 entries re-hashed") {
		t.Fatalf("audit while serving: exit %d\n%s%s", code, out, serr)
	}
	pkg := filepath.Join(t.TempDir(), "pkg")
	out, serr, code = runEvidence(t, data, "export", "--case", "C-1", "--from", "2011-03-17T00:00:00Z", "--to", "2011-03-18T00:00:00Z", "-o", pkg)
	if code != ExitOK {
		t.Fatalf("export while serving: exit %d\n%s%s", code, out, serr)
	}
	if evs, err := os.ReadFile(filepath.Join(pkg, "events.jsonl")); err != nil || bytes.Count(evs, []byte("\n")) != 6 {
		t.Fatalf("export while serving holds %d events (%v), want 6", bytes.Count(evs, []byte("\n")), err)
	}
	if out, serr, code := runEvidence(t, data, "verify", pkg, "--key", filepath.Join(data, "evidence", "key.pub")); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, serr)
	}
	// The writer appends after the export's custody record and checkpoint.
	first, err := w.Append(t.Context(), [][]byte{[]byte(`{"type":"marker","n":2}`)})
	if err != nil || first != 8 {
		t.Fatalf("the writer appended at %d (%v), want 8: after the export's custody record", first, err)
	}
	if _, serr, code := runEvidence(t, data, "rotate-key", "--who", "op"); code != ExitFailure || !strings.Contains(serr, "another process") {
		t.Fatalf("rotate-key while serving: exit %d\n%s", code, serr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out, serr, code = runEvidence(t, data, "audit")
	if code != ExitOK || !strings.HasPrefix(out, "evidence audit passed: 9 entries re-hashed") {
		t.Fatalf("audit after the writer stopped: exit %d\n%s%s", code, out, serr)
	}
}
