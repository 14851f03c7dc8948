package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
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
	// Enough leaves for full tiles on two levels (256*256) and partial
	// ones on top; small records, uneven batches.
	const total = tileWidth*tileWidth + 300
	recs := make([][]byte, total)
	for i := range recs {
		recs[i] = fmt.Appendf(nil, `{"leaf":%d}`, i)
	}
	for i := 0; i < len(recs); {
		n := 1 + i%997
		n = min(n, len(recs)-i)
		if got := appendN(t, l, recs[i:i+n]); got != uint64(i) {
			t.Fatalf("Append returned first %d, want %d", got, i)
		}
		i += n
	}
	// Rebuild the leaf data (nonce || record) from disk and hash with tlog.
	var data [][]byte
	must(t, l.Entries(t.Context(), 0, total, func(i uint64, nonce, rec []byte) error {
		if !bytes.Equal(rec, recs[i]) {
			t.Fatalf("entry %d stored as %q, want the record as given", i, rec)
		}
		data = append(data, append(bytes.Clone(nonce), rec...))
		return nil
	}))
	nonce, rec, err := l.readEntry(tileWidth*tileWidth + 7)
	must(t, err)
	if !bytes.Equal(rec, recs[tileWidth*tileWidth+7]) || !bytes.Equal(append(nonce, rec...), data[tileWidth*tileWidth+7]) {
		t.Fatal("readEntry differs from Entries")
	}
	want := tlogStore(t, data)
	// Every stored hash, read through the tiles, is tlog's.
	hr := l.hashes()
	idx := make([]int64, len(want))
	for i := range idx {
		idx[i] = int64(i)
	}
	got, err := hr.ReadHashes(idx)
	must(t, err)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stored hash %d differs from tlog's", i)
		}
	}
	// Every full hash tile on disk is the tile tlog makes.
	for _, tl := range []tlog.Tile{{H: 8, L: 0, N: 0, W: 256}, {H: 8, L: 0, N: 255, W: 256}, {H: 8, L: 1, N: 0, W: 256}} {
		wantTile, err := tlog.ReadTileData(tl, want)
		must(t, err)
		gotTile, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tilePath(tl.L, uint64(tl.N), 256))))
		must(t, err)
		if !bytes.Equal(gotTile, wantTile) {
			t.Fatalf("tile %v differs from tlog's", tl)
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
	if !strings.HasPrefix(string(c.Note), fmt.Sprintf("takedown.test/evidence\n%d\n", total)) || !strings.Contains(string(c.Note), "\n\n— takedown.test/evidence ") {
		t.Fatalf("checkpoint is not a C2SP note:\n%s", c.Note)
	}
	// The partial tiles of the checkpoint's size are tlog's too.
	for _, tl := range []tlog.Tile{{H: 8, L: 0, N: 257, W: 300 - 256}, {H: 8, L: 1, N: 1, W: 1}, {H: 8, L: 2, N: 0, W: 1}} {
		wantTile, err := tlog.ReadTileData(tl, want)
		must(t, err)
		gotTile, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tilePath(tl.L, uint64(tl.N), tl.W))))
		must(t, err)
		if !bytes.Equal(gotTile, wantTile) {
			t.Fatalf("partial tile %v differs from tlog's", tl)
		}
	}
	// A reopened log (state from the tiles' right edge and the journal)
	// has the same root and goes on the same way.
	must(t, l.Close())
	l2 := openLog(t, dir)
	if l2.Size() != total || frontierRoot(l2.frontier) != root {
		t.Fatalf("reopened: size %d root %x, want %d %x", l2.Size(), frontierRoot(l2.frontier), total, root)
	}
	must(t, l2.Audit(t.Context()))
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
	if b, err := os.ReadFile(filepath.Join(dir, checkpointFile)); err != nil || !bytes.Equal(b, cps[0].Note) {
		t.Fatalf("checkpoint file: %v; want the latest checkpoint", err)
	}
	l2 := openLog(t, dir)
	if l2.Size() != 10 {
		t.Fatalf("reopened log has %d entries, want 10", l2.Size())
	}
	if l2.Key().Name == "takedown.test/evidence" {
		t.Fatal("a reopened log took the configured origin instead of its key's name")
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

// journalOffsets returns the offset of each entry of the journal.
func journalOffsets(tb testing.TB, dir string) []int64 {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	must(tb, err)
	var out []int64
	off := int64(journalHeader)
	must(tb, bundleEntries(b[journalHeader:], func(e []byte) error {
		out = append(out, off)
		off += int64(entryHeader + len(e))
		return nil
	}))
	return out
}

func appendFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	must(tb, err)
	_, err = f.Write(b)
	must(tb, err)
	must(tb, f.Close())
}

// TestCrashRecovery: lost tile writes and a torn last journal entry are
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
	var batch [][]byte
	for i := 50; i < 600; i++ {
		batch = append(batch, eventRecord(t, i, "A", t0))
	}
	appendN(t, l, batch)
	l.Close()
	// Lose tile writes (a power cut before they reached the disk), and
	// tear a half-written entry.
	must(t, os.Remove(filepath.Join(dir, "tile", "entries", "001")))
	must(t, os.Truncate(filepath.Join(dir, "tile", "0", "000"), 100))
	appendFile(t, filepath.Join(dir, journalFile), []byte{1, 0, 9, 9, 9})
	l2 := openLog(t, dir)
	if l2.Size() != 600 {
		t.Fatalf("after recovery %d entries, want 600", l2.Size())
	}
	if err := l2.Audit(t.Context()); err != nil {
		t.Fatalf("audit after recovery: %v", err)
	}
	appendN(t, l2, [][]byte{eventRecord(t, 600, "A", t0)})
	must(t, l2.Close())
	// A crash that leaves a zero-filled tail is repaired too; an
	// impossible length is not (that is an edit, not a crash).
	appendFile(t, filepath.Join(dir, journalFile), make([]byte, 4096))
	l2 = openLog(t, dir)
	if l2.Size() != 601 {
		t.Fatalf("after zero-tail recovery %d entries, want 601", l2.Size())
	}
	must(t, l2.Close())
	appendFile(t, filepath.Join(dir, journalFile), []byte{0, 5, 1, 2, 3, 4, 5, 6, 7})
	if _, err := Open(t.Context(), dir, Options{}); err == nil {
		t.Fatal("Open accepted an entry with an impossible length")
	}
}

// TestCrashTornAndOrphanTiles: tiles are fsynced only when the journal
// rotates, so a power cut can leave tiles of the journal's range with
// their length but zeros for their data (rewritten at Open from the
// journal, not taken for an edit), and tiles of a batch whose journal
// write it lost (removed at Open, so that the entries appended in their
// place are not taken for an edit later).
func TestCrashTornAndOrphanTiles(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(t.Context(), dir, Options{})
	must(t, err)
	var batch [][]byte
	for i := range 600 {
		batch = append(batch, eventRecord(t, i, "A", t0))
	}
	appendN(t, l, batch)
	_, err = l.Checkpoint(t.Context())
	must(t, err)
	batch = batch[:0]
	for i := 600; i < 900; i++ {
		batch = append(batch, eventRecord(t, i, "A", t0))
	}
	appendN(t, l, batch) // completes bundle 2 and level-0 tile 2
	must(t, l.Close())
	bundle1 := filepath.Join(dir, "tile", "entries", "001")
	want1, err := os.ReadFile(bundle1)
	must(t, err)
	// Bundle 1 keeps its length with zeros from its middle on; tile 0/001
	// is all zeros.
	torn := append(bytes.Clone(want1[:len(want1)/2]), make([]byte, len(want1)-len(want1)/2)...)
	must(t, os.WriteFile(bundle1, torn, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "tile", "0", "001"), make([]byte, tileWidth*32), 0o644))
	// The second batch's journal write is lost, its tiles are not.
	must(t, os.Truncate(filepath.Join(dir, journalFile), journalOffsets(t, dir)[600]))
	l = openLog(t, dir)
	if l.Size() != 600 {
		t.Fatalf("after recovery %d entries, want 600", l.Size())
	}
	got1, err := os.ReadFile(bundle1)
	must(t, err)
	if !bytes.Equal(got1, want1) {
		t.Fatal("the torn bundle was not rewritten from the journal")
	}
	for _, p := range []string{"tile/entries/002", "tile/0/002"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s beyond the tree of 600 survived Open: %v", p, err)
		}
	}
	must(t, l.Audit(t.Context()))
	// Other entries take the lost ones' places; a crash losing their tiles
	// is repaired again, and the log audits.
	batch = batch[:0]
	for i := 600; i < 900; i++ {
		batch = append(batch, eventRecord(t, i, "B", t0))
	}
	appendN(t, l, batch)
	must(t, l.Close())
	must(t, os.Remove(filepath.Join(dir, "tile", "entries", "002")))
	l = openLog(t, dir)
	if l.Size() != 900 {
		t.Fatalf("after the second recovery %d entries, want 900", l.Size())
	}
	must(t, l.Audit(t.Context()))
}

// TestCrashBeforeRotationSync: a rotated journal stays (journal.<start>)
// until the tiles below the new journal's start are durable; a power cut
// before then can lose or tear those tiles, and Open rebuilds them from it,
// then removes it.
func TestCrashBeforeRotationSync(t *testing.T) {
	smallJournal(t)
	old := rotationSync
	rotationSync = func(*Log) error { return errors.New("power cut") }
	t.Cleanup(func() { rotationSync = old })
	dir := t.TempDir()
	l, err := Open(t.Context(), dir, Options{})
	must(t, err)
	var batch [][]byte
	for i := range 300 {
		batch = append(batch, eventRecord(t, i, "A", t0))
	}
	appendN(t, l, batch) // rotates: the journal starts at 256
	_, err = l.Checkpoint(t.Context())
	must(t, err)
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "power cut") {
		t.Fatalf("Close after a failed rotation sync: %v", err)
	}
	retired := filepath.Join(dir, journalFile+".00000000000000000000")
	if _, err := os.Stat(retired); err != nil {
		t.Fatalf("the rotated journal was not kept: %v", err)
	}
	rotationSync = old
	// The power cut lost bundle 0 and tore tile 0/000.
	must(t, os.Remove(filepath.Join(dir, "tile", "entries", "000")))
	must(t, os.WriteFile(filepath.Join(dir, "tile", "0", "000"), make([]byte, tileWidth*32), 0o644))
	l = openLog(t, dir)
	if l.Size() != 300 {
		t.Fatalf("after recovery %d entries, want 300", l.Size())
	}
	must(t, l.Audit(t.Context()))
	if _, err := os.Stat(retired); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the rotated journal survived recovery: %v", err)
	}
	appendN(t, l, [][]byte{eventRecord(t, 300, "A", t0)})
	must(t, l.Close())
	l = openLog(t, dir)
	if l.Size() != 301 {
		t.Fatalf("after reopening %d entries, want 301", l.Size())
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

// smallJournal makes the journal rotate every 256 entries for one test, so
// that bundles and tiles below it are the only copy of their entries.
func smallJournal(tb testing.TB) {
	old := journalMaxEntries
	journalMaxEntries = tileWidth
	tb.Cleanup(func() { journalMaxEntries = old })
}

// TestLiveLogTamper: edits of the log on disk are caught at the next Open
// (the right edge and the journal, against the latest checkpoint) or by
// Audit (everything), which is what `takedown evidence audit` runs.
func TestLiveLogTamper(t *testing.T) {
	smallJournal(t)
	build := func(t *testing.T) string {
		dir := t.TempDir()
		l, err := Open(t.Context(), dir, Options{})
		must(t, err)
		for i := range 700 {
			appendN(t, l, [][]byte{eventRecord(t, i, "A", t0)})
			if i == 529 {
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
	openAudit := func(dir string) error {
		l, err := Open(t.Context(), dir, Options{})
		if err != nil {
			return err
		}
		defer l.Close()
		return l.Audit(t.Context())
	}
	bundle0 := filepath.Join("tile", "entries", "000")
	cases := []struct {
		name   string
		edit   func(t *testing.T, dir string)
		errHas string
	}{
		{"record byte flipped", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, bundle0), 100) }, "edited"},
		{"record in the journal flipped", func(t *testing.T, dir string) {
			flip(t, filepath.Join(dir, journalFile), journalOffsets(t, dir)[5]+40) // entry 517
		}, "does not match its checkpoint"},
		{"record and its tiles rewritten", func(t *testing.T, dir string) {
			flip(t, filepath.Join(dir, bundle0), 100)
			must(t, os.RemoveAll(filepath.Join(dir, "tile", "0")))
		}, "no such file"},
		{"hash tile flipped", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "tile", "0", "000"), 64) }, "edited"},
		{"right-edge tile flipped", func(t *testing.T, dir string) {
			flip(t, filepath.Join(dir, "tile", "1", "000.p", "2"), 40) // read by Open
		}, "does not match its checkpoint"},
		{"bundle removed", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "tile", "entries", "001"))) }, "no such file"},
		{"log truncated below its checkpoint", func(t *testing.T, dir string) {
			must(t, os.Truncate(filepath.Join(dir, journalFile), journalOffsets(t, dir)[10]))
		}, "truncated"},
		{"checkpoint signature flipped", func(t *testing.T, dir string) {
			ents, _ := os.ReadDir(filepath.Join(dir, checkpointDir))
			flip(t, filepath.Join(dir, checkpointDir, ents[0].Name()), -10)
		}, "checkpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := build(t)
			must(t, openAudit(dir))
			tc.edit(t, dir)
			if err := openAudit(dir); err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Open and Audit of an edited log: %v, want an error with %q", err, tc.errHas)
			}
		})
	}
	t.Run("edited while open, caught by Audit", func(t *testing.T) {
		dir := build(t)
		l := openLog(t, dir)
		must(t, l.Audit(t.Context()))
		flip(t, filepath.Join(dir, "tile", "entries", "001"), 300)
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
