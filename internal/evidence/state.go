package evidence

// Reading the tree's state at Open and catching up with other processes:
// the right edge of the tree comes from the tiles below the journal's
// start (at most 255 full tiles per level) and from re-hashing the
// journal, so the cost does not grow with the log.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// load reads the tree's state (Open, writer lock held): a new log gets an
// empty journal.
func (l *Log) load(ctx context.Context) error {
	p := filepath.Join(l.dir, journalFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeFileSync(p, journalHead(0), 0o600); err != nil {
			return fmt.Errorf("evidence journal: %w", err)
		}
		f, err = os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return fmt.Errorf("evidence journal: %w", err)
	}
	// After a crash, rotated journals whose tiles may not be durable come
	// first: the tree is rebuilt from the oldest one's start.
	retired, err := retiredJournals(l.dir)
	if err != nil {
		f.Close()
		return err
	}
	var later []*os.File
	defer func() {
		for _, f := range later {
			if f != nil {
				f.Close()
			}
		}
	}()
	for _, s := range retired {
		r, err := os.OpenFile(retiredPath(l.dir, s), os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			f.Close()
			return fmt.Errorf("evidence journal: %w", err)
		}
		later = append(later, r)
	}
	if len(later) > 0 {
		later = append(later, f)
		f, later = later[0], later[1:]
	}
	start, fi, err := journalStart(f)
	if err != nil {
		f.Close()
		return err
	}
	t, err := treeAt(l.dir, start)
	if err != nil {
		f.Close()
		return err
	}
	l.tree = t
	l.jf, l.jfi, l.jStart, l.jEnd, l.joff = f, fi, start, int64(journalHeader), nil
	if err := l.replayJournal(ctx); err != nil {
		return err
	}
	for i, f := range later {
		later[i] = nil // switchJournal owns it
		if err := l.switchJournal(ctx, f); err != nil {
			return err
		}
	}
	if len(retired) > 0 {
		// Their entries' tiles are rewritten where missing: make them
		// durable, then the retired journals can go.
		if err := l.syncTiles(); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
		for _, s := range retired {
			if err := os.Remove(retiredPath(l.dir, s)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("evidence: %w", err)
			}
		}
	}
	return l.dropOrphans()
}

// retiredJournals lists the starts of the rotated journals kept until the
// tiles below the next one's start are durable (see rotateJournal),
// smallest first.
func retiredJournals(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence dir: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), journalFile+".")
		if !ok || len(rest) != 20 {
			continue
		}
		if s, err := strconv.ParseUint(rest, 10, 64); err == nil {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// dropOrphans removes the full tiles and bundles beyond the tree (Open,
// writer lock held): Append writes a batch's tiles while the journal's
// fsync runs, so a power cut can keep tiles whose entries the journal
// lost. Left there, they would read as an edit once other entries take
// those places and a later crash loses those entries' tiles in turn.
func (l *Log) dropOrphans() error {
	for L := -1; ; L++ {
		shift := 0
		if L > 0 {
			shift = tileHeight * L
		}
		lv := "entries"
		if L >= 0 {
			lv = strconv.Itoa(L)
		}
		if _, err := os.Stat(filepath.Join(l.dir, "tile", lv)); errors.Is(err, fs.ErrNotExist) {
			if L > 0 {
				return nil
			}
			continue
		}
		// The first full tile of the level the tree does not have, and
		// those after it.
		for k := (l.n >> shift) / tileWidth; ; k++ {
			p := tilePath(L, k, tileWidth)
			err := os.Remove(filepath.Join(l.dir, filepath.FromSlash(p)))
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return fmt.Errorf("evidence: remove %s beyond the tree: %w", p, err)
			}
			l.log.Warn("evidence: removed a tile beyond the tree (crash during append)", "tile", p)
		}
	}
}

func journalHead(start uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(journalMagic), start)
}

// journalStart reads the journal's header: the index of its first entry.
func journalStart(f *os.File) (uint64, os.FileInfo, error) {
	var h [journalHeader]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, nil, fmt.Errorf("evidence journal: header: %w", err)
	}
	if string(h[:len(journalMagic)]) != journalMagic {
		return 0, nil, errors.New("evidence journal: not a journal (bad magic)")
	}
	start := binary.BigEndian.Uint64(h[len(journalMagic):])
	if start%tileWidth != 0 {
		return 0, nil, fmt.Errorf("evidence journal: starts at entry %d, not a bundle boundary", start)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("evidence journal: %w", err)
	}
	return start, fi, nil
}

// treeAt builds the right edge of the tree of size start (a multiple of
// tileWidth) from its full tiles: the tail of each level L ≥ 1 is the roots
// of the full tiles of level L-1 that its incomplete tile covers.
func treeAt(dir string, start uint64) (tree, error) {
	var t tree
	t.n = start
	t.tails = [][]tlog.Hash{make([]tlog.Hash, 0, tileWidth)}
	for L := 1; start>>(tileHeight*L) > 0; L++ {
		cnt := start >> (tileHeight * L) // complete hashes at level 8L
		if w := cnt % tileWidth; w > 0 {
			// The partial tile the journal's rotation wrote and fsynced.
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tilePath(L, cnt/tileWidth, int(w)))))
			if err == nil && len(b) == int(w)*tlog.HashSize {
				t.tails = append(t.tails, append(make([]tlog.Hash, 0, tileWidth), splitHashes(b)...))
				continue
			}
		}
		tail := make([]tlog.Hash, 0, tileWidth)
		for k := cnt &^ (tileWidth - 1); k < cnt; k++ {
			data, err := readTile(dir, L-1, k)
			if err != nil {
				return t, err
			}
			tail = append(tail, subtreeHash(splitHashes(data)))
		}
		t.tails = append(t.tails, tail)
	}
	// The compact range: each level's tail split into perfect subtrees,
	// largest first.
	for L := len(t.tails) - 1; L >= 0; L-- {
		nodes := t.tails[L]
		for b := tileHeight - 1; b >= 0; b-- {
			if len(nodes)&(1<<b) == 0 {
				continue
			}
			off := len(nodes) &^ (1<<(b+1) - 1)
			t.frontier = append(t.frontier, subtreeHash(nodes[off:off+1<<b]))
		}
	}
	return t, nil
}

// subtreeHash is the RFC 6962 hash of a perfect subtree given its
// children at one level (a power of two of them).
func subtreeHash(nodes []tlog.Hash) tlog.Hash {
	hs := append([]tlog.Hash(nil), nodes...)
	for len(hs) > 1 {
		for i := 0; i < len(hs)/2; i++ {
			hs[i] = tlog.NodeHash(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0]
}

// readTile reads the full hash tile (L, N).
func readTile(dir string, L int, N uint64) ([]byte, error) {
	p := tilePath(L, N, tileWidth)
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	if err != nil {
		return nil, fmt.Errorf("evidence %s: %w", p, err)
	}
	if len(b) != tileWidth*tlog.HashSize {
		return nil, fmt.Errorf("evidence %s: %d bytes, want %d", p, len(b), tileWidth*tlog.HashSize)
	}
	return b, nil
}

// splitHashes splits tile data into its hashes.
func splitHashes(data []byte) []tlog.Hash {
	out := make([]tlog.Hash, len(data)/tlog.HashSize)
	for i := range out {
		copy(out[i][:], data[i*tlog.HashSize:])
	}
	return out
}

// readBundle reads the full entry bundle N.
func readBundle(dir string, N uint64) ([]byte, error) {
	p := tilePath(-1, N, tileWidth)
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	if err != nil {
		return nil, fmt.Errorf("evidence %s: %w", p, err)
	}
	return b, nil
}

// replayJournal reads the journal from l.jEnd to its end (writer lock
// held), records each entry's offset and pushes the entries the tree does
// not have yet, checking the tiles they complete against the disk and
// writing those missing. A torn or zero-filled tail (a crash during an
// append, never acknowledged) is cut off.
func (l *Log) replayJournal(ctx context.Context) error {
	fi, err := l.jf.Stat()
	if err != nil {
		return fmt.Errorf("evidence journal: %w", err)
	}
	size := fi.Size()
	if size < l.jEnd {
		return fmt.Errorf("evidence journal shrank from %d to %d bytes (truncated by hand?)", l.jEnd, size)
	}
	b := make([]byte, size-l.jEnd)
	if _, err := l.jf.ReadAt(b, l.jEnd); err != nil && err != io.EOF {
		return fmt.Errorf("evidence journal: %w", err)
	}
	var files []tileFile
	off := l.jEnd
	h := sha256.New()
	var sum [sha256.Size]byte
	for i := 0; ; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rest := b[off-l.jEnd:]
		if len(rest) == 0 {
			break
		}
		var n int
		if len(rest) >= entryHeader {
			n = int(binary.BigEndian.Uint16(rest))
		}
		if len(rest) < entryHeader || len(rest) < entryHeader+n || n == 0 {
			if len(rest) >= entryHeader && n == 0 && !allZero(rest) {
				return fmt.Errorf("evidence journal: entry %d at offset %d has length 0", l.jStart+uint64(len(l.joff)), off)
			}
			l.log.Warn("evidence journal: dropping a torn last entry (crash during append)", "entry", l.jStart+uint64(len(l.joff)), "offset", off)
			if err := l.jf.Truncate(off); err != nil {
				return fmt.Errorf("evidence journal: truncate torn entry: %w", err)
			}
			break
		}
		if n <= NonceSize {
			return fmt.Errorf("evidence journal: entry %d at offset %d: length %d out of range", l.jStart+uint64(len(l.joff)), off, n)
		}
		idx := l.jStart + uint64(len(l.joff))
		l.joff = append(l.joff, off)
		if idx >= l.n {
			if idx != l.n {
				return fmt.Errorf("evidence journal: entry %d follows a tree of %d", idx, l.n)
			}
			e := rest[entryHeader : entryHeader+n]
			h.Reset()
			h.Write([]byte{0})
			h.Write(e)
			files = l.push(tlog.Hash(h.Sum(sum[:0])), rest[:entryHeader+n], files)
			if len(files) >= 64 {
				if err := l.checkTiles(files); err != nil {
					return err
				}
				files = files[:0]
			}
		}
		off += int64(entryHeader + n)
	}
	l.jEnd = off
	return l.checkTiles(files)
}

// torn reports whether got, the same length as want, is want up to some
// point and zeros from there on: what an unsynced write cut by a crash can
// leave.
func torn(got, want []byte) bool {
	k := 0
	for k < len(got) && got[k] == want[k] {
		k++
	}
	return allZero(got[k:])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkTiles compares tiles recomputed from the journal with the disk:
// missing, short or zero-filled ones (a crash: tiles are fsynced only at
// the journal's rotation, so a power cut can lose them, cut them short or,
// on some file systems, leave their length with zeros for their data) are
// written, different ones are an edit.
func (l *Log) checkTiles(files []tileFile) error {
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(f.path)))
		switch {
		case err == nil && bytes.Equal(got, f.data):
		case err == nil && len(got) == len(f.data) && !torn(got, f.data):
			return fmt.Errorf("evidence log edited: %s does not match the journal's entries", f.path)
		case err == nil || errors.Is(err, fs.ErrNotExist):
			if err := writeTile(l.dir, f); err != nil {
				return fmt.Errorf("evidence: %w", err)
			}
		default:
			return fmt.Errorf("evidence: %w", err)
		}
	}
	return nil
}

// refreshLocked catches up with what other processes appended since this
// Log last wrote or read the journal (mu and writer lock held).
func (l *Log) refreshLocked() error {
	if l.broken != nil {
		return nil // writes refuse anyway; reads use what was known
	}
	p := filepath.Join(l.dir, journalFile)
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("evidence journal: %w", err)
	}
	ctx := context.Background()
	if os.SameFile(fi, l.jfi) {
		if fi.Size() == l.jEnd {
			return nil
		}
		return l.replayJournal(ctx)
	}
	// Another process rotated the journal.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("evidence journal: %w", err)
	}
	return l.switchJournal(ctx, f)
}

// syncLocked is refreshLocked, then, on a shared log, the catch-up with
// the store (pullLocked): what an append or a Refresh needs first.
func (l *Log) syncLocked(ctx context.Context) error {
	if err := l.refreshLocked(); err != nil {
		return err
	}
	return l.pullLocked(ctx)
}

// switchJournal moves on from the journal this Log read to f, a journal
// that starts at or after it (a rotation), taking the entries between from
// the bundles; it owns f.
func (l *Log) switchJournal(ctx context.Context, f *os.File) error {
	start, nfi, err := journalStart(f)
	if err != nil {
		f.Close()
		return err
	}
	if start < l.jStart {
		f.Close()
		return fmt.Errorf("evidence journal: starts at %d, before %d", start, l.jStart)
	}
	// Entries between this tree and the new journal are in full bundles.
	var files []tileFile
	for b := l.n / tileWidth; b*tileWidth < start; b++ {
		data, err := readBundle(l.dir, b)
		if err != nil {
			f.Close()
			return err
		}
		i := b * tileWidth
		err = bundleEntries(data, func(e []byte) error {
			if i >= l.n {
				enc := binary.BigEndian.AppendUint16(nil, uint16(len(e)))
				files = l.push(LeafHash(e[:NonceSize], e[NonceSize:]), append(enc, e...), files)
			}
			i++
			return nil
		})
		if err == nil && i != (b+1)*tileWidth {
			err = fmt.Errorf("%d entries", i-b*tileWidth)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("evidence %s: %w", tilePath(-1, b, tileWidth), err)
		}
		if err := l.checkTiles(files); err != nil {
			f.Close()
			return err
		}
		files = files[:0]
	}
	l.jf.Close()
	l.jf, l.jfi, l.jStart, l.jEnd, l.joff = f, nfi, start, int64(journalHeader), l.joff[:0]
	return l.replayJournal(ctx)
}

// checkLatest checks the latest kept checkpoint against the tree (Open):
// the log must extend it.
func (l *Log) checkLatest() error {
	sizes, err := checkpointSizes(l.dir)
	if err != nil || len(sizes) == 0 {
		return err
	}
	c, err := readCheckpoint(l.dir, l.key.Name, l.chain, sizes[len(sizes)-1])
	if err != nil {
		return err
	}
	if c.Size > l.n {
		return fmt.Errorf("evidence log truncated: it holds %d entries but its checkpoint of size %d commits to more; it does not extend its last checkpoint", l.n, c.Size)
	}
	root, err := l.rootAt(c.Size)
	if err != nil {
		return err
	}
	if root != c.Root {
		return fmt.Errorf("evidence log does not match its checkpoint of size %d: the tree hashes to root %s, checkpoint says %s (entries edited, removed or reordered)",
			c.Size, b64(root), b64(c.Root))
	}
	l.last = c
	// A restored copy (CopyLive leaves partial tiles out) gets the partial
	// tiles the checkpoint file names back.
	if c.Size == l.n {
		for _, f := range l.partials() {
			if _, err := os.Stat(filepath.Join(l.dir, filepath.FromSlash(f.path))); errors.Is(err, fs.ErrNotExist) {
				if err := writeTile(l.dir, f); err != nil {
					return fmt.Errorf("evidence: %w", err)
				}
			}
		}
	}
	return nil
}

// rootAt is the root of the tree's first n leaves (n at most the size).
func (l *Log) rootAt(n uint64) (tlog.Hash, error) {
	if n == l.n {
		return frontierRoot(l.frontier), nil
	}
	return tlog.TreeHash(int64(n), l.hashReader())
}

// reloadKeys picks up a key rotation made by another process (mu held).
func (l *Log) reloadKeys() error {
	ents, err := os.ReadDir(filepath.Join(l.dir, rotationDir))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 2*len(l.rotations)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evidence key rotations: %w", err)
	}
	k, err := LoadKey(l.dir)
	if err != nil {
		return err
	}
	k, rots, chain, err := loadChain(l.dir, k, l.log)
	if err != nil {
		return err
	}
	l.key, l.rotations, l.chain = k, rots, chain
	return nil
}

// tileHashes reads stored hashes (tlog.HashReader) from the tiles of a tree
// of size n: full tiles from disk, the incomplete ones from the tails.
type tileHashes struct {
	dir   string
	n     uint64
	tails [][]tlog.Hash
	cache map[tlog.Tile][]byte
}

// hashReader returns a tlog.HashReader for the tree as it is now (mu held
// or the Log not shared yet).
func (l *Log) hashReader() *tileHashes {
	r := &tileHashes{dir: l.dir, n: l.n, cache: map[tlog.Tile][]byte{}}
	for _, t := range l.tails {
		r.tails = append(r.tails, append([]tlog.Hash(nil), t...))
	}
	return r
}

// hashes is hashReader with mu taken.
func (l *Log) hashes() *tileHashes {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hashReader()
}

var _ tlog.HashReader = (*tileHashes)(nil)

func (r *tileHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		t := tlog.TileForIndex(tileHeight, x)
		tail := (r.n >> (tileHeight * t.L)) / tileWidth // the level's incomplete tile
		var data []byte
		switch {
		case uint64(t.N) < tail:
			t.W = tileWidth
			if data = r.cache[t]; data == nil {
				var err error
				if data, err = readTile(r.dir, t.L, uint64(t.N)); err != nil {
					return nil, err
				}
				r.cache[t] = data
			}
		case uint64(t.N) == tail && t.L < len(r.tails) && len(r.tails[t.L]) >= t.W:
			t.W = len(r.tails[t.L])
			for _, h := range r.tails[t.L] {
				data = append(data, h[:]...)
			}
		default:
			return nil, fmt.Errorf("stored hash %d is not in the tree of size %d", x, r.n)
		}
		h, err := tlog.HashFromTile(t, data, x)
		if err != nil {
			return nil, fmt.Errorf("stored hash %d: %w", x, err)
		}
		out[i] = h
	}
	return out, nil
}
