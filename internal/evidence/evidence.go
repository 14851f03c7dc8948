// Package evidence keeps a tamper-evident log of sinkhole events and custody
// actions: the log itself, its signing keys and their rotation, its signed
// checkpoints, and the proofs it gives (range, consistency, inclusion) in
// the text forms that evidence packages carry.
//
// The log is an append-only Merkle tree with RFC 6962 hashing, stored in
// one directory (the data dir's evidence/ folder) in the C2SP tlog-tiles
// layout (https://c2sp.org/tlog-tiles), so that any tiles client can fetch
// its checkpoint, hash tiles and entry bundles and check inclusion without
// this program. Every record (the pipeline passes each event's JSON-lines
// bytes; custody actions are records too) is stored exactly as given,
// behind a 16-byte random nonce: the tlog-tiles entry is nonce || record,
// and its leaf hash SHA-256(0x00 || nonce || record), so that an inclusion
// proof does not let anyone confirm a guess of a neighbouring record.
// Signed checkpoints (C2SP tlog-checkpoint notes, Ed25519) are written
// periodically and all kept.
//
// Opening, appending and proving cost the same at any size: the tree's
// state is read from the few tiles on its right edge and from the journal
// (at most journalMaxEntries entries), never from the whole log. Audit
// re-hashes everything.
//
// Several processes may have the log open at once (the server, and the
// evidence commands or an import run beside it): every write (an append
// batch, a checkpoint, a key rotation) holds the writer lock (flock of
// wlock) only while it runs, and first catches up with what other
// processes appended (refreshLocked). Migrating an old log and rotating the
// key need the log to themselves (an exclusive flock of lock, which every
// open Log holds shared).
//
// It is not a transparency log server: it has no witnesses and serves no
// HTTP itself (the directory can be served as static files). It does not
// write or check evidence packages (internal/evidence/bundle does, from this
// package's proofs), implement SSHSIG (internal/sshsig) or print anything
// (internal/cli); it does not interpret records.
//
// Files in the directory:
//
//	checkpoint          the latest signed checkpoint (C2SP tlog-tiles)
//	tile/<L>/<N>[.p/<W>]       hash tiles, height 8 (C2SP tlog-tiles)
//	tile/entries/<N>[.p/<W>]   entry bundles: 2-byte big-endian length, nonce || record
//	journal             entries from a multiple of 256 on: the only file fsynced per Append
//	journal.<start>     a rotated journal, kept until the tiles below the next one's start are durable
//	checkpoints/        every signed checkpoint, one file per tree size (20 digits)
//	key                 Ed25519 note signer key, mode 0600
//	key.pub             note verifier key and OpenSSH public key
//	rotations/          signed key rotation records: <size>.json and its SSHSIG, <size>.json.sig
//	key.new             the next key while a rotation is in progress, mode 0600
//	lock, wlock         flocked: lock shared by every open Log, wlock by a writer while it writes
//
// Logs of the earlier layout (data, index, hashes) are migrated once, at
// Open (migrate.go).
package evidence

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sys/unix"
)

// NonceSize is the size of the random nonce stored before each record.
const NonceSize = 16

// MaxEntrySize is the bound of one tlog-tiles entry (nonce and record):
// entry bundles prefix each entry with a 2-byte length.
const MaxEntrySize = 1<<16 - 1

// DefaultMaxRecordSize is the bound of one record, and the largest
// Options.MaxRecordSize: what fits one entry behind its nonce.
const DefaultMaxRecordSize = MaxEntrySize - NonceSize

const (
	checkpointDir  = "checkpoints"
	checkpointFile = "checkpoint" // C2SP tlog-tiles: the latest checkpoint
	journalFile    = "journal"
	journalMagic   = "TDEVJNL1"
	journalHeader  = len(journalMagic) + 8 // magic, first entry's index (big-endian)
	entryHeader    = 2                     // bundle entry length
	tileHeight     = 8
	tileWidth      = 1 << tileHeight
)

// The journal is rotated (cut back to the current partial bundle, once
// every tile below is made durable) when it holds this many entries or
// bytes: it bounds what Open re-hashes. Variables for the tests.
var (
	tileWriters              = 4 // goroutines writing one batch's tiles
	journalMaxEntries uint64 = 1 << 18
	journalMaxBytes   int64  = 64 << 20
)

// Options configures a Log. The zero value is usable.
type Options struct {
	// Origin names the log in its checkpoints and is the key's name. It is
	// used only when the key is made (first start); afterwards the key's
	// name wins. Default: "takedown.invalid/evidence/<12 random hex>".
	Origin string
	// CheckpointEvery is the period of Run's checkpoints. Default 60s.
	CheckpointEvery time.Duration
	// MaxRecordSize bounds one record. Default and upper bound
	// DefaultMaxRecordSize.
	MaxRecordSize int
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for custody records; nil means time.Now.
	Now func() time.Time
	// Registerer receives the takedown_evidence_* metrics; nil skips them.
	Registerer prometheus.Registerer
	// Shared, when set, holds the one log of a deployment whose nodes
	// share a store (shared.go): this directory is then that node's
	// replica of it, and every append goes through the store.
	Shared SharedStore
}

// Log is an append-only Merkle log on local disk. Its methods are safe for
// concurrent use. Lock order: mu, then the wlock flock.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File // flock shared while open
	wlk  *os.File // flock exclusive while writing
	met  *metrics

	mu        sync.Mutex
	key       *Key       // the current signing key (see rotate.go)
	chain     KeyChain   // every key the log has had, with the sizes each signs
	rotations []Rotation // the signed rotation records, oldest first

	jf      *os.File    // the journal, O_APPEND
	jfi     os.FileInfo // its identity, to notice another process's rotation
	jStart  uint64      // index of its first entry (a multiple of tileWidth)
	jEnd    int64       // bytes of it holding entries [jStart, n)
	joff    []int64     // offset in it of each entry from jStart
	tree                // the tree's right edge
	last    Checkpoint  // latest checkpoint (Size 0 and no Note if none yet)
	broken  error       // set when a write failed half-way; writes refuse afterwards
	syncing chan error  // the last rotation's background sync (syncTiles), nil when none
	// keysBehind: a shared log's rotations are not all installed yet
	// (installRotations failed; shared.go).
	keysBehind bool
	buf        []byte
}

// tree is the right edge of a Merkle tree: what appending needs, and what
// the tiles of its incomplete right side hold.
type tree struct {
	n        uint64        // leaves
	frontier []tlog.Hash   // compact range of [0,n): its perfect subtrees' hashes, largest (leftmost) first
	tails    [][]tlog.Hash // tails[L]: the hashes of the incomplete tile of level L
	pend     []byte        // entries of the incomplete bundle, bundle-encoded
}

// tileFile is a tile or bundle to be written.
type tileFile struct {
	path string
	data []byte
}

// Open opens (or creates) the log in dir. At first start it makes the
// Ed25519 key (mode 0600). It reads the tree's right edge from the tiles,
// re-hashes the journal, writes the tiles a crash left out, checks the
// latest checkpoint against the tree, and refuses to start, saying why,
// when the log does not extend it. A log in the earlier layout is migrated
// first. Other processes may have the log open too.
func Open(ctx context.Context, dir string, opts Options) (*Log, error) {
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = time.Minute
	}
	if opts.MaxRecordSize <= 0 || opts.MaxRecordSize > DefaultMaxRecordSize {
		opts.MaxRecordSize = DefaultMaxRecordSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, checkpointDir), 0o700); err != nil {
		return nil, fmt.Errorf("evidence dir: %w", err)
	}
	l := &Log{dir: dir, opts: opts, log: lg, met: newMetrics(opts.Registerer)}
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
	var err error
	for _, f := range []struct {
		p    **os.File
		name string
	}{{&l.lock, "lock"}, {&l.wlk, "wlock"}} {
		if *f.p, err = os.OpenFile(filepath.Join(dir, f.name), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			return nil, fmt.Errorf("evidence lock: %w", err)
		}
	}
	if err := flock(l.lock, syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return nil, fmt.Errorf("evidence log %s is held by a process that needs it alone (a migration or key rotation): %w", dir, err)
	}
	if err := flock(l.wlk, syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("evidence writer lock: %w", err)
	}
	defer flock(l.wlk, syscall.LOCK_UN)
	if opts.Shared != nil {
		if err := shareKey(ctx, dir, opts); err != nil {
			return nil, err
		}
	}
	key, made, err := loadOrCreateKey(dir, opts.Origin)
	if err != nil {
		return nil, err
	}
	if made {
		lg.Info("evidence key made", "origin", key.Name, "fingerprint", key.Fingerprint())
	} else if opts.Origin != "" && opts.Origin != key.Name {
		lg.Warn("evidence origin differs from the key's name; keeping the key's", "configured", opts.Origin, "origin", key.Name)
	}
	if key, l.rotations, l.chain, err = loadChain(dir, key, lg); err != nil {
		return nil, err
	}
	l.key = key
	if err := l.migrate(ctx); err != nil {
		return nil, err
	}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	if err := l.checkLatest(); err != nil {
		return nil, err
	}
	if opts.Shared != nil {
		if err := l.joinShared(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	l.met.checkpoint.Set(float64(l.last.Size))
	lg.Info("evidence log open", "dir", dir, "leaves", l.n, "checkpoint", l.last.Size)
	return l, nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// Exists reports whether dir holds an evidence log (of either layout).
func Exists(dir string) bool {
	for _, name := range []string{journalFile, "data"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// Key returns the log's signing key.
func (l *Log) Key() *Key {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.key
}

// Size returns the number of leaves this Log knows of: all of them as of
// its last write or Refresh (another process may have appended since).
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Refresh catches up with what other processes appended and, on a shared
// log (Options.Shared), with what the store holds beyond this replica.
func (l *Log) Refresh(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := l.lockWriter()
	if err != nil {
		return err
	}
	defer unlock()
	return l.syncLocked(ctx)
}

// lockWriter takes the writer lock (mu held) and returns its release.
func (l *Log) lockWriter() (func(), error) {
	if l.wlk == nil {
		return nil, errors.New("evidence log closed")
	}
	if err := flock(l.wlk, syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("evidence writer lock: %w", err)
	}
	return func() { flock(l.wlk, syscall.LOCK_UN) }, nil
}

// Append adds records as consecutive leaves and returns the index of the
// first. It writes the batch with one write and one fsync of the journal,
// so it is durable on return. A record must not be empty, contain a
// newline (packages ship records one per line) or exceed MaxRecordSize.
func (l *Log) Append(ctx context.Context, records [][]byte) (first uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for i, r := range records {
		switch {
		case len(r) == 0:
			return 0, fmt.Errorf("evidence append: record %d is empty", i)
		case len(r) > l.opts.MaxRecordSize:
			return 0, fmt.Errorf("evidence append: record %d has %d bytes, more than %d", i, len(r), l.opts.MaxRecordSize)
		case bytes.IndexByte(r, '\n') >= 0:
			return 0, fmt.Errorf("evidence append: record %d contains a newline", i)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := l.lockWriter()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := l.syncLocked(ctx); err != nil {
		return 0, err
	}
	return l.appendLocked(ctx, records, nil)
}

// appendLocked is Append with mu and the writer lock held, the log caught
// up (syncLocked) and the records checked. On a shared log the entries go
// to the store first, through put (nil: the store's AddEvidenceEntries).
func (l *Log) appendLocked(ctx context.Context, records [][]byte, put func(first uint64, entries [][]byte) error) (first uint64, err error) {
	if l.broken != nil {
		l.met.failures.WithLabelValues("append").Inc()
		return 0, fmt.Errorf("evidence append: log unusable until restart: %w", l.broken)
	}
	start := time.Now()
	if len(records) == 0 {
		return l.n, nil
	}
	nonces := make([]byte, NonceSize*len(records))
	if _, err := rand.Read(nonces); err != nil {
		return 0, fmt.Errorf("evidence nonce: %w", err)
	}
	if l.opts.Shared != nil {
		// The deployment's log is the shared store's: the entries go there
		// first, at this log's size (which the store refuses when another
		// node appended meanwhile), then here.
		if put == nil {
			put = func(first uint64, entries [][]byte) error {
				return l.opts.Shared.AddEvidenceEntries(ctx, first, entries)
			}
		}
		entries := make([][]byte, len(records))
		for i, r := range records {
			entries[i] = append(append(make([]byte, 0, NonceSize+len(r)), nonces[i*NonceSize:(i+1)*NonceSize]...), r...)
		}
		if err := put(l.n, entries); err != nil {
			if perr := l.pullLocked(ctx); perr != nil {
				err = errors.Join(err, perr)
			}
			return 0, fmt.Errorf("evidence append: %w", err)
		}
	}
	return l.writeLocked(start, nonces, records)
}

// writeLocked adds the entries nonce i || records[i] (checked; nonces holds
// NonceSize bytes for each) to the tree and writes them: the journal
// (fsynced), then the tiles they complete. start is when the append
// began, for its metric.
func (l *Log) writeLocked(start time.Time, nonces []byte, records [][]byte) (uint64, error) {
	buf := l.buf[:0]
	first := l.n
	var files []tileFile
	h := sha256.New()
	var sum [sha256.Size]byte
	for i, r := range records {
		nonce := nonces[i*NonceSize : (i+1)*NonceSize]
		at := len(buf)
		buf = binary.BigEndian.AppendUint16(buf, uint16(NonceSize+len(r)))
		buf = append(buf, nonce...)
		buf = append(buf, r...)
		h.Reset()
		h.Write([]byte{0})
		h.Write(nonce)
		h.Write(r)
		l.joff = append(l.joff, l.jEnd+int64(at))
		files = l.push(tlog.Hash(h.Sum(sum[:0])), buf[at:], files)
	}
	// From here on the in-memory tree is ahead of the disk until the
	// journal write succeeds; a failure marks the log unusable.
	if _, err := l.jf.Write(buf); err != nil {
		l.fail(err)
		return 0, fmt.Errorf("evidence append: write journal: %w", err)
	}
	// The tiles are derived: they are written without fsync (one fsync per
	// tile cost more than everything else an append does) and made durable
	// all at once when the journal is rotated; until then Open rewrites
	// from the journal what a crash loses or tears of them. They are
	// written while the journal's fsync runs (both wait on the disk): the
	// journal's entries are already in the page cache, which a kill -9
	// does not lose; a power cut that loses them can leave tiles beyond the
	// tree, which Open removes (dropOrphans).
	tilesDone := make(chan error, 1)
	go func() { tilesDone <- writeTiles(l.dir, files) }()
	syncErr := l.jf.Sync()
	tileErr := <-tilesDone
	if syncErr != nil {
		l.fail(syncErr)
		return 0, fmt.Errorf("evidence append: fsync journal: %w", syncErr)
	}
	l.jEnd += int64(len(buf))
	if tileErr != nil {
		l.fail(tileErr)
		return 0, fmt.Errorf("evidence append: %w", tileErr)
	}
	if l.n-l.jStart >= journalMaxEntries || l.jEnd >= journalMaxBytes {
		if err := l.rotateJournal(); err != nil {
			l.fail(err)
			return 0, fmt.Errorf("evidence append: %w", err)
		}
	}
	l.met.leaves.Add(float64(len(records)))
	l.met.batches.Inc()
	l.met.appendSec.Observe(time.Since(start).Seconds())
	if cap(buf) <= 4<<20 {
		l.buf = buf
	}
	return first, nil
}

// push adds leaf number l.n (its hash, and its entry bundle-encoded) to the
// tree, and appends to files the entry bundle and hash tiles it completes.
func (l *tree) push(leaf tlog.Hash, enc []byte, files []tileFile) []tileFile {
	n := l.n
	l.pend = append(l.pend, enc...)
	if (n+1)%tileWidth == 0 {
		files = append(files, tileFile{tilePath(-1, n/tileWidth, tileWidth), bytes.Clone(l.pend)})
		l.pend = l.pend[:0]
	}
	h := leaf
	files = l.addNode(0, n, h, files)
	level := 0
	for m := n; m&1 == 1; m >>= 1 {
		h = tlog.NodeHash(l.frontier[len(l.frontier)-1], h)
		l.frontier = l.frontier[:len(l.frontier)-1]
		level++
		if level%tileHeight == 0 {
			files = l.addNode(level/tileHeight, n, h, files)
		}
	}
	l.frontier = append(l.frontier, h)
	l.n++
	return files
}

// addNode records h, a hash at tree level tileHeight*L completed by leaf n,
// in the tail of tile level L, and emits the tile when it is full.
func (l *tree) addNode(L int, n uint64, h tlog.Hash, files []tileFile) []tileFile {
	for len(l.tails) <= L {
		l.tails = append(l.tails, make([]tlog.Hash, 0, tileWidth))
	}
	l.tails[L] = append(l.tails[L], h)
	if len(l.tails[L]) == tileWidth {
		k := (n+1)>>(tileHeight*L) - 1 // index of h at its level
		data := make([]byte, 0, tileWidth*tlog.HashSize)
		for _, x := range l.tails[L] {
			data = append(data, x[:]...)
		}
		files = append(files, tileFile{tilePath(L, k/tileWidth, tileWidth), data})
		l.tails[L] = l.tails[L][:0]
	}
	return files
}

// writeTiles writes tiles and bundles (not fsynced), tileWriters at a
// time: creating a file is mostly the file system's work (allocating its
// inode, which on ext4 without a journal means skipping the inodes deleted
// in the last minutes), and several overlap.
func writeTiles(dir string, files []tileFile) error {
	workers := min(tileWriters, (len(files)+3)/4)
	if workers <= 1 {
		for _, f := range files {
			if err := writeTile(dir, f); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					errs <- nil
					return
				}
				if err := writeTile(dir, files[i]); err != nil {
					next.Store(int64(len(files))) // the others stop too
					errs <- err
					return
				}
			}
		}()
	}
	var err error
	for range workers {
		err = errors.Join(err, <-errs)
	}
	return err
}

// writeTile writes a tile or bundle, not fsynced (see syncTiles). Raw
// system calls: a tile is written once and needs none of os.File's poller
// registration, which costs as much again.
func writeTile(dir string, f tileFile) error {
	p := filepath.Join(dir, filepath.FromSlash(f.path))
	open := func() (int, error) {
		return unix.Open(p, unix.O_CREAT|unix.O_TRUNC|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	}
	fd, err := open()
	if err == unix.ENOENT {
		if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			fd, err = open()
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	for b := f.data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		b = b[n:]
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// tilePath is the C2SP tlog-tiles path of tile (level L, index N, width
// w); level -1 is the entry bundles.
func tilePath(L int, N uint64, w int) string {
	lv := "entries"
	if L >= 0 {
		lv = strconv.Itoa(L)
	}
	s := fmt.Sprintf("%03d", N%1000)
	for N >= 1000 {
		N /= 1000
		s = fmt.Sprintf("x%03d/%s", N%1000, s)
	}
	p := "tile/" + lv + "/" + s
	if w < tileWidth {
		p += ".p/" + strconv.Itoa(w)
	}
	return p
}

// rotateJournal (mu and writer lock held) replaces the journal with one
// that starts at the current partial bundle, and makes every tile below it
// durable in the background: until then the old journal stays, hard-linked
// as journal.<its start> (retiredPath), for Open to rebuild from it what a
// power cut loses of those tiles; the sync removes it when done. Appends go
// on meanwhile (a file system sync takes a while, and flushes what other
// programs wrote too); the next rotation and Close wait for it.
func (l *Log) rotateJournal() error {
	if err := l.waitSync(); err != nil {
		return err
	}
	// The partial tiles of levels 1 and up at the new start (the same as at
	// l.n: no hash of those levels completes within a bundle) spare the
	// next Open reading up to 255 full tiles per level.
	for L := 1; L < len(l.tails); L++ {
		if len(l.tails[L]) == 0 {
			continue
		}
		f := l.partials()[0]
		for _, p := range l.partials() {
			if strings.HasPrefix(p.path, "tile/"+strconv.Itoa(L)+"/") {
				f = p
			}
		}
		if err := writeTile(l.dir, f); err != nil {
			return err
		}
	}
	start := l.n &^ (tileWidth - 1)
	b := make([]byte, 0, journalHeader+len(l.pend))
	b = append(b, journalMagic...)
	b = binary.BigEndian.AppendUint64(b, start)
	b = append(b, l.pend...)
	p := filepath.Join(l.dir, journalFile)
	old := retiredPath(l.dir, l.jStart)
	if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate journal: %w", err)
	}
	if err := os.Link(p, old); err != nil {
		return fmt.Errorf("rotate journal: %w", err)
	}
	// writeFileSync's directory fsync makes the link durable with the
	// new journal's name.
	if err := writeFileSync(p, b, 0o600); err != nil {
		return fmt.Errorf("rotate journal: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rotate journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("rotate journal: %w", err)
	}
	first := l.jEnd // the journal's end when the tree ends at a bundle boundary
	if k := start - l.jStart; k < uint64(len(l.joff)) {
		first = l.joff[k]
	}
	joff := make([]int64, 0, len(l.joff)-int(start-l.jStart))
	for _, o := range l.joff[start-l.jStart:] {
		joff = append(joff, o-first+int64(journalHeader))
	}
	l.jf.Close()
	l.jf, l.jfi, l.jStart, l.jEnd, l.joff = f, fi, start, int64(len(b)), joff
	done := make(chan error, 1)
	go func() {
		err := rotationSync(l)
		if err == nil {
			// Every tile below start is durable: the old journal's
			// entries are no longer needed.
			if err = os.Remove(old); errors.Is(err, fs.ErrNotExist) {
				err = nil // another process's Open took care of it
			}
		}
		done <- err
	}()
	l.syncing = done
	return nil
}

// rotationSync is the background sync of a rotation; a test makes it fail
// to leave the state of a crash before it ends.
var rotationSync = (*Log).syncTiles

// waitSync waits for the last rotation's background sync (mu held).
func (l *Log) waitSync() error {
	if l.syncing == nil {
		return nil
	}
	err := <-l.syncing
	l.syncing = nil
	if err != nil {
		return fmt.Errorf("rotate journal: %w", err)
	}
	return nil
}

// retiredPath is where a rotated journal that starts at entry start stays
// until the tiles below the next journal's start are durable.
func retiredPath(dir string, start uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%020d", journalFile, start))
}

// syncTiles makes every tile written since the last rotation durable, by
// this Log or by the other processes whose appends it caught up with: one
// syncfs of the log's file system, which also makes the new files' names
// durable with their directories. It costs one file system commit per
// rotation (every journalMaxEntries entries or journalMaxBytes bytes), not
// one per tile.
func (l *Log) syncTiles() error {
	// The lock file's descriptor: it stays open until Close, which waits
	// for this.
	if err := unix.Syncfs(int(l.lock.Fd())); err != nil {
		return fmt.Errorf("sync tiles: %w", err)
	}
	return nil
}

// fail marks the log unusable after a write failed half-way (mu held).
func (l *Log) fail(err error) {
	l.broken = err
	l.met.failures.WithLabelValues("append").Inc()
	l.log.Error("evidence append failed; the log refuses appends until restart", "err", err)
}

// frontierRoot is the RFC 6962 root of the tree whose compact range is f.
func frontierRoot(f []tlog.Hash) tlog.Hash {
	if len(f) == 0 {
		return tlog.Hash(sha256.Sum256(nil))
	}
	r := f[len(f)-1]
	for i := len(f) - 2; i >= 0; i-- {
		r = tlog.NodeHash(f[i], r)
	}
	return r
}

// Checkpoint signs the current tree (after catching up with other
// processes) and keeps the checkpoint in checkpoints/ and as checkpoint,
// with the partial tiles a tiles client needs for its size. When nothing
// was appended since the last checkpoint it returns that one.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := l.lockWriter()
	if err != nil {
		return Checkpoint{}, err
	}
	defer unlock()
	if err := l.refreshLocked(); err != nil {
		return Checkpoint{}, err
	}
	return l.checkpointLocked()
}

// checkpointLocked is Checkpoint with mu and the writer lock held.
func (l *Log) checkpointLocked() (Checkpoint, error) {
	if l.broken != nil {
		return Checkpoint{}, fmt.Errorf("evidence checkpoint: log unusable until restart: %w", l.broken)
	}
	if err := l.reloadKeys(); err != nil {
		return Checkpoint{}, err
	}
	if l.last.Note != nil && l.last.Size == l.n {
		return l.last, nil
	}
	if !l.chain.PubFor(l.n).Equal(l.key.Public()) {
		// A shared log's replica that took a rotation from the store
		// stands at the size of the rotation's record, which only the
		// rotated-out key signs (on the node that rotated it).
		return Checkpoint{}, fmt.Errorf("evidence checkpoint at tree size %d: %w", l.n, ErrOldKeySize)
	}
	// The partial tiles of this size, fsynced: the checkpoint names them.
	for _, f := range l.partials() {
		if err := writeTile(l.dir, f); err != nil {
			return Checkpoint{}, fmt.Errorf("evidence checkpoint: %w", err)
		}
		if err := syncFile(filepath.Join(l.dir, filepath.FromSlash(f.path))); err != nil {
			return Checkpoint{}, fmt.Errorf("evidence checkpoint: %w", err)
		}
	}
	c, err := signCheckpoint(l.key, l.n, frontierRoot(l.frontier))
	if err != nil {
		return Checkpoint{}, err
	}
	if err := writeFileSync(l.checkpointPath(c.Size), c.Note, 0o644); err != nil {
		return Checkpoint{}, fmt.Errorf("evidence checkpoint: %w", err)
	}
	if err := writeFileSync(filepath.Join(l.dir, checkpointFile), c.Note, 0o644); err != nil {
		return Checkpoint{}, fmt.Errorf("evidence checkpoint: %w", err)
	}
	l.removeSuperseded(l.last.Size, c.Size)
	l.last = c
	l.met.checkpoint.Set(float64(c.Size))
	l.met.checkpoints.Inc()
	l.log.Debug("evidence checkpoint", "size", c.Size)
	return c, nil
}

// partials returns the partial tiles and bundle of the tree's right edge.
func (l *tree) partials() []tileFile {
	var out []tileFile
	if w := int(l.n % tileWidth); w > 0 {
		out = append(out, tileFile{tilePath(-1, l.n/tileWidth, w), bytes.Clone(l.pend)})
	}
	for L, t := range l.tails {
		if len(t) == 0 {
			continue
		}
		data := make([]byte, 0, len(t)*tlog.HashSize)
		for _, x := range t {
			data = append(data, x[:]...)
		}
		N := (l.n >> (tileHeight * L)) / tileWidth
		out = append(out, tileFile{tilePath(L, N, len(t)), data})
	}
	return out
}

// removeSuperseded deletes the partial tiles of the checkpoint of size old
// whose full tile exists at size now (C2SP lets a log delete them then).
func (l *Log) removeSuperseded(old, now uint64) {
	if old == 0 {
		return
	}
	for L := -1; ; L++ {
		shift := 0
		if L > 0 {
			shift = tileHeight * L
		}
		cnt := old >> shift
		if cnt == 0 {
			return
		}
		if w := cnt % tileWidth; w > 0 && cnt/tileWidth < (now>>shift)/tileWidth {
			os.Remove(filepath.Join(l.dir, filepath.FromSlash(tilePath(L, cnt/tileWidth, int(w)))))
		}
	}
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (l *Log) checkpointPath(size uint64) string {
	return filepath.Join(l.dir, checkpointDir, fmt.Sprintf("%020d", size))
}

// Checkpoints returns every kept checkpoint, smallest first, each verified
// with the log's key.
func (l *Log) Checkpoints() ([]Checkpoint, error) {
	k, chain, _ := l.Keys()
	return readCheckpoints(l.dir, k.Name, chain)
}

// checkpointSizes lists the sizes of the kept checkpoints, smallest first.
func checkpointSizes(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(dir, checkpointDir))
	if err != nil {
		return nil, fmt.Errorf("evidence checkpoints: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		fname := e.Name()
		if strings.HasSuffix(fname, ".tmp") {
			continue
		}
		size, err := strconv.ParseUint(fname, 10, 63)
		if err != nil || len(fname) != 20 {
			return nil, fmt.Errorf("evidence checkpoints: unexpected file %q", fname)
		}
		out = append(out, size)
	}
	slices.Sort(out)
	return out, nil
}

// readCheckpoint reads and verifies the kept checkpoint of size.
func readCheckpoint(dir, origin string, chain KeyChain, size uint64) (Checkpoint, error) {
	fname := fmt.Sprintf("%020d", size)
	b, err := os.ReadFile(filepath.Join(dir, checkpointDir, fname))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("evidence checkpoints: %w", err)
	}
	c, err := OpenCheckpoint(b, chain.PubFor(size))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("evidence checkpoint %s: %w", fname, err)
	}
	if c.Size != size || c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("evidence checkpoint %s: says origin %q size %d", fname, c.Origin, c.Size)
	}
	return c, nil
}

// readCheckpoints reads the kept checkpoints of the log named origin, each
// verified with the key of chain that signs its size.
func readCheckpoints(dir, origin string, chain KeyChain) ([]Checkpoint, error) {
	sizes, err := checkpointSizes(dir)
	if err != nil {
		return nil, err
	}
	out := make([]Checkpoint, 0, len(sizes))
	for _, s := range sizes {
		c, err := readCheckpoint(dir, origin, chain, s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	return out, nil
}

// Run writes a checkpoint every Options.CheckpointEvery and a last one when
// ctx ends. It returns nil on a clean stop; a failed checkpoint is logged
// and retried at the next tick. The caller closes the log after Run returns.
func (l *Log) Run(ctx context.Context) error {
	t := time.NewTicker(l.opts.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if _, err := l.Checkpoint(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("evidence final checkpoint: %w", err)
			}
			return nil
		case <-t.C:
			if _, err := l.Checkpoint(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrOldKeySize) {
				l.met.failures.WithLabelValues("checkpoint").Inc()
				l.log.Error("evidence checkpoint failed", "err", err)
			}
		}
	}
}

// Close closes the log's files and releases its locks. It does not write a
// checkpoint (Run does at shutdown).
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var errs []error
	errs = append(errs, l.waitSync())
	for _, f := range []**os.File{&l.jf, &l.wlk, &l.lock} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	l.broken = errors.New("log closed")
	return errors.Join(errs...)
}

// LeafHash returns the RFC 6962 leaf hash of a stored entry:
// SHA-256(0x00 || nonce || record).
func LeafHash(nonce, record []byte) tlog.Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(nonce)
	h.Write(record)
	var out tlog.Hash
	h.Sum(out[:0])
	return out
}

// bundleEntries splits a bundle (or a run of journal bytes) into its
// entries, calling fn with each entry (nonce || record).
func bundleEntries(b []byte, fn func(entry []byte) error) error {
	for len(b) > 0 {
		if len(b) < entryHeader {
			return io.ErrUnexpectedEOF
		}
		n := int(binary.BigEndian.Uint16(b))
		if n <= NonceSize || len(b) < entryHeader+n {
			if n <= NonceSize {
				return fmt.Errorf("entry length %d out of range", n)
			}
			return io.ErrUnexpectedEOF
		}
		if err := fn(b[entryHeader : entryHeader+n]); err != nil {
			return err
		}
		b = b[entryHeader+n:]
	}
	return nil
}
