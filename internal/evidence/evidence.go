// Package evidence keeps a tamper-evident log of sinkhole events and custody
// actions: the log itself, its signing keys and their rotation, its signed
// checkpoints, and the proofs it gives (range, consistency, inclusion) in
// the text forms that evidence packages carry.
//
// The log is an append-only Merkle tree with RFC 6962 hashing, stored in
// one directory (the data dir's evidence/ folder). Every record (the
// pipeline passes each event's JSON-lines bytes; custody actions are
// records too) is stored exactly as given, behind a 16-byte random nonce;
// its leaf hash is SHA-256(0x00 || nonce || record), so that an inclusion
// proof does not let anyone confirm a guess of a neighbouring record.
// Signed checkpoints (C2SP tlog-checkpoint notes, Ed25519) are written
// periodically and all kept; at Open the log must extend every one of them.
//
// It is not a general transparency log server: it has no witnesses, no
// HTTP tile API and a single writer process (a lock file enforces that).
// It does not write or check evidence packages (internal/evidence/bundle
// does, from this package's proofs), implement SSHSIG (internal/sshsig) or
// print anything (internal/cli); it does not interpret records.
//
// Files in the directory:
//
//	key            Ed25519 note signer key, mode 0600
//	key.pub        note verifier key and OpenSSH public key
//	data           entries: 4-byte big-endian record length, 16-byte nonce, record
//	index          8-byte big-endian offset in data of each entry
//	hashes         tlog stored hashes (golang.org/x/mod/sumdb/tlog layout), 32 bytes each
//	checkpoints/   one signed checkpoint per file, named by tree size (20 digits)
//	rotations/     signed key rotation records: <size>.json and its SSHSIG, <size>.json.sig
//	key.new        the next key while a rotation is in progress, mode 0600
//	lock           held (flock) by the process that has the log open
//
// data is the only source of truth and the only file fsynced on every
// Append; index and hashes are derived from it, fsynced at each checkpoint
// and rebuilt at Open after a crash.
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
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"
)

// NonceSize is the size of the random nonce stored before each record.
const NonceSize = 16

// DefaultMaxRecordSize is the bound of one record when
// Options.MaxRecordSize is zero.
const DefaultMaxRecordSize = 1 << 20

const (
	entryHeader   = 4 // record length
	checkpointDir = "checkpoints"
)

// Options configures a Log. The zero value is usable.
type Options struct {
	// Origin names the log in its checkpoints and is the key's name. It is
	// used only when the key is made (first start); afterwards the key's
	// name wins. Default: "takedown.invalid/evidence/<12 random hex>".
	Origin string
	// CheckpointEvery is the period of Run's checkpoints. Default 60s.
	CheckpointEvery time.Duration
	// MaxRecordSize bounds one record. Default 1 MiB.
	MaxRecordSize int
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for custody records; nil means time.Now.
	Now func() time.Time
	// Registerer receives the takedown_evidence_* metrics; nil skips them.
	Registerer prometheus.Registerer
}

// Log is an append-only Merkle log on local disk. Its methods are safe for
// concurrent use. Lock order: mu is the only lock.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File
	met  *metrics

	mu        sync.Mutex
	key       *Key       // the current signing key (see rotate.go)
	chain     KeyChain   // every key the log has had, with the sizes each signs
	rotations []Rotation // the signed rotation records, oldest first

	data     *os.File // O_APPEND
	index    *os.File
	hashes   *os.File
	n        uint64      // leaves
	dataEnd  int64       // bytes of data holding n entries
	frontier []tlog.Hash // compact range of [0,n): its perfect subtrees' hashes, largest (leftmost) first
	last     Checkpoint  // latest checkpoint (Size 0 and no Note if none yet)
	dirty    bool        // index/hashes written since their last fsync
	broken   error       // set when a write failed half-way; Append refuses afterwards
	buf      []byte
	hbuf     []byte
	ibuf     []byte
}

// Open opens (or creates) the log in dir. At first start it makes the
// Ed25519 key (mode 0600). It re-reads the whole log, re-hashes every entry
// against the stored hashes and every kept checkpoint, completes the
// derived files after a crash, and refuses to start, saying why, when the
// log on disk does not extend its checkpoints.
func Open(ctx context.Context, dir string, opts Options) (*Log, error) {
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = time.Minute
	}
	if opts.MaxRecordSize <= 0 {
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
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("evidence lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("evidence log %s is open in another process (a running server?): %w", dir, err)
	}
	l := &Log{dir: dir, opts: opts, log: lg, lock: lock, met: newMetrics(opts.Registerer)}
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
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
	for _, f := range []struct {
		p    **os.File
		name string
		flag int
	}{{&l.data, "data", os.O_APPEND}, {&l.index, "index", 0}, {&l.hashes, "hashes", 0}} {
		*f.p, err = os.OpenFile(filepath.Join(dir, f.name), os.O_RDWR|os.O_CREATE|f.flag, 0o600)
		if err != nil {
			return nil, fmt.Errorf("evidence %s: %w", f.name, err)
		}
	}
	if err := l.scan(ctx, true); err != nil {
		return nil, err
	}
	ok = true
	l.met.checkpoint.Set(float64(l.last.Size))
	lg.Info("evidence log open", "dir", dir, "leaves", l.n, "checkpoint", l.last.Size)
	return l, nil
}

// Key returns the log's signing key.
func (l *Log) Key() *Key {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.key
}

// Size returns the number of leaves.
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Append adds records as consecutive leaves and returns the index of the
// first. It writes the batch with one write and one fsync of the data file,
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
	return l.appendLocked(ctx, records)
}

// appendLocked is Append with mu held and the records checked.
func (l *Log) appendLocked(ctx context.Context, records [][]byte) (first uint64, err error) {
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
	buf, ibuf, hbuf := l.buf[:0], l.ibuf[:0], l.hbuf[:0]
	off := l.dataEnd
	frontier := slices.Clone(l.frontier)
	n := l.n
	h := sha256.New()
	var sum []byte
	for i, r := range records {
		nonce := nonces[i*NonceSize : (i+1)*NonceSize]
		ibuf = binary.BigEndian.AppendUint64(ibuf, uint64(off))
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(r)))
		buf = append(buf, nonce...)
		buf = append(buf, r...)
		off += int64(entryHeader + NonceSize + len(r))
		h.Reset()
		h.Write([]byte{0})
		h.Write(nonce)
		h.Write(r)
		sum = h.Sum(sum[:0])
		var leaf tlog.Hash
		copy(leaf[:], sum)
		frontier, hbuf = pushLeaf(frontier, n, leaf, hbuf)
		n++
	}
	if _, err := l.data.Write(buf); err != nil {
		l.fail(err)
		return 0, fmt.Errorf("evidence append: write data: %w", err)
	}
	if err := l.data.Sync(); err != nil {
		l.fail(err)
		return 0, fmt.Errorf("evidence append: fsync data: %w", err)
	}
	// The batch is durable. index and hashes are derived and rebuilt at Open
	// if these writes are lost.
	if _, err := l.index.WriteAt(ibuf, int64(l.n)*8); err != nil {
		l.fail(err)
		return 0, fmt.Errorf("evidence append: write index: %w", err)
	}
	if _, err := l.hashes.WriteAt(hbuf, tlog.StoredHashIndex(0, int64(l.n))*tlog.HashSize); err != nil {
		l.fail(err)
		return 0, fmt.Errorf("evidence append: write hashes: %w", err)
	}
	first = l.n
	l.n, l.dataEnd, l.frontier, l.dirty = n, off, frontier, true
	l.met.leaves.Add(float64(len(records)))
	l.met.batches.Inc()
	l.met.appendSec.Observe(time.Since(start).Seconds())
	if cap(buf) <= 4<<20 {
		l.buf, l.ibuf, l.hbuf = buf, ibuf, hbuf
	}
	return first, nil
}

// fail marks the log unusable after a write failed half-way (mu held).
func (l *Log) fail(err error) {
	l.broken = err
	l.met.failures.WithLabelValues("append").Inc()
	l.log.Error("evidence append failed; the log refuses appends until restart", "err", err)
}

// pushLeaf adds leaf number n to the compact range frontier and appends to
// out the stored hashes that leaf completes, in the order of
// tlog.StoredHashes: the leaf, then each full subtree it closes.
func pushLeaf(frontier []tlog.Hash, n uint64, leaf tlog.Hash, out []byte) ([]tlog.Hash, []byte) {
	h := leaf
	out = append(out, h[:]...)
	for m := n; m&1 == 1; m >>= 1 {
		h = tlog.NodeHash(frontier[len(frontier)-1], h)
		frontier = frontier[:len(frontier)-1]
		out = append(out, h[:]...)
	}
	return append(frontier, h), out
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

// Checkpoint signs the current tree and keeps the checkpoint in
// checkpoints/. When nothing was appended since the last checkpoint it
// returns that one. index and hashes are fsynced first.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkpointLocked()
}

// checkpointLocked is Checkpoint with mu held.
func (l *Log) checkpointLocked() (Checkpoint, error) {
	if l.last.Note != nil && l.last.Size == l.n {
		return l.last, nil
	}
	if l.dirty {
		if err := l.index.Sync(); err != nil {
			return Checkpoint{}, fmt.Errorf("evidence checkpoint: fsync index: %w", err)
		}
		if err := l.hashes.Sync(); err != nil {
			return Checkpoint{}, fmt.Errorf("evidence checkpoint: fsync hashes: %w", err)
		}
		l.dirty = false
	}
	c, err := signCheckpoint(l.key, l.n, frontierRoot(l.frontier))
	if err != nil {
		return Checkpoint{}, err
	}
	if err := writeFileSync(l.checkpointPath(c.Size), c.Note, 0o644); err != nil {
		return Checkpoint{}, fmt.Errorf("evidence checkpoint: %w", err)
	}
	l.last = c
	l.met.checkpoint.Set(float64(c.Size))
	l.met.checkpoints.Inc()
	l.log.Debug("evidence checkpoint", "size", c.Size)
	return c, nil
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

// readCheckpoints reads the kept checkpoints of the log named origin, each
// verified with the key of chain that signs its size.
func readCheckpoints(dir, origin string, chain KeyChain) ([]Checkpoint, error) {
	ents, err := os.ReadDir(filepath.Join(dir, checkpointDir))
	if err != nil {
		return nil, fmt.Errorf("evidence checkpoints: %w", err)
	}
	var out []Checkpoint
	for _, e := range ents {
		fname := e.Name()
		if strings.HasSuffix(fname, ".tmp") {
			continue
		}
		size, err := strconv.ParseUint(fname, 10, 63)
		if err != nil || len(fname) != 20 {
			return nil, fmt.Errorf("evidence checkpoints: unexpected file %q", fname)
		}
		b, err := os.ReadFile(filepath.Join(dir, checkpointDir, fname))
		if err != nil {
			return nil, fmt.Errorf("evidence checkpoints: %w", err)
		}
		c, err := OpenCheckpoint(b, chain.PubFor(size))
		if err != nil {
			return nil, fmt.Errorf("evidence checkpoint %s: %w", fname, err)
		}
		if c.Size != size || c.Origin != origin {
			return nil, fmt.Errorf("evidence checkpoint %s: says origin %q size %d", fname, c.Origin, c.Size)
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
			if _, err := l.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				l.met.failures.WithLabelValues("checkpoint").Inc()
				l.log.Error("evidence checkpoint failed", "err", err)
			}
		}
	}
}

// Close fsyncs and closes the log's files and releases the lock. It does
// not write a checkpoint (Run does at shutdown).
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.index != nil && l.dirty {
		errs = append(errs, l.index.Sync(), l.hashes.Sync())
	}
	errs = append(errs, l.closeFiles())
	return errors.Join(errs...)
}

func (l *Log) closeFiles() error {
	var errs []error
	for _, f := range []**os.File{&l.data, &l.index, &l.hashes, &l.lock} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	l.broken = errors.New("log closed")
	return errors.Join(errs...)
}

// hashReader reads stored hashes from the hashes file for tlog's proofs.
type hashReader struct{ f *os.File }

var _ tlog.HashReader = hashReader{}

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if _, err := r.f.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("read stored hash %d: %w", x, err)
		}
	}
	return out, nil
}

// snapshot returns the tree size and data length under the lock; entries
// and hashes below them never change afterwards.
func (l *Log) snapshot() (uint64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.data == nil {
		return 0, 0, errors.New("evidence log closed")
	}
	return l.n, l.dataEnd, nil
}

// entryReader reads entries sequentially from the data file.
type entryReader struct {
	r     io.Reader
	off   int64
	max   int
	nonce [NonceSize]byte
	rec   []byte
}

// errTorn marks an entry cut short at the end of the data file.
var errTorn = errors.New("entry cut short")

// next reads one entry; it returns io.EOF at a clean end and errTorn for a
// partial last entry.
func (e *entryReader) next() error {
	var hdr [entryHeader]byte
	if _, err := io.ReadFull(e.r, hdr[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return errTorn
		}
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || int64(n) > int64(e.max) {
		return fmt.Errorf("entry at offset %d: record length %d out of range", e.off, n)
	}
	if _, err := io.ReadFull(e.r, e.nonce[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return errTorn
		}
		return err
	}
	e.rec = slices.Grow(e.rec[:0], int(n))[:n]
	if _, err := io.ReadFull(e.r, e.rec); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return errTorn
		}
		return err
	}
	e.off += int64(entryHeader + NonceSize + int(n))
	return nil
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
