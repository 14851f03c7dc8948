package evidence

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
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

// CustodyRecord is a custody action as stored in the log (one JSON object,
// "type":"custody"). Export records fill the export fields.
type CustodyRecord struct {
	Type   string    `json:"type"` // always "custody"
	Action string    `json:"action"`
	Time   time.Time `json:"time"`
	Detail string    `json:"detail,omitempty"`

	Who      string     `json:"who,omitempty"`
	ForWhom  string     `json:"for,omitempty"`
	Case     string     `json:"case,omitempty"`
	From     *time.Time `json:"from,omitempty"`
	To       *time.Time `json:"to,omitempty"`
	First    uint64     `json:"first,omitempty"` // first leaf of the exported range
	End      uint64     `json:"end,omitempty"`   // one past its last leaf
	Events   int        `json:"events,omitempty"`
	TreeSize uint64     `json:"tree_size,omitempty"` // log size when the export was selected (rotate-key: before the record)

	// rotate-key records (rotate.go): the old and the new key.
	OldKey     string `json:"old_key,omitempty"`      // OpenSSH form
	NewKey     string `json:"new_key,omitempty"`      // OpenSSH form
	NewNoteKey string `json:"new_note_key,omitempty"` // note verifier key
}

// Custody appends a custody action (export, hand-off, key rotation …) as a
// leaf of the log.
func (l *Log) Custody(ctx context.Context, action, detail string) error {
	if action == "" {
		return errors.New("evidence custody: empty action")
	}
	_, _, err := l.appendCustody(ctx, &CustodyRecord{Action: action, Detail: detail})
	return err
}

func (l *Log) appendCustody(ctx context.Context, c *CustodyRecord) (uint64, []byte, error) {
	c.Type = "custody"
	if c.Time.IsZero() {
		c.Time = l.opts.Now().UTC().Truncate(time.Millisecond)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return 0, nil, fmt.Errorf("evidence custody: %w", err)
	}
	i, err := l.Append(ctx, [][]byte{b})
	if err != nil {
		return 0, nil, fmt.Errorf("evidence custody: %w", err)
	}
	return i, b, nil
}

// readEntry reads entry i (nonce, record) given its offset from the index.
func (l *Log) readEntry(i uint64) (nonce, rec []byte, err error) {
	var ib [8]byte
	if _, err := l.index.ReadAt(ib[:], int64(i)*8); err != nil {
		return nil, nil, fmt.Errorf("evidence index entry %d: %w", i, err)
	}
	off := int64(beUint64(ib[:]))
	er := &entryReader{r: io.NewSectionReader(l.data, off, int64(entryHeader+NonceSize+l.opts.MaxRecordSize)), off: off, max: l.opts.MaxRecordSize}
	if err := er.next(); err != nil {
		return nil, nil, fmt.Errorf("evidence entry %d: %w", i, err)
	}
	return slices.Clone(er.nonce[:]), er.rec, nil
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

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
func Export(ctx context.Context, l *Log, sel Selection, dir, who, forWhom string) error {
	if who == "" {
		return errors.New("evidence export: who is exporting must be named")
	}
	if err := prepareDir(dir); err != nil {
		return err
	}
	n, dataEnd, err := l.snapshot()
	if err != nil {
		return err
	}
	// Pass 1: find the selected entries.
	var picked []uint64
	pre := sel.prefilter()
	er := &entryReader{r: bufio.NewReaderSize(io.NewSectionReader(l.data, 0, dataEnd), 1<<20), max: l.opts.MaxRecordSize}
	for i := uint64(0); i < n; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := er.next(); err != nil {
			return fmt.Errorf("evidence export: entry %d: %w", i, err)
		}
		if pre != nil && !bytes.Contains(er.rec, pre) {
			continue
		}
		ev, err := event.UnmarshalJSONL(er.rec)
		if err != nil || !sel.matches(&ev) {
			continue
		}
		picked = append(picked, i)
	}
	if len(picked) == 0 {
		return fmt.Errorf("evidence export: no event of case %q between %s and %s in the log (%d entries)", sel.Case, fmtTime(sel.From), fmtTime(sel.To), n)
	}
	lo, hi := picked[0], picked[len(picked)-1]+1

	// The custody record goes into the log before the checkpoint that the
	// package ships, so the package proves its own custody record.
	cr := CustodyRecord{Action: "export", Who: who, ForWhom: forWhom, Case: sel.Case,
		First: lo, End: hi, Events: len(picked), TreeSize: n}
	if !sel.From.IsZero() {
		f := sel.From.UTC()
		cr.From = &f
	}
	if !sel.To.IsZero() {
		t := sel.To.UTC()
		cr.To = &t
	}
	ci, crBytes, err := l.appendCustody(ctx, &cr)
	if err != nil {
		return err
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return err
	}
	hr := hashReader{l.hashes}
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
	var ib [8]byte
	if _, err := l.index.ReadAt(ib[:], int64(lo)*8); err != nil {
		return fmt.Errorf("evidence export: index: %w", err)
	}
	off := int64(beUint64(ib[:]))
	er = &entryReader{r: bufio.NewReaderSize(io.NewSectionReader(l.data, off, dataEnd-off), 1<<20), off: off, max: l.opts.MaxRecordSize}
	leaves := make([]tlog.Hash, 0, hi-lo)
	p := 0
	for i := lo; i < hi; i++ {
		if err := er.next(); err != nil {
			return fmt.Errorf("evidence export: entry %d: %w", i, err)
		}
		h := LeafHash(er.nonce[:], er.rec)
		leaves = append(leaves, h)
		if p < len(picked) && picked[p] == i {
			p++
			ev.Write(er.rec)
			ev.WriteByte('\n')
			fmt.Fprintf(lv, "%d\t%s\t%s\n", i, hex.EncodeToString(er.nonce[:]), hex.EncodeToString(h[:]))
		} else {
			fmt.Fprintf(lv, "%d\t-\t%s\n", i, hex.EncodeToString(h[:]))
		}
	}
	rp, err := proveRange(cp.Size, lo, hi, hr)
	if err != nil {
		return err
	}
	if root, err := rp.Root(leaves); err != nil || root != cp.Root {
		return fmt.Errorf("evidence export: the stored entries do not reproduce checkpoint %d (run evidence audit): %v", cp.Size, err)
	}
	w.file(fileRangeProof, rp.Marshal())
	w.file(fileCheckpoint, cp.Note)

	// Custody record and its inclusion proof.
	cnonce, crec, err := l.readEntry(ci)
	if err != nil {
		return err
	}
	if !bytes.Equal(crec, crBytes) {
		return fmt.Errorf("evidence export: custody entry %d reads back differently", ci)
	}
	proof, err := tlog.ProveRecord(int64(cp.Size), int64(ci), hr)
	if err != nil {
		return fmt.Errorf("evidence export: custody proof: %w", err)
	}
	w.file(fileCustody, crBytes)
	w.file(fileCustodyPf, InclusionProof{Extra: cnonce, Index: ci, Proof: proof, Checkpoint: cp.Note}.Marshal())

	// Earlier checkpoints and consistency proofs to the package's one.
	cps, err := l.Checkpoints()
	if err != nil {
		return err
	}
	for _, c := range earlierCheckpoints(cps, cp.Size, hi) {
		tp, err := tlog.ProveTree(int64(cp.Size), int64(c.Size), hr)
		if err != nil {
			return fmt.Errorf("evidence export: consistency proof from %d: %w", c.Size, err)
		}
		name := fmt.Sprintf("%020d.txt", c.Size)
		w.file(filepath.Join(dirCheckpoints, name), c.Note)
		w.file(filepath.Join(dirConsistency, name), ConsistencyProof{Old: c.Size, New: cp.Size, Proof: tp}.Marshal())
	}

	// Key rotations (rotate.go), then the keys and the README.
	k, chain, rots := l.keyState()
	if err := l.exportRotations(w, rots, cp, hr); err != nil {
		return err
	}
	w.file(fileKeyPub, []byte(k.SSHPublicKey()+"\n"))
	w.file(fileNoteKey, []byte(k.VerifierKey()+"\n"))
	w.file(fileAllowed, []byte(Principal+` namespaces="`+Namespace+`" `+k.SSHPublicKey()+"\n"))
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
	rep, err := Verify(dir, chain[0].pub) // from the first key: the rotations too
	if err != nil {
		return fmt.Errorf("evidence export: self-check: %w", err)
	}
	if !rep.OK() {
		return fmt.Errorf("evidence export: the package written fails its own verification: %s", rep.Failed())
	}
	l.log.Info("evidence exported", "dir", dir, "case", sel.Case, "events", len(picked), "first", lo, "end", hi, "checkpoint", cp.Size, "for", forWhom)
	return nil
}

// earlierCheckpoints picks the checkpoints a package proves consistent
// with its own (size n): all earlier ones when there are at most
// maxEarlierCheck, else the first that covers the exported range (end hi)
// and the most recent others.
func earlierCheckpoints(cps []Checkpoint, n, hi uint64) []Checkpoint {
	var earlier []Checkpoint
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
				out = append([]Checkpoint{c}, out...)
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
