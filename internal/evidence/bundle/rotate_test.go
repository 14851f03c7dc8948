package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/evidence"
)

// rotatedLog makes a log of 3 days of case A events with a key rotation
// after each of the first rots days, and returns it with its keys, oldest
// first.
func rotatedLog(t *testing.T, dir string, rots int) (*evidence.Log, []*evidence.Key) {
	t.Helper()
	ctx := t.Context()
	l := openLog(t, dir)
	keys := []*evidence.Key{l.Key()}
	for day := range 3 {
		var batch [][]byte
		for i := range 10 {
			batch = append(batch, eventRecord(t, day*10+i, "A", t0.Add(time.Duration(day)*24*time.Hour+time.Duration(i)*time.Minute)))
		}
		appendN(t, l, batch)
		if _, err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if day < rots {
			res, err := l.RotateKey(ctx, "op")
			must(t, err)
			if !res.Old.Public().Equal(keys[len(keys)-1].Public()) || res.New.Public().Equal(res.Old.Public()) {
				t.Fatal("rotation did not replace the current key")
			}
			if res.LastOldSize != l.Size() {
				t.Fatalf("old key's last size %d, log size %d", res.LastOldSize, l.Size())
			}
			if res.New.Name != res.Old.Name {
				t.Fatalf("new key named %q, the log is %q", res.New.Name, res.Old.Name)
			}
			keys = append(keys, l.Key())
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return l, keys
}

// TestRotatedPackage: a package spanning one or two key rotations verifies
// offline given the first key or any later key, but not another key.
func TestRotatedPackage(t *testing.T) {
	for _, rots := range []int{1, 2} {
		t.Run(strings.Repeat("r", rots), func(t *testing.T) {
			l, keys := rotatedLog(t, t.TempDir(), rots)
			pkg := filepath.Join(t.TempDir(), "pkg")
			must(t, Export(t.Context(), l, Selection{Case: "A"}, pkg, "op", "LE"))
			ents, err := os.ReadDir(filepath.Join(pkg, dirKeys))
			must(t, err)
			if len(ents) != 3*rots {
				t.Fatalf("keys/ holds %d files, want %d", len(ents), 3*rots)
			}
			for i, trusted := range keys {
				rep, err := Verify(pkg, []byte(trusted.SSHPublicKey()))
				must(t, err)
				if !rep.OK() {
					t.Fatalf("package fails with key %d of %d: %s", i, len(keys), rep.Failed())
				}
				if c, ok := rep.Check(CheckKeyChain); !ok || !c.OK {
					t.Fatalf("no key chain check: %+v", rep.Checks)
				}
				if c, _ := rep.Check(CheckConsistency); !strings.Contains(c.Detail, "3 earlier") && !strings.Contains(c.Detail, "4 earlier") && !strings.Contains(c.Detail, "5 earlier") {
					t.Fatalf("earlier checkpoints (signed by several keys) not all checked: %s", c.Detail)
				}
			}
			rep, err := Verify(pkg, otherKey(t).Public())
			must(t, err)
			if rep.OK() {
				t.Fatal("package verifies with an unrelated key")
			}
		})
	}
}

// TestRotateKeyTamper: a package whose rotation records are removed,
// re-signed by another key, or left out of the log's tree fails, naming
// the key chain.
func TestRotateKeyTamper(t *testing.T) {
	l, keys := rotatedLog(t, t.TempDir(), 1)
	pkg := filepath.Join(t.TempDir(), "pkg")
	must(t, Export(t.Context(), l, Selection{Case: "A"}, pkg, "op", "LE"))
	first := keys[0].Public()
	rec := filepath.Join(pkg, dirKeys, filepathBase(t, pkg))

	cases := []struct {
		name string
		edit func(d string)
		want string
	}{
		{"keys removed", func(d string) { must(t, os.RemoveAll(filepath.Join(d, dirKeys))) }, CheckPackageKey},
		{"record signed by another key", func(d string) {
			raw, err := os.ReadFile(filepath.Join(d, dirKeys, filepath.Base(rec)))
			must(t, err)
			sig, err := otherKey(t).SSHSign(evidence.RotationNamespace, raw)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(d, dirKeys, filepath.Base(rec)+".sig"), sig, 0o600))
		}, CheckKeyChain},
		{"record edited", func(d string) {
			editFile(t, filepath.Join(d, dirKeys, filepath.Base(rec)), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"who":"op"`), []byte(`"who":"xx"`), 1)
			})
		}, CheckKeyChain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, pkg)
			c.edit(d)
			reseal(t, d, keys[len(keys)-1])
			rep, err := Verify(d, first)
			must(t, err)
			if rep.OK() {
				t.Fatal("tampered package verifies")
			}
			if ch, ok := rep.Check(c.want); ok && ch.OK {
				t.Fatalf("check %q passed: %+v", c.want, rep.Checks)
			}
		})
	}
}

func filepathBase(t *testing.T, pkg string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(pkg, dirKeys))
	must(t, err)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			return e.Name()
		}
	}
	t.Fatal("no rotation record in keys/")
	return ""
}
