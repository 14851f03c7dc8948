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
//     already holds another one). Every node's checkpoints are then
//     signatures by the one key over prefixes of the one log: each extends
//     every earlier one.
//
// Key rotation is refused on a shared log (it would need the new key
// installed on every node at once); see docs/operations.md.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
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
}

// ErrEntriesTaken is the store's refusal of entries at an index another
// node appended at first.
var ErrEntriesTaken = errors.New("another node appended to the shared evidence log first")

// pullBatch is how many entries Refresh copies per read of the store.
const pullBatch = 4096

// pullLocked copies the store's entries beyond l.n (mu and the writer lock
// held, the log caught up).
func (l *Log) pullLocked(ctx context.Context) error {
	if l.opts.Shared == nil {
		return nil
	}
	if l.broken != nil {
		return fmt.Errorf("evidence log unusable until restart: %w", l.broken)
	}
	for {
		entries, err := l.opts.Shared.EvidenceEntries(ctx, l.n, pullBatch)
		if err != nil {
			return fmt.Errorf("evidence: reading the shared log: %w", err)
		}
		if len(entries) == 0 {
			return nil
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
		}
		if _, err := l.writeLocked(time.Now(), nonces, records); err != nil {
			return err
		}
		if len(entries) < pullBatch {
			return nil
		}
	}
}

// joinShared runs at Open (mu unneeded, the writer lock held) after the
// replica is loaded: it copies what the store holds beyond it, or, when
// the store holds nothing yet, gives it this replica's entries (a log
// that existed before the store was shared).
func (l *Log) joinShared(ctx context.Context) error {
	have, err := l.opts.Shared.EvidenceSize(ctx)
	if err != nil {
		return fmt.Errorf("evidence: reading the shared log: %w", err)
	}
	switch {
	case have >= l.n:
		return l.pullLocked(ctx)
	case have > 0:
		return fmt.Errorf("evidence log %s holds %d entries, the shared store's log %d: it was written apart from the store; move the directory aside (keep it, it is evidence) and start again to replicate the store's log", l.dir, l.n, have)
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

// shareKey makes the key in dir the shared store's (before Open reads it):
// the store keeps the first key offered, this directory's or a new one.
func shareKey(ctx context.Context, dir string, opts Options) error {
	if _, err := os.Stat(filepath.Join(dir, rotationDir)); err == nil {
		return fmt.Errorf("evidence log %s had its key rotated: a shared log's key cannot be (docs/operations.md)", dir)
	}
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
	k, err := parseSignerKey(stored)
	if err != nil {
		return fmt.Errorf("evidence: the shared store's key: %w", err)
	}
	if local != nil {
		if stored != candidate {
			return fmt.Errorf("evidence log %s has key %s, the shared store's log %s: move the directory aside (keep it, it is evidence) and start again to replicate the store's log", dir, local.Fingerprint(), k.Fingerprint())
		}
		return nil
	}
	return writeKey(dir, k)
}
