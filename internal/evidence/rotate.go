package evidence

// Key rotation. `takedown evidence rotate-key` replaces the log's signing
// key with a new one. The rotation is itself evidence: a custody record
// (action "rotate-key") naming the old and the new key and the tree size at
// which the new key takes over is appended to the log, a checkpoint of it
// is signed by the old key, and the record is signed by the old key
// (SSHSIG, namespace RotationNamespace) and kept in rotations/. The old key
// signs every checkpoint up to and including the one that holds the record
// (size TreeSize+1); the new key signs every later one. Packages ship the
// chain of signed records (keys/), so a recipient who holds only the first
// key follows it, each record signed by the key before it, to the key that
// signed the package.
//
// Crash safety: the new private key is written first as key.new; then the
// record and its checkpoint go into the log; then the signed record into
// rotations/; last key.new replaces key. Open finishes a rotation whose
// signed record was written, and discards key.new otherwise (the log may
// then hold a rotate-key record whose key never signed anything; rotate
// again).

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/takedown/takedown/internal/sshsig"
)

// RotationNamespace is the SSHSIG namespace of key rotation records.
const RotationNamespace = "takedown-evidence-key-rotation"

const (
	rotationDir = "rotations" // in the log dir: <size>.json and <size>.json.sig
	keyNewFile  = "key.new"   // the next key during a rotation, mode 0600
)

// Rotation is one signed rotate-key custody record.
type Rotation struct {
	Raw    []byte // the record exactly as appended to the log
	Sig    []byte // SSHSIG of Raw by the old key, namespace RotationNamespace
	Record CustodyRecord
	Old    ed25519.PublicKey
	New    ed25519.PublicKey
	Last   uint64 // the last tree size the old key signs: Record.TreeSize+1
}

// keyEpoch is a key and the last tree size it signs.
type keyEpoch struct {
	pub   ed25519.PublicKey
	until uint64
}

// KeyChain is the sequence of a log's keys, oldest first; the last is the
// current key and signs every size after the one before it.
type KeyChain []keyEpoch

// SingleKey is the chain of a log whose key was never rotated.
func SingleKey(pub ed25519.PublicKey) KeyChain {
	return KeyChain{{pub: pub, until: ^uint64(0)}}
}

// PubFor returns the key that signs checkpoints of the given tree size.
func (c KeyChain) PubFor(size uint64) ed25519.PublicKey {
	for _, e := range c {
		if size <= e.until {
			return e.pub
		}
	}
	return c[len(c)-1].pub
}

// Current returns the newest key of the chain.
func (c KeyChain) Current() ed25519.PublicKey { return c[len(c)-1].pub }

// First returns the oldest key of the chain, which verifies every later
// one through the rotation records.
func (c KeyChain) First() ed25519.PublicKey { return c[0].pub }

// parseRotation decodes and checks the form of a rotate-key record.
func parseRotation(raw, sig []byte) (Rotation, error) {
	r := Rotation{Raw: raw, Sig: sig}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.Record); err != nil {
		return r, fmt.Errorf("rotation record: %w", err)
	}
	if r.Record.Type != "custody" || r.Record.Action != "rotate-key" {
		return r, errors.New("rotation record: not a rotate-key custody record")
	}
	var err error
	if r.Old, err = ParsePublicKey([]byte(r.Record.OldKey)); err != nil {
		return r, fmt.Errorf("rotation record: old key: %w", err)
	}
	if r.New, err = ParsePublicKey([]byte(r.Record.NewKey)); err != nil {
		return r, fmt.Errorf("rotation record: new key: %w", err)
	}
	nk, err := ParsePublicKey([]byte(r.Record.NewNoteKey))
	if err != nil || !nk.Equal(r.New) {
		return r, errors.New("rotation record: the new key's note form is not the new key")
	}
	if r.Old.Equal(r.New) {
		return r, errors.New("rotation record: the new key is the old key")
	}
	r.Last = r.Record.TreeSize + 1
	return r, nil
}

// FollowRotations checks that rots (ordered by tree size) form one chain:
// each record names the key before it as old and is signed by it, and the
// sizes increase; and that trusted is one of its keys. It returns the chain
// of keys. A recipient who trusts the first key checks every link by
// signature; one who trusts a later key relies, for the keys before it, on
// the records being in a checkpoint that the later keys sign (the package's
// inclusion proofs).
func FollowRotations(trusted ed25519.PublicKey, rots []Rotation) (KeyChain, error) {
	cur := rots[0].Old
	var chain KeyChain
	var prev uint64
	for i, r := range rots {
		if !r.Old.Equal(cur) {
			return nil, fmt.Errorf("rotation %d (tree size %d): names old key %s, the chain is at %s", i+1, r.Last, sshsig.Fingerprint(r.Old), sshsig.Fingerprint(cur))
		}
		if err := sshsig.Verify(cur, RotationNamespace, r.Raw, r.Sig); err != nil {
			return nil, fmt.Errorf("rotation %d (tree size %d): %w", i+1, r.Last, err)
		}
		if i > 0 && r.Last <= prev {
			return nil, fmt.Errorf("rotation %d: tree size %d does not follow %d", i+1, r.Last, prev)
		}
		chain = append(chain, keyEpoch{pub: cur, until: r.Last})
		prev, cur = r.Last, r.New
	}
	chain = append(chain, keyEpoch{pub: cur, until: ^uint64(0)})
	for _, e := range chain {
		if e.pub.Equal(trusted) {
			return chain, nil
		}
	}
	return nil, fmt.Errorf("the trusted key %s is none of the %d keys of the rotation records (first %s)", sshsig.Fingerprint(trusted), len(chain), sshsig.Fingerprint(chain[0].pub))
}

// ReadRotations reads the signed rotation records in dir (files
// <20-digit size>.json and .json.sig), ordered by size. A missing dir is
// no rotation. A log keeps them in rotations/, a package in keys/.
func ReadRotations(dir string) ([]Rotation, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Rotation
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue // .sig, .tlog-proof, .tmp
		}
		size, err := strconv.ParseUint(name, 10, 63)
		if err != nil || len(name) != 20 {
			return nil, fmt.Errorf("%s: unexpected file %q", filepath.Base(dir), e.Name())
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		sig, err := os.ReadFile(filepath.Join(dir, e.Name()+".sig"))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", filepath.Base(dir), e.Name()+".sig", errors.Unwrap(err))
		}
		r, err := parseRotation(raw, sig)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", filepath.Base(dir), e.Name(), err)
		}
		if r.Last != size {
			return nil, fmt.Errorf("%s/%s: record says tree size %d", filepath.Base(dir), e.Name(), r.Last)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rotation) int { return cmp.Compare(a.Last, b.Last) })
	return out, nil
}

// loadChain reads the log's rotations, finishes or discards an interrupted
// rotation (key.new) and returns the rotations and the chain of keys, which
// must end at the current key k. It may replace k.
func loadChain(dir string, k *Key, lg interface{ Warn(string, ...any) }) (*Key, []Rotation, KeyChain, error) {
	rots, err := ReadRotations(filepath.Join(dir, rotationDir))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("evidence key rotations: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, keyNewFile)); err == nil {
		nk, perr := parseSignerKey(strings.TrimSpace(string(b)))
		switch {
		case perr == nil && len(rots) > 0 && rots[len(rots)-1].New.Equal(nk.Public()) && !k.Public().Equal(nk.Public()):
			if err := installKey(dir, nk); err != nil {
				return nil, nil, nil, err
			}
			lg.Warn("evidence: finished an interrupted key rotation", "fingerprint", nk.Fingerprint())
			k = nk
		default:
			if err := os.Remove(filepath.Join(dir, keyNewFile)); err != nil {
				return nil, nil, nil, err
			}
			lg.Warn("evidence: discarded the key of an interrupted key rotation (no signed record names it); rotate again")
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, err
	}
	if len(rots) == 0 {
		return k, nil, SingleKey(k.Public()), nil
	}
	chain, err := FollowRotations(rots[0].Old, rots)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("evidence key rotations: %w", err)
	}
	if !chain.Current().Equal(k.Public()) {
		return nil, nil, nil, fmt.Errorf("evidence key %s is not the key the last rotation names (%s)", k.Fingerprint(), sshsig.Fingerprint(chain.Current()))
	}
	return k, rots, chain, nil
}

// writeRotation writes signed rotation r into dir's rotations/, the
// signature first (ReadRotations takes a record only with it).
func writeRotation(dir string, r Rotation) error {
	rdir := filepath.Join(dir, rotationDir)
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return fmt.Errorf("evidence key rotation: %w", err)
	}
	base := filepath.Join(rdir, fmt.Sprintf("%020d.json", r.Last))
	if err := writeFileSync(base+".sig", r.Sig, 0o644); err != nil {
		return fmt.Errorf("evidence key rotation: %w", err)
	}
	if err := writeFileSync(base, r.Raw, 0o644); err != nil {
		return fmt.Errorf("evidence key rotation: %w", err)
	}
	return nil
}

// installKey moves key.new into place as the log's key and rewrites
// key.pub.
func installKey(dir string, k *Key) error {
	if err := os.Rename(filepath.Join(dir, keyNewFile), filepath.Join(dir, keyFile)); err != nil {
		return fmt.Errorf("evidence key rotation: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	pub := k.VerifierKey() + "\n" + k.SSHPublicKey() + "\n"
	if err := writeFileSync(filepath.Join(dir, keyPubFile), []byte(pub), 0o644); err != nil {
		return fmt.Errorf("evidence key rotation: write public key: %w", err)
	}
	return nil
}

// RotationResult says what RotateKey did.
type RotationResult struct {
	Old, New *Key
	// LastOldSize is the last tree size the old key signed (its checkpoint
	// holds the rotation record); the new key signs every later one.
	LastOldSize uint64
	Record      []byte
}

// RotateKey replaces the log's signing key with a new one of the same name
// (origin), recording the rotation as described at the top of this file.
// who names the operator in the custody record.
func (l *Log) RotateKey(ctx context.Context, who string) (RotationResult, error) {
	if err := ctx.Err(); err != nil {
		return RotationResult{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return RotationResult{}, fmt.Errorf("evidence key rotation: log unusable until restart: %w", l.broken)
	}
	// Another process with the log open would go on signing with the old
	// key: the rotation needs the log to itself.
	if err := flock(l.lock, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		flock(l.lock, syscall.LOCK_SH) // a failed conversion may have dropped the shared lock
		return RotationResult{}, fmt.Errorf("evidence key rotation: the log is open in another process (a running server?); stop it first: %w", err)
	}
	defer flock(l.lock, syscall.LOCK_SH)
	unlock, err := l.lockWriter()
	if err != nil {
		return RotationResult{}, err
	}
	defer unlock()
	if err := l.syncLocked(ctx); err != nil {
		return RotationResult{}, fmt.Errorf("evidence key rotation: %w", err)
	}
	old := l.key
	nk, err := newKey(old.Name)
	if err != nil {
		return RotationResult{}, fmt.Errorf("evidence key rotation: %w", err)
	}
	if err := writeFileSync(filepath.Join(l.dir, keyNewFile), []byte(nk.signerKey()+"\n"), 0o600); err != nil {
		return RotationResult{}, fmt.Errorf("evidence key rotation: write new key: %w", err)
	}
	cr := CustodyRecord{Type: "custody", Action: "rotate-key", Time: l.opts.Now().UTC().Truncate(time.Millisecond), Who: who,
		Detail: "the old key signs checkpoints up to tree size tree_size+1, which holds this record; the new key signs every later one",
		OldKey: old.SSHPublicKey(), NewKey: nk.SSHPublicKey(), NewNoteKey: nk.VerifierKey(), TreeSize: l.n}
	raw, err := json.Marshal(cr)
	if err != nil {
		return RotationResult{}, err
	}
	sig, err := old.SSHSign(RotationNamespace, raw)
	if err != nil {
		return RotationResult{}, err
	}
	// On a shared log the record, its signature and the new key enter the
	// store in one transaction (shared.go): a replica that has the record
	// has the rest.
	put := func(first uint64, entries [][]byte) error {
		return l.opts.Shared.RotateEvidenceKey(ctx, first, entries[0], sig, old.signerKey(), nk.signerKey())
	}
	if _, err = l.appendLocked(ctx, [][]byte{raw}, put); err != nil {
		os.Remove(filepath.Join(l.dir, keyNewFile)) //nolint:errcheck // Open discards it anyway
		return RotationResult{}, fmt.Errorf("evidence key rotation: %w", err)
	}
	cp, err := l.checkpointLocked()
	if err != nil {
		return RotationResult{}, fmt.Errorf("evidence key rotation: %w", err)
	}
	r, err := parseRotation(raw, sig)
	if err != nil || r.Last != cp.Size {
		return RotationResult{}, fmt.Errorf("evidence key rotation: record reads back wrong (size %d, checkpoint %d): %v", r.Last, cp.Size, err)
	}
	if err := writeRotation(l.dir, r); err != nil {
		return RotationResult{}, err
	}
	if err := installKey(l.dir, nk); err != nil {
		return RotationResult{}, err
	}
	l.rotations = append(l.rotations, r)
	l.chain = append(l.chain[:len(l.chain)-1:len(l.chain)-1], keyEpoch{pub: old.Public(), until: cp.Size}, keyEpoch{pub: nk.Public(), until: ^uint64(0)})
	l.key = nk
	l.log.Info("evidence key rotated", "old", old.Fingerprint(), "new", nk.Fingerprint(), "last_old_size", cp.Size)
	return RotationResult{Old: old, New: nk, LastOldSize: cp.Size, Record: raw}, nil
}

// Keys returns the current key, the chain of every key the log has had and
// the signed rotation records that link them, oldest first.
func (l *Log) Keys() (*Key, KeyChain, []Rotation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.key, l.chain, l.rotations
}

// OpenCheckpoint verifies a signed checkpoint with the key of the chain
// that signs its tree size (read from the note before verification).
func (c KeyChain) OpenCheckpoint(msg []byte) (Checkpoint, error) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, errors.New("checkpoint: malformed note")
	}
	cp, err := parseCheckpointText(string(msg[:i+1]))
	if err != nil {
		return Checkpoint{}, err
	}
	return OpenCheckpoint(msg, c.PubFor(cp.Size))
}
