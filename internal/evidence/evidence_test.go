package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/takedown/takedown/internal/event"
	"golang.org/x/mod/sumdb/tlog"
)

var t0 = time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)

// eventRecord returns the JSON-lines bytes of a test event.
func eventRecord(tb testing.TB, i int, caseID string, ts time.Time) []byte {
	tb.Helper()
	e := &event.Event{
		ID: fmt.Sprintf("test-%08d", i), Timestamp: ts, Protocol: event.ProtoHTTP, Transport: "tcp",
		SrcIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), SrcPort: uint16(1024 + i%60000),
		DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Case: caseID, Family: "rustock",
		HTTPMethod: "GET", HTTPURL: "/login.php", HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0",
	}
	b, err := event.MarshalJSONL(e)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func openLog(tb testing.TB, dir string) *Log {
	tb.Helper()
	l, err := Open(tb.Context(), dir, Options{Origin: "takedown.test/evidence"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func appendN(tb testing.TB, l *Log, recs [][]byte) uint64 {
	tb.Helper()
	first, err := l.Append(tb.Context(), recs)
	if err != nil {
		tb.Fatal(err)
	}
	return first
}

// memHashes is an in-memory tlog hash store, computed by tlog itself, to
// check this package's own hashing against.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

func tlogStore(tb testing.TB, leaves [][]byte) memHashes {
	tb.Helper()
	var m memHashes
	for i, d := range leaves {
		hs, err := tlog.StoredHashes(int64(i), d, m)
		if err != nil {
			tb.Fatal(err)
		}
		m = append(m, hs...)
	}
	return m
}

// TestHashesMatchTlog checks the stored hashes and roots against
// golang.org/x/mod/sumdb/tlog, over uneven batches.
func TestHashesMatchTlog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	var recs [][]byte
	for i := range 300 {
		recs = append(recs, eventRecord(t, i, "A", t0.Add(time.Duration(i)*time.Second)))
	}
	for i := 0; i < len(recs); {
		n := 1 + i%37
		n = min(n, len(recs)-i)
		if got := appendN(t, l, recs[i:i+n]); got != uint64(i) {
			t.Fatalf("Append returned first %d, want %d", got, i)
		}
		i += n
	}
	// Rebuild the leaf data (nonce || record) from disk and hash with tlog.
	var data [][]byte
	for i := range uint64(len(recs)) {
		nonce, rec, err := l.readEntry(i)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec, recs[i]) {
			t.Fatalf("entry %d stored as %q, want the record as given", i, rec)
		}
		data = append(data, append(nonce, rec...))
	}
	want := tlogStore(t, data)
	got, err := os.ReadFile(filepath.Join(dir, "hashes"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want)*tlog.HashSize {
		t.Fatalf("hashes file has %d bytes, want %d", len(got), len(want)*tlog.HashSize)
	}
	for i, h := range want {
		if !bytes.Equal(got[i*32:(i+1)*32], h[:]) {
			t.Fatalf("stored hash %d differs from tlog's", i)
		}
	}
	c, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	root, err := tlog.TreeHash(int64(len(recs)), want)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != uint64(len(recs)) || c.Root != root {
		t.Fatalf("checkpoint size %d root %x, want %d %x", c.Size, c.Root, len(recs), root)
	}
	if !strings.HasPrefix(string(c.Note), "takedown.test/evidence\n300\n") || !strings.Contains(string(c.Note), "\n\n— takedown.test/evidence ") {
		t.Fatalf("checkpoint is not a C2SP note:\n%s", c.Note)
	}
}

func TestAppendRejects(t *testing.T) {
	l := openLog(t, t.TempDir())
	for name, rec := range map[string][]byte{
		"empty":   {},
		"newline": []byte("{\"a\":1}\n"),
		"huge":    bytes.Repeat([]byte("x"), DefaultMaxRecordSize+1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := l.Append(t.Context(), [][]byte{[]byte("ok"), rec}); err == nil {
				t.Fatal("Append accepted it")
			}
			if l.Size() != 0 {
				t.Fatalf("a refused batch left %d entries", l.Size())
			}
		})
	}
}

func TestRangeProof(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var leaves [][]byte
	for i := range 130 {
		leaves = append(leaves, []byte(fmt.Sprint("leaf ", i)))
	}
	store := tlogStore(t, leaves)
	for range 400 {
		n := 1 + rng.Uint64N(uint64(len(leaves)))
		lo := rng.Uint64N(n)
		hi := lo + 1 + rng.Uint64N(n-lo)
		p, err := proveRange(n, lo, hi, store)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tlog.TreeHash(int64(n), store)
		if err != nil {
			t.Fatal(err)
		}
		var lh []tlog.Hash
		for i := lo; i < hi; i++ {
			lh = append(lh, tlog.RecordHash(leaves[i]))
		}
		p2, err := ParseRangeProof(p.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		got, err := p2.Root(lh)
		if err != nil || got != want {
			t.Fatalf("n=%d [%d,%d): root %x err %v, want %x", n, lo, hi, got, err, want)
		}
		// Any change must change the root or be refused.
		if len(lh) > 1 {
			sw := append([]tlog.Hash(nil), lh...)
			sw[0], sw[1] = sw[1], sw[0]
			if r, err := p.Root(sw); err == nil && r == want {
				t.Fatalf("n=%d [%d,%d): reordered leaves verify", n, lo, hi)
			}
			if _, err := p.Root(lh[1:]); err == nil {
				t.Fatalf("n=%d [%d,%d): a dropped leaf verifies", n, lo, hi)
			}
		}
		if len(p.Nodes) > 0 {
			bad := p
			bad.Nodes = append([]Node(nil), p.Nodes...)
			bad.Nodes[0].Hash[0] ^= 1
			if r, err := bad.Root(lh); err == nil && r == want {
				t.Fatalf("n=%d [%d,%d): a changed node verifies", n, lo, hi)
			}
			bad.Nodes = p.Nodes[1:]
			if _, err := bad.Root(lh); err == nil {
				t.Fatalf("n=%d [%d,%d): a missing node verifies", n, lo, hi)
			}
		}
	}
	// A node that covers part of the range must be refused even when its
	// hash is the true one (it would stand in for the range's leaves).
	p, _ := proveRange(8, 2, 3, store)
	p.Nodes = append(p.Nodes, Node{Start: 2, Width: 2, Hash: store[tlog.StoredHashIndex(1, 1)]})
	if _, err := p.Root([]tlog.Hash{tlog.RecordHash(leaves[2])}); err == nil {
		t.Fatal("a node overlapping the range was accepted")
	}
}

func TestReopenAndRun(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	l, err := Open(ctx, dir, Options{CheckpointEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	for i := range 10 {
		appendN(t, l, [][]byte{eventRecord(t, i, "A", t0)})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cps, err := l.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 || cps[0].Size != 10 {
		t.Fatalf("after Run stopped: checkpoints %v, want one of size 10", cps)
	}
	l.Close()
	if fi, err := os.Stat(filepath.Join(dir, "key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	l2 := openLog(t, dir)
	if l2.Size() != 10 {
		t.Fatalf("reopened log has %d entries, want 10", l2.Size())
	}
	if l2.Key().Name == "takedown.test/evidence" {
		t.Fatal("a reopened log took the configured origin instead of its key's name")
	}
	if _, err := Open(t.Context(), dir, Options{}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open of a held log: %v, want refusal", err)
	}
	appendN(t, l2, [][]byte{eventRecord(t, 11, "A", t0)})
	c, err := l2.Checkpoint(t.Context())
	if err != nil || c.Size != 11 {
		t.Fatalf("checkpoint after reopen: %v %v", c.Size, err)
	}
	if err := l2.Audit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestCrashRecovery: lost index/hash writes and a torn last entry are
// repaired at Open; the acknowledged entries are all there.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		appendN(t, l, [][]byte{eventRecord(t, i, "A", t0)})
	}
	if _, err := l.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 70; i++ {
		appendN(t, l, [][]byte{eventRecord(t, i, "A", t0)})
	}
	l.Close()
	// Lose the derived files' tails, and tear a half-written entry.
	must(t, os.Truncate(filepath.Join(dir, "index"), 8*40+3))
	must(t, os.Truncate(filepath.Join(dir, "hashes"), 32*tlog.StoredHashCount(45)+7))
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.Write([]byte{0, 0, 1, 0, 9, 9, 9})
	f.Close()
	l2 := openLog(t, dir)
	if l2.Size() != 70 {
		t.Fatalf("after recovery %d entries, want 70", l2.Size())
	}
	if err := l2.Audit(t.Context()); err != nil {
		t.Fatalf("audit after recovery: %v", err)
	}
	appendN(t, l2, [][]byte{eventRecord(t, 70, "A", t0)})
	must(t, l2.Close())
	// A crash that leaves a zero-filled tail is repaired too; a non-zero
	// bad length is not (that is an edit, not a crash).
	f, err = os.OpenFile(filepath.Join(dir, "data"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.Write(make([]byte, 4096))
	f.Close()
	l2 = openLog(t, dir)
	if l2.Size() != 71 {
		t.Fatalf("after zero-tail recovery %d entries, want 71", l2.Size())
	}
	must(t, l2.Close())
	f, err = os.OpenFile(filepath.Join(dir, "data"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.Write([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Close()
	if _, err := Open(t.Context(), dir, Options{}); err == nil {
		t.Fatal("Open accepted an entry with an impossible length")
	}
}

// otherKey is a fresh key that no log has.
func otherKey(tb testing.TB) *Key {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	must(tb, err)
	return &Key{Name: "takedown.test/evidence", priv: priv}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// TestLiveLogTamper: edits of the log on disk are caught at the next Open
// or by Audit.
func TestLiveLogTamper(t *testing.T) {
	build := func(t *testing.T) string {
		dir := t.TempDir()
		l, err := Open(t.Context(), dir, Options{})
		must(t, err)
		for i := range 40 {
			appendN(t, l, [][]byte{eventRecord(t, i, "A", t0)})
			if i == 29 {
				_, err := l.Checkpoint(t.Context())
				must(t, err)
			}
		}
		must(t, l.Close())
		return dir
	}
	flip := func(t *testing.T, path string, off int64) {
		b, err := os.ReadFile(path)
		must(t, err)
		if off < 0 {
			off += int64(len(b))
		}
		b[off] ^= 0x20
		must(t, os.WriteFile(path, b, 0o600))
	}
	cases := []struct {
		name   string
		edit   func(t *testing.T, dir string)
		errHas string
	}{
		{"record byte flipped", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "data"), 100) }, "edited"},
		{"record after the last checkpoint flipped", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "data"), -5) }, "edited"},
		{"record and its stored hashes rewritten", func(t *testing.T, dir string) {
			flip(t, filepath.Join(dir, "data"), 100)
			must(t, os.Remove(filepath.Join(dir, "hashes"))) // rebuilt from the edited data
		}, "does not match its checkpoint"},
		{"stored hash flipped", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "hashes"), 64) }, "edited"},
		{"log truncated below its checkpoint", func(t *testing.T, dir string) {
			idx, err := os.ReadFile(filepath.Join(dir, "index"))
			must(t, err)
			must(t, os.Truncate(filepath.Join(dir, "data"), int64(beUint64(idx[20*8:]))))
		}, "truncated"},
		{"log truncated after its checkpoint", func(t *testing.T, dir string) {
			idx, err := os.ReadFile(filepath.Join(dir, "index"))
			must(t, err)
			must(t, os.Truncate(filepath.Join(dir, "data"), int64(beUint64(idx[35*8:]))))
		}, "longer"},
		{"checkpoint signature flipped", func(t *testing.T, dir string) {
			ents, _ := os.ReadDir(filepath.Join(dir, checkpointDir))
			flip(t, filepath.Join(dir, checkpointDir, ents[0].Name()), -10)
		}, "checkpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := build(t)
			tc.edit(t, dir)
			_, err := Open(t.Context(), dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Open of an edited log: %v, want an error with %q", err, tc.errHas)
			}
		})
	}
	t.Run("edited while open, caught by Audit", func(t *testing.T) {
		dir := build(t)
		l := openLog(t, dir)
		must(t, l.Audit(t.Context()))
		flip(t, filepath.Join(dir, "data"), 300)
		if err := l.Audit(t.Context()); err == nil || !strings.Contains(err.Error(), "edited") {
			t.Fatalf("Audit after an edit: %v", err)
		}
	})
}

func TestLeafHash(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, NonceSize)
	rec := []byte(`{"v":1}`)
	want := sha256.Sum256(append(append([]byte{0}, nonce...), rec...))
	if got := LeafHash(nonce, rec); got != tlog.Hash(want) {
		t.Fatalf("LeafHash = %x, want SHA-256(0x00||nonce||record) %x", got, want)
	}
	if LeafHash(nonce, rec) != tlog.RecordHash(append(append([]byte{}, nonce...), rec...)) {
		t.Fatal("LeafHash differs from tlog.RecordHash over nonce||record")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := Open(t.Context(), t.TempDir(), Options{Registerer: reg})
	must(t, err)
	t.Cleanup(func() { l.Close() })
	appendN(t, l, [][]byte{eventRecord(t, 1, "A", t0), eventRecord(t, 2, "A", t0)})
	appendN(t, l, [][]byte{eventRecord(t, 3, "A", t0)})
	_, err = l.Checkpoint(t.Context())
	must(t, err)
	mfs, err := reg.Gather()
	must(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"takedown_evidence_leaves_appended_total":   3,
		"takedown_evidence_append_batches_total":    2,
		"takedown_evidence_append_duration_seconds": 2,
		"takedown_evidence_checkpoint_size_leaves":  3,
		"takedown_evidence_checkpoints_total":       1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
