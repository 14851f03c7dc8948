// Package bundle writes and verifies evidence packages: the folder of
// events, leaf hashes, range, inclusion and consistency proofs, signed
// checkpoints, key rotation records, custody record, README and signed
// SHA256SUMS that an operator hands to a recipient, who checks it offline
// with Verify (`takedown evidence verify`) or with sha256sum and
// ssh-keygen alone, as the package's README explains.
//
// It reads the log only through internal/evidence, which owns the log, its
// keys and the proof formats; it does not print (internal/cli does).
package bundle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"golang.org/x/mod/sumdb/tlog"
)

// Selection chooses the events of an export: those of Case (all cases when
// empty) with a timestamp in [From, To) (no bound when zero), and, when
// Match is set, for which Match also returns true. Records that are not
// events (custody records) are never selected.
type Selection struct {
	Case     string
	From, To time.Time
	Match    func(ev *event.Event) bool
}

func (s Selection) matches(ev *event.Event) bool {
	if s.Case != "" && ev.Case != s.Case {
		return false
	}
	if !s.From.IsZero() && ev.Timestamp.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && !ev.Timestamp.Before(s.To) {
		return false
	}
	return s.Match == nil || s.Match(ev)
}

// prefilter is a cheap byte test that every selected record passes: the
// case ID appears in it verbatim. Used only for IDs that JSON writes as is.
func (s Selection) prefilter() []byte {
	if s.Case == "" {
		return nil
	}
	for _, r := range s.Case {
		if r < 0x20 || r == '"' || r == '\\' || r == '<' || r == '>' || r == '&' || r > 0x7e {
			return nil
		}
	}
	return []byte(s.Case)
}

// Namespace is the SSHSIG namespace of a package's manifest signature
// (SHA256SUMS.sig).
const Namespace = "takedown-evidence"

// Package file names.
const (
	fileEvents      = "events.jsonl"
	fileLeaves      = "leaves.tsv"
	fileRangeProof  = "range-proof.txt"
	fileCheckpoint  = "checkpoint.txt"
	fileCustody     = "custody.json"
	fileCustodyPf   = "custody.tlog-proof"
	fileKeyPub      = "key.pub"
	fileNoteKey     = "key.note"
	fileAllowed     = "allowed_signers"
	fileReadme      = "README.md"
	fileSums        = "SHA256SUMS"
	fileSumsSig     = "SHA256SUMS.sig"
	dirCheckpoints  = "checkpoints"
	dirConsistency  = "consistency"
	dirKeys         = "keys" // rotation records: <size>.json, .json.sig, .tlog-proof
	maxEarlierCheck = 64
)

// Export writes an evidence package for the events sel selects into dir
// (which must not exist or be empty). The package holds the full index range
// from the first to the last selected event: selected entries in full
// (events.jsonl, nonces in leaves.tsv), the others as their leaf hash only,
// so that any omission breaks the range proof. It appends a custody record
// of the export (who, for whom, what) to the log, makes a checkpoint that
// covers it, and adds consistency proofs from earlier checkpoints,
// SHA256SUMS and its SSH signature. Before returning it verifies the
// package it wrote.
func Export(ctx context.Context, l *evidence.Log, sel Selection, dir, who, forWhom string) error {
	if who == "" {
		return errors.New("evidence export: who is exporting must be named")
	}
	if err := prepareDir(dir); err != nil {
		return err
	}
	n := l.Size()
	// Pass 1: find the selected entries.
	var picked []uint64
	pre := sel.prefilter()
	err := l.Entries(ctx, 0, n, func(i uint64, _, rec []byte) error {
		if pre != nil && !bytes.Contains(rec, pre) {
			return nil
		}
		ev, err := event.UnmarshalJSONL(rec)
		if err != nil || !sel.matches(&ev) {
			return nil
		}
		picked = append(picked, i)
		return nil
	})
	if err != nil {
		return fmt.Errorf("evidence export: %w", err)
	}
	if len(picked) == 0 {
		return fmt.Errorf("evidence export: no event of case %q between %s and %s in the log (%d entries)", sel.Case, fmtTime(sel.From), fmtTime(sel.To), n)
	}
	lo, hi := picked[0], picked[len(picked)-1]+1

	// The custody record goes into the log before the checkpoint that the
	// package ships, so the package proves its own custody record.
	cr := evidence.CustodyRecord{Action: "export", Who: who, ForWhom: forWhom, Case: sel.Case,
		First: lo, End: hi, Events: len(picked), TreeSize: n}
	if !sel.From.IsZero() {
		f := sel.From.UTC()
		cr.From = &f
	}
	if !sel.To.IsZero() {
		t := sel.To.UTC()
		cr.To = &t
	}
	ci, crBytes, err := l.AppendCustody(ctx, &cr)
	if err != nil {
		return err
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return err
	}
	w := &pkgWriter{dir: dir}

	// Pass 2: events.jsonl and leaves.tsv over [lo, hi).
	ev, err := w.create(fileEvents)
	if err != nil {
		return err
	}
	lv, err := w.create(fileLeaves)
	if err != nil {
		return err
	}
	leaves := make([]tlog.Hash, 0, hi-lo)
	p := 0
	err = l.Entries(ctx, lo, hi, func(i uint64, nonce, rec []byte) error {
		h := evidence.LeafHash(nonce, rec)
		leaves = append(leaves, h)
		if p < len(picked) && picked[p] == i {
			p++
			ev.Write(rec)
			ev.WriteByte('\n')
			fmt.Fprintf(lv, "%d\t%s\t%s\n", i, hex.EncodeToString(nonce), hex.EncodeToString(h[:]))
		} else {
			fmt.Fprintf(lv, "%d\t-\t%s\n", i, hex.EncodeToString(h[:]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("evidence export: %w", err)
	}
	rp, err := l.ProveRange(cp.Size, lo, hi)
	if err != nil {
		return err
	}
	if root, err := rp.Root(leaves); err != nil || root != cp.Root {
		return fmt.Errorf("evidence export: the stored entries do not reproduce checkpoint %d (run evidence audit): %v", cp.Size, err)
	}
	w.file(fileRangeProof, rp.Marshal())
	w.file(fileCheckpoint, cp.Note)

	// Custody record and its inclusion proof.
	ip, crec, err := l.ProveEntry(cp, ci)
	if err != nil {
		return fmt.Errorf("evidence export: custody proof: %w", err)
	}
	if !bytes.Equal(crec, crBytes) {
		return fmt.Errorf("evidence export: custody entry %d reads back differently", ci)
	}
	w.file(fileCustody, crBytes)
	w.file(fileCustodyPf, ip.Marshal())

	// Earlier checkpoints and consistency proofs to the package's one.
	cps, err := l.Checkpoints()
	if err != nil {
		return err
	}
	for _, c := range earlierCheckpoints(cps, cp.Size, hi) {
		cproof, err := l.ProveConsistency(c.Size, cp.Size)
		if err != nil {
			return fmt.Errorf("evidence export: consistency proof from %d: %w", c.Size, err)
		}
		name := fmt.Sprintf("%020d.txt", c.Size)
		w.file(filepath.Join(dirCheckpoints, name), c.Note)
		w.file(filepath.Join(dirConsistency, name), cproof.Marshal())
	}

	// Key rotations, then the keys and the README.
	k, chain, rots := l.Keys()
	if err := exportRotations(l, w, rots, cp); err != nil {
		return err
	}
	w.file(fileKeyPub, []byte(k.SSHPublicKey()+"\n"))
	w.file(fileNoteKey, []byte(k.VerifierKey()+"\n"))
	w.file(fileAllowed, []byte(evidence.Principal+` namespaces="`+Namespace+`" `+k.SSHPublicKey()+"\n"))
	w.file(fileReadme, readme(cr, cp, k))
	if err := w.close(); err != nil {
		return err
	}
	// Manifest and its signature.
	sums, err := manifest(dir)
	if err != nil {
		return err
	}
	sig, err := k.SSHSign(Namespace, sums)
	if err != nil {
		return err
	}
	// Package files are the owner's only (0600, directories 0700): they
	// hold infected machines' addresses.
	if err := os.WriteFile(filepath.Join(dir, fileSums), sums, 0o600); err != nil {
		return fmt.Errorf("evidence export: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileSumsSig), sig, 0o600); err != nil {
		return fmt.Errorf("evidence export: %w", err)
	}
	rep, err := Verify(dir, chain.First()) // from the first key: the rotations too
	if err != nil {
		return fmt.Errorf("evidence export: self-check: %w", err)
	}
	if !rep.OK() {
		return fmt.Errorf("evidence export: the package written fails its own verification: %s", rep.Failed())
	}
	return nil
}

// exportRotations writes every rotation record into the package's keys/
// folder with its signature and its inclusion proof in checkpoint cp.
func exportRotations(l *evidence.Log, w *pkgWriter, rots []evidence.Rotation, cp evidence.Checkpoint) error {
	for _, r := range rots {
		idx := r.Record.TreeSize
		ip, rec, err := l.ProveEntry(cp, idx)
		if err != nil {
			return fmt.Errorf("evidence export: rotation proof: %w", err)
		}
		if !bytes.Equal(rec, r.Raw) {
			return fmt.Errorf("evidence export: rotation record at entry %d reads back differently", idx)
		}
		base := path.Join(dirKeys, fmt.Sprintf("%020d", r.Last))
		w.file(base+".json", r.Raw)
		w.file(base+".json.sig", r.Sig)
		w.file(base+".tlog-proof", ip.Marshal())
	}
	return nil
}

// earlierCheckpoints picks the checkpoints a package proves consistent
// with its own (size n): all earlier ones when there are at most
// maxEarlierCheck, else the first that covers the exported range (end hi)
// and the most recent others.
func earlierCheckpoints(cps []evidence.Checkpoint, n, hi uint64) []evidence.Checkpoint {
	var earlier []evidence.Checkpoint
	for _, c := range cps {
		if c.Size > 0 && c.Size < n {
			earlier = append(earlier, c)
		}
	}
	if len(earlier) <= maxEarlierCheck {
		return earlier
	}
	out := earlier[len(earlier)-(maxEarlierCheck-1):]
	for _, c := range earlier {
		if c.Size >= hi {
			if c.Size < out[0].Size {
				out = append([]evidence.Checkpoint{c}, out...)
			}
			break
		}
	}
	return out
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(open)"
	}
	return t.UTC().Format(time.RFC3339)
}

func prepareDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("evidence export: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("evidence export: %w", err)
	case len(ents) > 0:
		return fmt.Errorf("evidence export: %s is not empty", dir)
	}
	return nil
}

// pkgWriter writes package files and keeps the first error.
type pkgWriter struct {
	dir  string
	open []*os.File
	bufs []*bufio.Writer
	err  error
}

func (w *pkgWriter) create(name string) (*bufio.Writer, error) {
	p := filepath.Join(w.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("evidence export: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("evidence export: %w", err)
	}
	b := bufio.NewWriterSize(f, 256<<10)
	w.open = append(w.open, f)
	w.bufs = append(w.bufs, b)
	return b, nil
}

func (w *pkgWriter) file(name string, data []byte) {
	if w.err != nil {
		return
	}
	b, err := w.create(name)
	if err != nil {
		w.err = err
		return
	}
	b.Write(data)
}

func (w *pkgWriter) close() error {
	errs := []error{w.err}
	for i, f := range w.open {
		errs = append(errs, w.bufs[i].Flush(), f.Sync(), f.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("evidence export: %w", err)
	}
	return nil
}

// manifest returns SHA256SUMS (sha256sum -c format, "<hex>  <path>", paths
// relative to dir, sorted) over every file but the manifest and its
// signature.
func manifest(dir string) ([]byte, error) {
	files, err := packageFiles(dir)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, name := range files {
		if name == fileSums || name == fileSumsSig {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, name)
	}
	return []byte(b.String()), nil
}

// packageFiles lists the regular files under dir, slash-separated and
// sorted. Anything else (symlinks, devices) is an error.
func packageFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evidence package: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
