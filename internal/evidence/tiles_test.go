package evidence

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// httpTiles is a standard tiles client's tile reader: it fetches the
// C2SP tlog-tiles paths of x/mod's tiles over HTTP.
type httpTiles struct {
	t    *testing.T
	base string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) get(path string) ([]byte, error) {
	resp, err := http.Get(h.base + "/" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// c2spPath turns x/mod's tile path (tile/8/L/N, tile/8/data/N) into the
// C2SP one (tile/L/N, tile/entries/N).
func c2spPath(t tlog.Tile) string {
	p := strings.Replace(t.Path(), "tile/8/data/", "tile/entries/", 1)
	return strings.Replace(p, "tile/8/", "tile/", 1)
}

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := h.get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestStandardTilesClient: a client that knows only the public key, C2SP
// tlog-tiles and x/mod's tlog fetches the checkpoint, hash tiles and entry
// bundles from the log directory served as static files, and proves
// entries included, without this package.
func TestStandardTilesClient(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	const total = tileWidth*tileWidth + 2*tileWidth + 17 // full tiles on two levels, partial ones on three
	recs := make([][]byte, total)
	for i := range recs {
		recs[i] = fmt.Appendf(nil, `{"n":%d,"case":"C-1"}`, i)
	}
	for i := 0; i < total; i += 8192 {
		appendN(t, l, recs[i:min(i+8192, total)])
	}
	_, err := l.Checkpoint(t.Context())
	must(t, err)
	vkey := l.Key().VerifierKey()
	must(t, l.Close())

	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	cl := httpTiles{t: t, base: srv.URL}
	raw, err := cl.get("checkpoint")
	must(t, err)
	v, err := note.NewVerifier(vkey)
	must(t, err)
	n, err := note.Open(raw, note.VerifierList(v))
	must(t, err)
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	must(t, err)
	root, err := tlog.ParseHash(lines[2])
	must(t, err)
	if size != total {
		t.Fatalf("checkpoint size %d, want %d", size, total)
	}
	tree := tlog.Tree{N: size, Hash: root}
	thr := tlog.TileHashReader(tree, cl)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, i := range []int64{0, 255, 256, total - 1, total - 18, tileWidth * tileWidth, rng.Int64N(total), rng.Int64N(total)} {
		// The entry from its bundle (full or partial).
		bt := tlog.Tile{H: 8, L: -1, N: i / 256, W: 256}
		if last := size / 256; bt.N == last {
			bt.W = int(size % 256)
		}
		bundle, err := cl.get(c2spPath(bt))
		must(t, err)
		var entry []byte
		for k := int64(0); k <= i%256; k++ {
			ln := int(binary.BigEndian.Uint16(bundle))
			entry, bundle = bundle[2:2+ln], bundle[2+ln:]
		}
		if !bytes.Equal(entry[NonceSize:], recs[i]) {
			t.Fatalf("entry %d: bundle holds %q, want %q", i, entry[NonceSize:], recs[i])
		}
		proof, err := tlog.ProveRecord(size, i, thr)
		must(t, err)
		if err := tlog.CheckRecord(proof, size, root, i, tlog.RecordHash(entry)); err != nil {
			t.Fatalf("entry %d: inclusion: %v", i, err)
		}
	}
	// A changed hash tile is caught by the client (the tiles must hash
	// to the signed root).
	p := filepath.Join(dir, "tile", "1", "000")
	b, err := os.ReadFile(p)
	must(t, err)
	b[5] ^= 1
	must(t, os.WriteFile(p, b, 0o644))
	if _, err := tlog.ProveRecord(size, 3, tlog.TileHashReader(tree, cl)); err == nil {
		t.Fatal("a client accepted an edited hash tile")
	}
}

// TestTwoWriters: two Logs on one directory (the server and an import or
// an evidence command beside it) append in turns, across journal rotations;
// each catches up with the other before it writes, and the result is one
// log holding every batch in the order appended.
func TestTwoWriters(t *testing.T) {
	smallJournal(t)
	dir := t.TempDir()
	a, b := openLog(t, dir), openLog(t, dir)
	rng := rand.New(rand.NewPCG(7, 8))
	var want [][]byte
	for round := range 40 {
		w, other := a, b
		if round%2 == 1 {
			w, other = b, a
		}
		var batch [][]byte
		for range 1 + rng.IntN(90) {
			batch = append(batch, fmt.Appendf(nil, `{"round":%d,"i":%d}`, round, len(want)+len(batch)))
		}
		first := appendN(t, w, batch)
		if first != uint64(len(want)) {
			t.Fatalf("round %d: appended at %d, want %d (the writer did not catch up)", round, first, len(want))
		}
		want = append(want, batch...)
		if round%7 == 3 {
			c, err := other.Checkpoint(t.Context())
			must(t, err)
			if c.Size != uint64(len(want)) {
				t.Fatalf("round %d: the other Log checkpointed size %d, want %d", round, c.Size, len(want))
			}
		}
	}
	must(t, a.Refresh(t.Context()))
	if a.Size() != uint64(len(want)) {
		t.Fatalf("after Refresh: %d leaves, want %d", a.Size(), len(want))
	}
	c := openLog(t, dir)
	res, err := c.AuditResult(t.Context())
	must(t, err)
	if res.Leaves != uint64(len(want)) || res.Checkpoints == 0 {
		t.Fatalf("audit %+v, want %d leaves", res, len(want))
	}
	i := 0
	must(t, c.Entries(t.Context(), 0, c.Size(), func(_ uint64, _, rec []byte) error {
		if !bytes.Equal(rec, want[i]) {
			t.Fatalf("entry %d is %q, want %q", i, rec, want[i])
		}
		i++
		return nil
	}))
	// Key rotation needs the log to itself.
	if _, err := c.RotateKey(t.Context(), "op"); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("RotateKey with other Logs open: %v", err)
	}
	appendN(t, a, [][]byte{[]byte(`{"after":"refused rotation"}`)})
}

// oldLog writes a log of the earlier layout (data, index, hashes) with n
// entries and a checkpoint at cp, as the previous release did.
func oldLog(t *testing.T, dir string, n, cp int) [][]byte {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, checkpointDir), 0o700))
	k, _, err := loadOrCreateKey(dir, "takedown.test/evidence")
	must(t, err)
	var data, index []byte
	var recs, leaves [][]byte
	var hs memHashes
	for i := range n {
		rec := eventRecord(t, i, "A", t0)
		nonce := bytes.Repeat([]byte{byte(i)}, NonceSize)
		index = binary.BigEndian.AppendUint64(index, uint64(len(data)))
		data = binary.BigEndian.AppendUint32(data, uint32(len(rec)))
		data = append(append(data, nonce...), rec...)
		recs = append(recs, rec)
		leaves = append(leaves, append(nonce, rec...))
		s, err := tlog.StoredHashes(int64(i), leaves[i], hs)
		must(t, err)
		hs = append(hs, s...)
		if i+1 == cp {
			root, err := tlog.TreeHash(int64(cp), hs)
			must(t, err)
			c, err := signCheckpoint(k, uint64(cp), root)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, checkpointDir, fmt.Sprintf("%020d", cp)), c.Note, 0o644))
		}
	}
	var hb []byte
	for _, h := range hs {
		hb = append(hb, h[:]...)
	}
	must(t, os.WriteFile(filepath.Join(dir, "data"), data, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "index"), index, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "hashes"), hb, 0o600))
	return recs
}

// TestMigrateOldLayout: a log of the earlier layout opens once migrated to
// tlog-tiles, with the same entries, nonces and checkpoint; an edited one
// is refused and left as it was.
func TestMigrateOldLayout(t *testing.T) {
	dir := t.TempDir()
	recs := oldLog(t, dir, 600, 530)
	appendFile(t, filepath.Join(dir, "data"), []byte{0, 0, 1, 0, 7, 7}) // a torn last entry
	l := openLog(t, dir)
	if l.Size() != 600 {
		t.Fatalf("migrated log has %d entries, want 600", l.Size())
	}
	for _, f := range oldFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Fatalf("old file %s still there after migration: %v", f, err)
		}
	}
	res, err := l.AuditResult(t.Context())
	must(t, err)
	if res.Leaves != 600 || res.Checkpoints != 1 || res.Latest != 530 {
		t.Fatalf("audit after migration: %+v", res)
	}
	must(t, l.Entries(t.Context(), 0, 600, func(i uint64, nonce, rec []byte) error {
		if !bytes.Equal(rec, recs[i]) || !bytes.Equal(nonce, bytes.Repeat([]byte{byte(i)}, NonceSize)) {
			t.Fatalf("entry %d changed in the migration", i)
		}
		return nil
	}))
	appendN(t, l, [][]byte{eventRecord(t, 600, "A", t0)})
	_, err = l.Checkpoint(t.Context())
	must(t, err)
	must(t, l.Close())
	l = openLog(t, dir)
	if l.Size() != 601 {
		t.Fatalf("reopened: %d entries", l.Size())
	}

	t.Run("edited", func(t *testing.T) {
		dir := t.TempDir()
		oldLog(t, dir, 300, 280)
		p := filepath.Join(dir, "data")
		b, err := os.ReadFile(p)
		must(t, err)
		b[len(b)/2] ^= 0x20
		must(t, os.WriteFile(p, b, 0o600))
		if _, err := Open(t.Context(), dir, Options{}); err == nil || !strings.Contains(err.Error(), "does not match its checkpoint") {
			t.Fatalf("Open of an edited old log: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, journalFile)); !os.IsNotExist(err) {
			t.Fatalf("a refused migration made a journal: %v", err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
			t.Fatal("a refused migration changed the old data")
		}
	})
}

// TestCopyLiveTiles: a live copy of a log whose journal has rotated (full
// tiles below it, the journal above) opens as the same log: same size and
// root, audited, with the checkpoint's partial tiles back.
func TestCopyLiveTiles(t *testing.T) {
	smallJournal(t)
	dir := t.TempDir()
	l := openLog(t, dir)
	for i := range 7 {
		var batch [][]byte
		for j := range 100 {
			batch = append(batch, fmt.Appendf(nil, `{"i":%d}`, i*100+j))
		}
		appendN(t, l, batch)
	}
	c, err := l.Checkpoint(t.Context())
	must(t, err)
	lc, err := CopyLive(dir)
	must(t, err)
	defer lc.Close()
	if lc.Entries != 700 || lc.Checkpoint != 700 {
		t.Fatalf("copy: %d entries, checkpoint %d; want 700, 700", lc.Entries, lc.Checkpoint)
	}
	dst := t.TempDir()
	for _, lf := range lc.Files {
		if strings.Contains(lf.Name, ".p/") || lf.Name == "lock" || lf.Name == "wlock" {
			t.Fatalf("copy holds %s", lf.Name)
		}
		p := filepath.Join(dst, filepath.FromSlash(lf.Name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o700))
		b, err := io.ReadAll(lf.Open())
		must(t, err)
		if int64(len(b)) != lf.Size {
			t.Fatalf("%s: %d bytes, said %d", lf.Name, len(b), lf.Size)
		}
		must(t, os.WriteFile(p, b, 0o600))
	}
	l2 := openLog(t, dst)
	if l2.Size() != 700 || frontierRoot(l2.frontier) != c.Root {
		t.Fatalf("copy opens with %d entries, root %x; want 700, %x", l2.Size(), frontierRoot(l2.frontier), c.Root)
	}
	must(t, l2.Audit(t.Context()))
	for _, f := range l2.partials() {
		if _, err := os.Stat(filepath.Join(dst, filepath.FromSlash(f.path))); err != nil {
			t.Fatalf("partial tile of the checkpoint: %v", err)
		}
	}
}
