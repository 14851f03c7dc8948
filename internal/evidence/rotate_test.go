package evidence

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rotatedLog makes a log of 3 days of case A events with a key rotation
// after each of the first rots days, and returns it with its keys, oldest
// first.
func rotatedLog(t *testing.T, dir string, rots int) (*Log, []*Key) {
	t.Helper()
	ctx := t.Context()
	l := openLog(t, dir)
	keys := []*Key{l.Key()}
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

// TestRotateKey: after rotations, the log reopens (every checkpoint checked
// with the key of its size) with the newest key, audits, and keeps no old
// private key (packages spanning rotations: internal/evidence/bundle).
func TestRotateKey(t *testing.T) {
	for _, rots := range []int{1, 2} {
		t.Run(strings.Repeat("r", rots), func(t *testing.T) {
			dir := t.TempDir()
			l, keys := rotatedLog(t, dir, rots)
			must(t, l.Close())

			l = openLog(t, dir)
			if !l.Key().Public().Equal(keys[len(keys)-1].Public()) {
				t.Fatal("reopened log does not use the newest key")
			}
			must(t, l.Audit(t.Context()))
			k, err := LoadKey(dir)
			must(t, err)
			if !k.Public().Equal(keys[len(keys)-1].Public()) {
				t.Fatal("key file is not the newest key")
			}
			pubFile, err := os.ReadFile(filepath.Join(dir, keyPubFile))
			must(t, err)
			if p, err := ParsePublicKey(pubFile); err != nil || !p.Equal(k.Public()) {
				t.Fatalf("key.pub is not the newest key: %v", err)
			}
			// The old private key is gone from the data dir.
			for _, old := range keys[:len(keys)-1] {
				if b, _ := os.ReadFile(filepath.Join(dir, keyFile)); bytes.Contains(b, old.priv.Seed()) {
					t.Fatal("old private key still in the key file")
				}
			}
		})
	}
}

// TestRotateKeyInterrupted: a key.new that no signed record names (a crash
// before the rotation was recorded) is discarded at Open; one that the last
// record names (a crash before it was installed) is installed.
func TestRotateKeyInterrupted(t *testing.T) {
	dir := t.TempDir()
	l, keys := rotatedLog(t, dir, 1)
	must(t, l.Close())

	// Crash before install: put the old key back and the new one as key.new.
	newKey, err := os.ReadFile(filepath.Join(dir, keyFile))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, keyNewFile), newKey, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, keyFile), []byte(keys[0].signerKey()+"\n"), 0o600))
	l = openLog(t, dir)
	if !l.Key().Public().Equal(keys[1].Public()) {
		t.Fatal("interrupted rotation not finished at Open")
	}
	must(t, l.Close())

	// A stray key.new (no record) is discarded and the key kept.
	stray := otherKey(t)
	must(t, os.WriteFile(filepath.Join(dir, keyNewFile), []byte(stray.signerKey()+"\n"), 0o600))
	l = openLog(t, dir)
	if !l.Key().Public().Equal(keys[1].Public()) {
		t.Fatal("a stray key.new replaced the key")
	}
	if _, err := os.Stat(filepath.Join(dir, keyNewFile)); !os.IsNotExist(err) {
		t.Fatal("stray key.new not removed")
	}
}
