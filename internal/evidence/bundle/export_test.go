package bundle

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/testtool"
)

// fixture is a log with two cases' events over four days, custody entries
// and checkpoints in between, and one exported package.
type fixture struct {
	log *evidence.Log
	dir string // the package
	pub ed25519.PublicKey
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	l := openLog(tb, tb.TempDir())
	ctx := tb.Context()
	for day := range 4 {
		var batch [][]byte
		for i := range 25 {
			c := "A"
			if i%3 == 0 {
				c = "B"
			}
			n := day*25 + i
			batch = append(batch, eventRecord(tb, n, c, t0.Add(time.Duration(day)*24*time.Hour+time.Duration(i)*time.Minute)))
		}
		appendN(tb, l, batch)
		must(tb, l.Custody(ctx, "hand-off", "day closed"))
		if _, err := l.Checkpoint(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	dir := filepath.Join(tb.TempDir(), "pkg")
	sel := Selection{Case: "A", From: t0.Add(24 * time.Hour), To: t0.Add(3 * 24 * time.Hour)}
	if err := Export(ctx, l, sel, dir, "analyst@dcu", "FBI"); err != nil {
		tb.Fatal(err)
	}
	return fixture{log: l, dir: dir, pub: l.Key().Public()}
}

func TestExportVerifies(t *testing.T) {
	f := newFixture(t)
	rep, err := Verify(f.dir, f.pub)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("fresh package fails: %s", rep.Failed())
	}
	if len(rep.Checks) != 9 {
		t.Fatalf("%d checks, want 9: %+v", len(rep.Checks), rep.Checks)
	}
	// Days 1 and 2 of case A: 2 × 16 events, in one contiguous range that
	// also holds case B's events and a custody entry as hashes only.
	evs, err := os.ReadFile(filepath.Join(f.dir, fileEvents))
	must(t, err)
	if n := bytes.Count(evs, []byte("\n")); n != 32 {
		t.Fatalf("events.jsonl has %d events, want 32", n)
	}
	if bytes.Contains(evs, []byte(`"case":"B"`)) {
		t.Fatal("events of another case are shown in full")
	}
	lv, err := os.ReadFile(filepath.Join(f.dir, fileLeaves))
	must(t, err)
	if n := bytes.Count(lv, []byte("\t-\t")); n == 0 {
		t.Fatal("no entries shown by hash only: the range does not cover the interleaved events")
	}
	readme, err := os.ReadFile(filepath.Join(f.dir, fileReadme))
	must(t, err)
	if !bytes.Contains(readme, []byte("by analyst@dcu for FBI")) || bytes.Contains(readme, []byte("0001-01-01")) {
		t.Fatalf("README does not say who exported when, for whom:\n%s", readme[:200])
	}
	// The export is a custody leaf of the log, and a second export of the
	// same window proves consistency with the first package's checkpoint.
	cps, err := f.log.Checkpoints()
	must(t, err)
	if len(cps) != 5 {
		t.Fatalf("%d checkpoints, want 5 (4 days + export)", len(cps))
	}
	ents, err := os.ReadDir(filepath.Join(f.dir, dirConsistency))
	must(t, err)
	if len(ents) != 4 {
		t.Fatalf("%d consistency proofs, want 4", len(ents))
	}
	if err := Export(t.Context(), f.log, Selection{Case: "Z"}, filepath.Join(t.TempDir(), "x"), "a", "b"); err == nil {
		t.Fatal("export of a case with no events succeeded")
	}
	if err := Export(t.Context(), f.log, Selection{Case: "A"}, f.dir, "a", "b"); err == nil {
		t.Fatal("export into a non-empty directory succeeded")
	}
}

// copyDir copies a package so each tamper case starts from a good one.
func copyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "pkg")
	must(tb, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

// reseal recomputes SHA256SUMS and signs it with k, as an operator holding
// the key (or an attacker holding another key) would after an edit.
func reseal(tb testing.TB, dir string, k *evidence.Key) {
	tb.Helper()
	os.Remove(filepath.Join(dir, fileSums))
	os.Remove(filepath.Join(dir, fileSumsSig))
	sums, err := manifest(dir)
	must(tb, err)
	sig, err := k.SSHSign(Namespace, sums)
	must(tb, err)
	must(tb, os.WriteFile(filepath.Join(dir, fileSums), sums, 0o644))
	must(tb, os.WriteFile(filepath.Join(dir, fileSumsSig), sig, 0o644))
}

func editFile(tb testing.TB, p string, fn func([]byte) []byte) {
	tb.Helper()
	b, err := os.ReadFile(p)
	must(tb, err)
	must(tb, os.WriteFile(p, fn(b), 0o644))
}

func editLines(tb testing.TB, p string, fn func([]string) []string) {
	tb.Helper()
	editFile(tb, p, func(b []byte) []byte {
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return []byte(strings.Join(fn(lines), "\n") + "\n")
	})
}

func flipAt(b []byte, off int) []byte {
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x01
	return b
}

// otherKey is the key of another log.
func otherKey(tb testing.TB) *evidence.Key {
	tb.Helper()
	return openLog(tb, tb.TempDir()).Key()
}

// TestPackageTamper: each edit must fail verification, and fail the check
// named for it. "resealed" edits also rewrite SHA256SUMS and re-sign it with
// the log's own key, to show the deeper checks catch them on their own.
func TestPackageTamper(t *testing.T) {
	f := newFixture(t)
	k := f.log.Key()
	cps, err := f.log.Checkpoints()
	must(t, err)
	older := cps[len(cps)-2]
	cases := []struct {
		name   string
		edit   func(t *testing.T, dir string)
		reseal bool
		fails  []string
	}{
		{"byte flipped in an event", func(t *testing.T, d string) {
			editFile(t, filepath.Join(d, fileEvents), func(b []byte) []byte { return flipAt(b, 200) })
		}, false, []string{CheckManifest, CheckLeaves}},
		{"byte flipped in an event, resealed", func(t *testing.T, d string) {
			editFile(t, filepath.Join(d, fileEvents), func(b []byte) []byte { return bytes.Replace(b, []byte("198.51.100."), []byte("198.51.101."), 1) })
		}, true, []string{CheckLeaves}},
		{"byte flipped in the range proof, resealed", func(t *testing.T, d string) {
			editFile(t, filepath.Join(d, fileRangeProof), func(b []byte) []byte {
				p, err := evidence.ParseRangeProof(b)
				must(t, err)
				p.Nodes[0].Hash[5] ^= 1
				return p.Marshal()
			})
		}, true, []string{CheckRangeProof}},
		{"byte flipped in a consistency proof, resealed", func(t *testing.T, d string) {
			ents, _ := os.ReadDir(filepath.Join(d, dirConsistency))
			editLines(t, filepath.Join(d, dirConsistency, ents[0].Name()), func(l []string) []string {
				l[len(l)-1] = "AAAA" + l[len(l)-1][4:]
				return l
			})
		}, true, []string{CheckConsistency}},
		{"byte flipped in the checkpoint", func(t *testing.T, d string) {
			editLines(t, filepath.Join(d, fileCheckpoint), func(l []string) []string {
				l[1] += "0" // tree size line
				return l
			})
		}, true, []string{CheckCheckpoint, CheckRangeProof, CheckCustody}},
		{"byte flipped in the manifest signature", func(t *testing.T, d string) {
			editLines(t, filepath.Join(d, fileSumsSig), func(l []string) []string {
				l[3] = strings.ToUpper(l[3][:10]) + strings.ToLower(l[3][10:])
				return l
			})
		}, false, []string{CheckManifestSig}},
		{"byte flipped in the manifest", func(t *testing.T, d string) {
			editFile(t, filepath.Join(d, fileSums), func(b []byte) []byte {
				b[0] = map[bool]byte{true: 'b', false: 'a'}[b[0] == 'a']
				return b
			})
		}, false, []string{CheckManifestSig, CheckManifest}},
		{"event dropped, resealed", func(t *testing.T, d string) {
			// drop the 3rd shown event and its leaf line
			var idx string
			editLines(t, filepath.Join(d, fileLeaves), func(l []string) []string {
				shown := 0
				for i, s := range l {
					if !strings.Contains(s, "\t-\t") {
						if shown++; shown == 3 {
							idx = s
							return append(l[:i:i], l[i+1:]...)
						}
					}
				}
				return l
			})
			_ = idx
			editLines(t, filepath.Join(d, fileEvents), func(l []string) []string { return append(l[:2:2], l[3:]...) })
		}, true, []string{CheckLeaves, CheckRangeProof}},
		{"last events dropped (package truncated), resealed", func(t *testing.T, d string) {
			editLines(t, filepath.Join(d, fileLeaves), func(l []string) []string { return l[:len(l)-1] })
			editLines(t, filepath.Join(d, fileEvents), func(l []string) []string { return l[:len(l)-1] })
		}, true, []string{CheckRangeProof}},
		{"event duplicated, resealed", func(t *testing.T, d string) {
			editLines(t, filepath.Join(d, fileLeaves), func(l []string) []string { return append(l[:1:1], l...) })
			editLines(t, filepath.Join(d, fileEvents), func(l []string) []string { return append(l[:1:1], l...) })
		}, true, []string{CheckLeaves}},
		{"events reordered, indices kept, resealed", func(t *testing.T, d string) {
			var a, b int
			editLines(t, filepath.Join(d, fileLeaves), func(l []string) []string {
				// swap the nonce and hash columns of the first two shown entries
				var shown []int
				for i, s := range l {
					if !strings.Contains(s, "\t-\t") {
						shown = append(shown, i)
					}
				}
				a, b = shown[0], shown[1]
				fa, fb := strings.SplitN(l[a], "\t", 2), strings.SplitN(l[b], "\t", 2)
				l[a], l[b] = fa[0]+"\t"+fb[1], fb[0]+"\t"+fa[1]
				return l
			})
			editLines(t, filepath.Join(d, fileEvents), func(l []string) []string {
				l[0], l[1] = l[1], l[0]
				return l
			})
		}, true, []string{CheckRangeProof}},
		{"older checkpoint substituted, resealed", func(t *testing.T, d string) {
			must(t, os.WriteFile(filepath.Join(d, fileCheckpoint), older.Note, 0o644))
		}, true, []string{CheckRangeProof, CheckCustody}},
		{"custody record edited, resealed", func(t *testing.T, d string) {
			editFile(t, filepath.Join(d, fileCustody), func(b []byte) []byte { return bytes.Replace(b, []byte("FBI"), []byte("CIA"), 1) })
		}, true, []string{CheckCustody}},
		{"file added", func(t *testing.T, d string) {
			must(t, os.WriteFile(filepath.Join(d, "extra.jsonl"), []byte("{}\n"), 0o644))
		}, false, []string{CheckManifest}},
		{"file removed", func(t *testing.T, d string) {
			must(t, os.Remove(filepath.Join(d, fileRangeProof)))
		}, false, []string{CheckManifest, CheckRangeProof}},
		{"package re-signed with another key", func(t *testing.T, d string) {
			ok := otherKey(t)
			must(t, os.WriteFile(filepath.Join(d, fileKeyPub), []byte(ok.SSHPublicKey()+"\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(d, fileNoteKey), []byte(ok.VerifierKey()+"\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(d, fileAllowed), []byte(evidence.Principal+" "+ok.SSHPublicKey()+"\n"), 0o644))
			reseal(t, d, ok)
		}, false, []string{CheckPackageKey, CheckManifestSig}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := copyDir(t, f.dir)
			tc.edit(t, d)
			if tc.reseal {
				reseal(t, d, k)
			}
			rep, err := Verify(d, f.pub)
			must(t, err)
			if rep.OK() {
				t.Fatal("tampered package verifies")
			}
			for _, name := range tc.fails {
				c, ok := rep.Check(name)
				if !ok || c.OK {
					t.Errorf("check %q did not fail; report: %+v", name, rep.Checks)
				}
			}
		})
	}
}

// TestTrustNeedsKey: verification trusts only the key it is given; the
// package's own key, when another, does not make it pass.
func TestTrustNeedsKey(t *testing.T) {
	f := newFixture(t)
	other := otherKey(t)
	rep, err := Verify(f.dir, other.Public())
	must(t, err)
	if rep.OK() {
		t.Fatal("package verifies against an unrelated key")
	}
	if _, err := Verify(f.dir, nil); err == nil {
		t.Fatal("Verify without a key did not refuse")
	}
}

// TestStandardTools checks a real package with sha256sum -c and
// ssh-keygen -Y verify, as the README tells a recipient.
func TestStandardTools(t *testing.T) {
	sha := testtool.Need(t, "sha256sum", "coreutils")
	keygen := testtool.Need(t, "ssh-keygen", "openssh-client")
	f := newFixture(t)
	cmd := exec.CommandContext(t.Context(), sha, "-c", "--strict", fileSums)
	cmd.Dir = f.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// The recipient's own allowed-signers file, from the key they trust.
	allowed := filepath.Join(t.TempDir(), "allowed")
	must(t, os.WriteFile(allowed, []byte(evidence.Principal+` namespaces="`+Namespace+`" `+f.log.Key().SSHPublicKey()+"\n"), 0o644))
	verify := func(dir, allowedFile string) ([]byte, error) {
		sums, err := os.Open(filepath.Join(dir, fileSums))
		must(t, err)
		defer sums.Close()
		cmd := exec.CommandContext(t.Context(), keygen, "-Y", "verify", "-f", allowedFile, "-I", evidence.Principal, "-n", Namespace, "-s", filepath.Join(dir, fileSumsSig))
		cmd.Stdin = sums
		return cmd.CombinedOutput()
	}
	if out, err := verify(f.dir, allowed); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	if out, err := verify(f.dir, filepath.Join(f.dir, fileAllowed)); err != nil {
		t.Fatalf("ssh-keygen -Y verify with the package's allowed_signers: %v\n%s", err, out)
	}
	// The README's bash recipe recomputes every shown leaf hash.
	bash := testtool.Need(t, "bash", "bash")
	leafCheck := func(dir string) string {
		cmd := exec.CommandContext(t.Context(), bash, "-c", LeafCheckScript)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README leaf-hash recipe: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := leafCheck(f.dir); out != "" {
		t.Fatalf("README leaf-hash recipe on a good package:\n%s", out)
	}
	readme, err := os.ReadFile(filepath.Join(f.dir, fileReadme))
	must(t, err)
	if !bytes.Contains(readme, []byte(strings.Split(LeafCheckScript, "\n")[2])) {
		t.Fatal("README does not carry the leaf-hash recipe the test runs")
	}

	// A changed manifest must fail both tools.
	d := copyDir(t, f.dir)
	editFile(t, filepath.Join(d, fileEvents), func(b []byte) []byte { return flipAt(b, 10) })
	if out := leafCheck(d); !strings.Contains(out, "entry 27: leaf hash mismatch") {
		t.Fatalf("README leaf-hash recipe missed a changed event: %q", out)
	}
	cmd = exec.CommandContext(t.Context(), sha, "-c", "--strict", "--quiet", fileSums)
	cmd.Dir = d
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("sha256sum -c passed a changed event:\n%s", out)
	}
	editFile(t, filepath.Join(d, fileSums), func(b []byte) []byte { return flipAt(b, 3) })
	if out, err := verify(d, allowed); err == nil {
		t.Fatalf("ssh-keygen -Y verify passed a changed manifest:\n%s", out)
	}
	// And a signature by another key fails against the trusted key.
	d = copyDir(t, f.dir)
	reseal(t, d, otherKey(t))
	if out, err := verify(d, allowed); err == nil {
		t.Fatalf("ssh-keygen -Y verify passed another key's signature:\n%s", out)
	}
}

func TestShowPackage(t *testing.T) {
	if os.Getenv("EVIDENCE_SHOW") == "" {
		t.Skip("EVIDENCE_SHOW=dir copies a sample package there")
	}
	f := newFixture(t)
	must(t, os.CopyFS(os.Getenv("EVIDENCE_SHOW"), os.DirFS(f.dir)))
	must(t, os.WriteFile(filepath.Join(os.Getenv("EVIDENCE_SHOW"), "..", "trusted.pub"), []byte(f.log.Key().SSHPublicKey()+"\n"), 0o644))
}

// TestConcurrent: appends go on while checkpoints, audits and an export
// run; everything stays consistent (run with -race).
func TestConcurrent(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx := t.Context()
	appendN(t, l, [][]byte{eventRecord(t, 0, "A", t0)})
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			batch := [][]byte{eventRecord(t, i, "A", t0.Add(time.Duration(i)*time.Second)), eventRecord(t, i, "B", t0)}
			if _, err := l.Append(ctx, batch); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 5 {
		if _, err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Audit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pkg := filepath.Join(t.TempDir(), "pkg")
	if err := Export(ctx, l, Selection{Case: "A"}, pkg, "op", "LE"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err := l.Audit(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(pkg, l.Key().Public())
	must(t, err)
	if !rep.OK() {
		t.Fatal(rep.Failed())
	}
}
