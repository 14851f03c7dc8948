package evidence

// The log of a deployment whose nodes share one store (PostgreSQL, issue
// 15). Its entries (nonce || record, exactly as the tiles hold them) and
// its signing key live in the store; every node's log directory is a
// replica of them, so any node can prove, export and checkpoint, and a node
// that takes over as writer extends the very log the dead writer wrote:
//
//   - An append inserts its entries into the store at the replica's size,
//     in one transaction, before writing them here. The store refuses the
//     insert when another node appended first (ErrEntriesTaken): the
//     replica then catches up and the caller decides again (the evidence
//     follower re-reads the store from the log's newest event, so an event
//     is never appended twice; a custody record is simply appended again,
//     AppendCustody). Entries exist here only once the store holds them, so
//     a replica is always a prefix of the store's log and no two nodes can
//     fork it.
//   - Open and Refresh copy the entries the store has beyond the replica.
//   - The first node to open the log stores its key; every other node
//     installs that key in its directory (and refuses to open when it
//     holds another one that no rotation in the store leads from, or
//     entries the store does not have). Every node's checkpoints are then
//     signatures by the deployment's keys over prefixes of the one log:
//     each extends every earlier one.
//   - A key rotation (RotateKey) puts the rotate-key record, its signature
//     by the old key and the new key into the store in one transaction
//     (RotateEvidenceKey, in place of AddEvidenceEntries); a
//     replica that pulls the record installs the rotation and the key
//     before it signs anything (installRotations).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/takedown/takedown/internal/sshsig"
)

// SharedStore is the store of a shared log (postgres.DB implements it).
type SharedStore interface {
	// EvidenceKey stores candidate (a note signer key, as the key file
	// holds it) as the deployment's evidence key unless one is stored
	// already, and returns the stored one.
	EvidenceKey(ctx context.Context, candidate string) (string, error)
	// EvidenceSize returns the number of entries stored.
	EvidenceSize(ctx context.Context) (uint64, error)
	// EvidenceEntries returns up to max entries from index from on, in
	// order.
	EvidenceEntries(ctx context.Context, from uint64, max int) ([][]byte, error)
	// AddEvidenceEntries stores entries at indexes first, first+1, … in
	// one transaction. It returns an error wrapping ErrEntriesTaken, and
	// stores nothing, unless first is the number of entries stored.
	AddEvidenceEntries(ctx context.Context, first uint64, entries [][]byte) error
	// RotateEvidenceKey stores, in one transaction, entry (a rotate-key
	// custody record) at index first, sig (the record's signature by the
	// old key) and signer as the deployment's key in place of old. It
	// stores nothing and returns an error wrapping ErrEntriesTaken unless
	// first is the number of entries stored and old the stored key.
	RotateEvidenceKey(ctx context.Context, first uint64, entry, sig []byte, old, signer string) error
	// EvidenceRotations returns the signature stored with each rotate-key
	// record, by the record's index.
	EvidenceRotations(ctx context.Context) (map[uint64][]byte, error)
}

// ErrEntriesTaken is the store's refusal of entries at an index another
// node appended at first.
var ErrEntriesTaken = errors.New("another node appended to the shared evidence log first")

// ErrOldKeySize is Checkpoint's refusal on a shared log's replica that
// stands at the size of a key rotation's record: the rotated-out key signs
// that size (the node that rotated signed it), and this replica holds only
// the new key. The next append moves past it.
var ErrOldKeySize = errors.New("the rotated-out key signs this size, and this replica holds only the new key; the next append moves past it")

// pullBatch is how many entries Refresh copies per read of the store.
const pullBatch = 4096

// pullLocked copies the store's entries beyond l.n (mu and the writer lock
// held, the log caught up with this node's other processes: syncLocked).
func (l *Log) pullLocked(ctx context.Context) error {
	if l.opts.Shared == nil {
		return nil
	}
	if l.broken != nil {
		return fmt.Errorf("evidence log unusable until restart: %w", l.broken)
	}
	rotated := false
	for {
		entries, err := l.opts.Shared.EvidenceEntries(ctx, l.n, pullBatch)
		if err != nil {
			return fmt.Errorf("evidence: reading the shared log: %w", err)
		}
		if len(entries) == 0 {
			break
		}
		for i, e := range entries {
			if len(e) <= NonceSize || len(e) > MaxEntrySize || bytes.IndexByte(e[NonceSize:], '\n') >= 0 {
				return fmt.Errorf("evidence: the shared log's entry %d is malformed (%d bytes)", l.n+uint64(i), len(e))
			}
		}
		nonces := make([]byte, 0, NonceSize*len(entries))
		records := make([][]byte, len(entries))
		for i, e := range entries {
			nonces = append(nonces, e[:NonceSize]...)
			records[i] = e[NonceSize:]
			rotated = rotated || bytes.HasPrefix(records[i], rotateKeyPrefix)
		}
		if _, err := l.writeLocked(time.Now(), nonces, records); err != nil {
			return err
		}
		if len(entries) < pullBatch {
			break
		}
	}
	if rotated || l.keysBehind {
		l.keysBehind = true
		if err := l.installRotations(ctx); err != nil {
			return err
		}
		l.keysBehind = false
	}
	return nil
}

// rotateKeyPrefix starts every rotate-key custody record (CustodyRecord's
// first two fields); event records start otherwise.
var rotateKeyPrefix = []byte(`{"type":"custody","action":"rotate-key"`)

// installRotations brings this replica's keys up to the store's (mu and
// the writer lock held): each rotate-key record the replica holds gets its
// signed file in rotations/ (its signature from the store), and the
// store's key becomes the replica's once the last rotation names it. The
// chain is then read back (loadChain checks every link's signature, from
// the replica's own first key). Until that succeeds the replica signs no
// checkpoint: checkpointLocked reloads the keys first and fails.
func (l *Log) installRotations(ctx context.Context) error {
	sigs, err := l.opts.Shared.EvidenceRotations(ctx)
	if err != nil {
		return fmt.Errorf("evidence: the shared log's key rotations: %w", err)
	}
	idxs := make([]uint64, 0, len(sigs))
	for i := range sigs {
		if i < l.n {
			idxs = append(idxs, i)
		}
	}
	slices.Sort(idxs)
	var last *Rotation
	for _, i := range idxs {
		// The record from the store (the replica's entry i is the same,
		// and reading it here would take mu again).
		es, err := l.opts.Shared.EvidenceEntries(ctx, i, 1)
		if err != nil {
			return fmt.Errorf("evidence: the shared log's rotation at entry %d: %w", i, err)
		}
		if len(es) != 1 || len(es[0]) <= NonceSize {
			return fmt.Errorf("evidence: the shared log's rotation at entry %d: no such entry", i)
		}
		r, err := parseRotation(es[0][NonceSize:], sigs[i])
		if err != nil || r.Last != i+1 {
			return fmt.Errorf("evidence: the shared log's rotation at entry %d: record for size %d: %v", i, r.Last, err)
		}
		if _, err := os.Stat(filepath.Join(l.dir, rotationDir, fmt.Sprintf("%020d.json", r.Last))); err != nil {
			if err := writeRotation(l.dir, r); err != nil {
				return err
			}
		}
		last = &r
	}
	if last != nil && !last.New.Equal(l.key.Public()) {
		stored, err := l.opts.Shared.EvidenceKey(ctx, l.key.signerKey())
		if err != nil {
			return fmt.Errorf("evidence: the shared store's key: %w", err)
		}
		k, err := parseSignerKey(stored)
		if err != nil {
			return fmt.Errorf("evidence: the shared store's key: %w", err)
		}
		if !k.Public().Equal(last.New) {
			return fmt.Errorf("evidence: the shared store's key %s is not the one its last rotation this replica holds names (%s): a rotation is on its way", k.Fingerprint(), sshsig.Fingerprint(last.New))
		}
		if err := writeFileSync(filepath.Join(l.dir, keyNewFile), []byte(stored+"\n"), 0o600); err != nil {
			return fmt.Errorf("evidence key rotation: write new key: %w", err)
		}
		if err := installKey(l.dir, k); err != nil {
			return err
		}
	}
	if err := l.reloadKeys(); err != nil {
		return err
	}
	if last != nil {
		l.log.Info("evidence: key rotations of the shared log installed", "rotations", len(l.rotations), "fingerprint", l.key.Fingerprint())
	}
	return nil
}

// joinShared runs at Open (mu unneeded, the writer lock held) after the
// replica is loaded: it copies what the store holds beyond it, or, when
// the store holds nothing yet, gives it this replica's entries (a log
// that existed before the store was shared). A replica whose newest entry
// is not the store's at that index (nonces are random: two logs never
// share an entry) was written apart from the store and is refused; so is
// one whose key the store's rotations do not lead to the store's key.
func (l *Log) joinShared(ctx context.Context) error {
	have, err := l.opts.Shared.EvidenceSize(ctx)
	if err != nil {
		return fmt.Errorf("evidence: reading the shared log: %w", err)
	}
	apart := func() error {
		return fmt.Errorf("evidence log %s (%d entries) was written apart from the shared store's log (%d): move the directory aside (keep it, it is evidence) and start again to replicate the store's log", l.dir, l.n, have)
	}
	switch {
	case have >= l.n:
		if l.n > 0 {
			nonce, rec, err := l.readEntry(l.n - 1)
			if err != nil {
				return err
			}
			theirs, err := l.opts.Shared.EvidenceEntries(ctx, l.n-1, 1)
			if err != nil {
				return fmt.Errorf("evidence: reading the shared log: %w", err)
			}
			if len(theirs) != 1 || !bytes.Equal(theirs[0], append(nonce, rec...)) {
				return apart()
			}
		}
		l.keysBehind = true // a rotation may have been left half installed
		if err := l.pullLocked(ctx); err != nil {
			return err
		}
		stored, err := l.opts.Shared.EvidenceKey(ctx, l.key.signerKey())
		if err != nil {
			return fmt.Errorf("evidence: the shared store's key: %w", err)
		}
		if stored != l.key.signerKey() {
			k, _ := parseSignerKey(stored)
			fp := "unreadable"
			if k != nil {
				fp = k.Fingerprint()
			}
			return fmt.Errorf("evidence log %s has key %s, the shared store's log %s, and no rotation in the store leads from one to the other: move the directory aside (keep it, it is evidence) and start again to replicate the store's log", l.dir, l.key.Fingerprint(), fp)
		}
		return nil
	case have > 0:
		return apart()
	}
	if len(l.rotations) > 0 {
		return fmt.Errorf("evidence log %s had its key rotated: it cannot be the first log of a shared store (the store would lack the rotations' signatures); start the store's log afresh", l.dir)
	}
	l.log.Info("evidence: giving the shared store this log's entries", "entries", l.n)
	var batch [][]byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := l.opts.Shared.AddEvidenceEntries(ctx, have, batch)
		have += uint64(len(batch))
		batch = batch[:0]
		return err
	}
	err = l.Entries(ctx, 0, l.n, func(_ uint64, nonce, rec []byte) error {
		batch = append(batch, append(bytes.Clone(nonce), rec...))
		if len(batch) == pullBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("evidence: giving the shared store this log's entries: %w", err)
	}
	return nil
}

// shareKey runs at Open before the key is read: a directory without a key
// gets the store's (the store keeps the first key offered: this
// directory's, or a new one). A directory with another key than the
// store's is checked after loading (joinShared): the store's key
// rotations may lead from it to the store's.
func shareKey(ctx context.Context, dir string, opts Options) error {
	local, err := LoadKey(dir)
	var candidate string
	switch {
	case err == nil:
		candidate = local.signerKey()
	case errors.Is(err, fs.ErrNotExist):
		k, err := newKey(opts.Origin)
		if err != nil {
			return err
		}
		candidate = k.signerKey()
	default:
		return err
	}
	stored, err := opts.Shared.EvidenceKey(ctx, candidate)
	if err != nil {
		return fmt.Errorf("evidence: the shared store's key: %w", err)
	}
	if local != nil {
		return nil
	}
	k, err := parseSignerKey(stored)
	if err != nil {
		return fmt.Errorf("evidence: the shared store's key: %w", err)
	}
	return writeKey(dir, k)
}
