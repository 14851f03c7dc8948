package bundle

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/sshsig"
	"golang.org/x/mod/sumdb/tlog"
)

// Names of the checks Verify runs, in order.
const (
	CheckPackageKey  = "package key"
	CheckManifestSig = "manifest signature"
	CheckManifest    = "manifest"
	CheckCheckpoint  = "checkpoint"
	CheckLeaves      = "leaves"
	CheckEvents      = "events"
	CheckRangeProof  = "range proof"
	CheckCustody     = "custody record"
	CheckConsistency = "earlier checkpoints"
	// CheckKeyChain runs only for a package that holds a keys/ folder.
	CheckKeyChain     = "key rotations"
	maxVerifyLineSize = evidence.DefaultMaxRecordSize + 1
)

// Check is the outcome of one named verification step.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report lists every check Verify ran on a package.
type Report struct {
	Dir         string  `json:"dir"`
	Fingerprint string  `json:"trusted_key"`
	Checks      []Check `json:"checks"`
}

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Failed names the failed checks, for an error message.
func (r Report) Failed() string {
	var s []string
	for _, c := range r.Checks {
		if !c.OK {
			s = append(s, c.Name+": "+c.Detail)
		}
	}
	return strings.Join(s, "; ")
}

// Check returns the check called name.
func (r Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func (r *Report) add(name string, err error, okDetail string) {
	if err != nil {
		r.Checks = append(r.Checks, Check{Name: name, Detail: err.Error()})
		return
	}
	r.Checks = append(r.Checks, Check{Name: name, OK: true, Detail: okDetail})
}

var errPrereq = errors.New("not checked: depends on a check that failed")

// Verify checks an evidence package in dir offline against trustedPubKey
// (any form ParsePublicKey accepts; a key shipped in the package is never
// trusted by itself). It returns an error only when the trusted key cannot
// be parsed; every problem with the package is a failed check in the
// report.
//
// A package of a log whose key was rotated holds the signed rotation
// records in keys/; Verify follows them from the trusted key (each signed
// by the key before it) to the key that signed the package, and checks
// every checkpoint with the key that signs its size (evidence.KeyChain).
func Verify(dir string, trustedPubKey []byte) (Report, error) {
	trusted, err := evidence.ParsePublicKey(trustedPubKey)
	if err != nil {
		return Report{}, fmt.Errorf("trusted key: %w", err)
	}
	r := Report{Dir: dir, Fingerprint: sshsig.Fingerprint(trusted)}
	chain, rots, hasKeys, chainErr := packageChain(dir, trusted)
	pub := chain.Current() // the package's signing key, reached from the trusted one
	keyDetail := "the package's key is the trusted key " + sshsig.Fingerprint(pub)
	if len(rots) > 0 && chainErr == nil {
		keyDetail = fmt.Sprintf("the package's key %s follows from the trusted key by %d rotation(s)", sshsig.Fingerprint(pub), len(rots))
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, errors.Unwrap(err))
		}
		return b, nil
	}

	// The keys shipped in the package must be the trusted one.
	r.add(CheckPackageKey, func() error {
		for _, name := range []string{fileKeyPub, fileNoteKey, fileAllowed} {
			b, err := read(name)
			if err != nil {
				return err
			}
			k, err := evidence.ParsePublicKey(b)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if !k.Equal(pub) {
				return fmt.Errorf("%s holds key %s, not the trusted key %s: the package was made with another key", name, sshsig.Fingerprint(k), sshsig.Fingerprint(pub))
			}
		}
		return nil
	}(), keyDetail)

	// Manifest signature and manifest.
	sums, sumsErr := read(fileSums)
	r.add(CheckManifestSig, func() error {
		if sumsErr != nil {
			return sumsErr
		}
		sig, err := read(fileSumsSig)
		if err != nil {
			return err
		}
		return sshsig.Verify(pub, Namespace, sums, sig)
	}(), "SHA256SUMS is signed by the trusted key (namespace "+Namespace+")")
	nfiles := 0
	r.add(CheckManifest, func() error {
		if sumsErr != nil {
			return sumsErr
		}
		listed, err := ParseManifest(sums)
		if err != nil {
			return err
		}
		nfiles = len(listed)
		files, err := packageFiles(dir)
		if err != nil {
			return err
		}
		var problems []string
		present := map[string]bool{}
		for _, f := range files {
			present[f] = true
			if _, ok := listed[f]; !ok && f != fileSums && f != fileSumsSig {
				problems = append(problems, f+" is not in SHA256SUMS")
			}
		}
		for _, name := range sortedKeys(listed) {
			if !present[name] {
				problems = append(problems, name+" is missing")
				continue
			}
			sum, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(name)))
			if err != nil {
				return err
			}
			if sum != listed[name] {
				problems = append(problems, name+" does not match its SHA-256")
			}
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	}(), "every file matches SHA256SUMS, none unlisted")
	if c, _ := r.Check(CheckManifest); c.OK {
		r.Checks[len(r.Checks)-1].Detail = fmt.Sprintf("all %d files match SHA256SUMS, none unlisted", nfiles)
	}

	// Checkpoint.
	var cp evidence.Checkpoint
	cpBytes, cpErr := read(fileCheckpoint)
	if cpErr == nil {
		cp, cpErr = chain.OpenCheckpoint(cpBytes)
	}
	r.add(CheckCheckpoint, cpErr, fmt.Sprintf("signed by the trusted key: log %s, size %d, root %s", cp.Origin, cp.Size, cp.Root.String()))
	if hasKeys {
		r.add(CheckKeyChain, func() error {
			if chainErr != nil {
				return chainErr
			}
			if cpErr != nil {
				return errPrereq
			}
			return checkRotationProofs(dir, rots, cp, cpBytes)
		}(), fmt.Sprintf("%d rotation record(s), each signed by the key before it and in the checkpoint's tree, lead from the trusted key to %s", len(rots), sshsig.Fingerprint(pub)))
	}

	// Custody record (read early: it says what the package claims).
	var cr evidence.CustodyRecord
	crErr := func() error {
		b, err := read(fileCustody)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cr); err != nil {
			return fmt.Errorf("custody.json: %w", err)
		}
		if cr.Type != "custody" || cr.Action != "export" {
			return errors.New("custody.json: not an export custody record")
		}
		pb, err := read(fileCustodyPf)
		if err != nil {
			return err
		}
		ip, err := evidence.ParseInclusionProof(pb)
		if err != nil {
			return err
		}
		if cpErr != nil {
			return errPrereq
		}
		if !bytes.Equal(ip.Checkpoint, cpBytes) {
			return errors.New("custody.tlog-proof: its checkpoint is not checkpoint.txt")
		}
		if len(ip.Extra) != evidence.NonceSize {
			return errors.New("custody.tlog-proof: extra data is not a nonce")
		}
		if ip.Index >= cp.Size {
			return fmt.Errorf("custody.tlog-proof: index %d outside tree size %d", ip.Index, cp.Size)
		}
		if err := tlog.CheckRecord(ip.Proof, int64(cp.Size), cp.Root, int64(ip.Index), evidence.LeafHash(ip.Extra, b)); err != nil {
			return fmt.Errorf("custody record not in the checkpoint's tree: %w", err)
		}
		return nil
	}()
	r.add(CheckCustody, crErr, fmt.Sprintf("exported by %q for %q at %s; in the log's tree", cr.Who, cr.ForWhom, cr.Time.UTC().Format("2006-01-02T15:04:05Z")))

	// Leaves and events.
	lvs, revealed, lvErr := readLeaves(dir)
	r.add(CheckLeaves, lvErr, fmt.Sprintf("%d contiguous entries, %d events shown in full and matching their leaf hashes, %d others as hashes only", len(lvs), revealed, len(lvs)-revealed))
	r.add(CheckEvents, func() error {
		if lvErr != nil || crErr != nil {
			return errPrereq
		}
		return checkEvents(dir, cr)
	}(), fmt.Sprintf("every event is of case %q and inside [%s, %s)", cr.Case, ptrTime(cr.From), ptrTime(cr.To)))

	// Range proof.
	r.add(CheckRangeProof, func() error {
		b, err := read(fileRangeProof)
		if err != nil {
			return err
		}
		rp, err := evidence.ParseRangeProof(b)
		if err != nil {
			return err
		}
		if cpErr != nil || lvErr != nil {
			return errPrereq
		}
		if rp.Size != cp.Size {
			return fmt.Errorf("proof is for tree size %d, checkpoint is %d", rp.Size, cp.Size)
		}
		lo, hi := lvs[0].index, lvs[len(lvs)-1].index+1
		if rp.Lo != lo || rp.Hi != hi {
			return fmt.Errorf("proof covers entries [%d, %d), leaves.tsv [%d, %d)", rp.Lo, rp.Hi, lo, hi)
		}
		if crErr == nil && (cr.First != lo || cr.End != hi || cr.Events != revealed) {
			return fmt.Errorf("custody record says entries [%d, %d) with %d events; package has [%d, %d) with %d", cr.First, cr.End, cr.Events, lo, hi, revealed)
		}
		hs := make([]tlog.Hash, len(lvs))
		for i, l := range lvs {
			hs[i] = l.hash
		}
		root, err := rp.Root(hs)
		if err != nil {
			return err
		}
		if root != cp.Root {
			return fmt.Errorf("entries [%d, %d) and the proof give root %s, the checkpoint says %s", lo, hi, root.String(), cp.Root.String())
		}
		return nil
	}(), "entries and proof recompute the checkpoint's root")

	// Earlier checkpoints.
	nEarlier := 0
	r.add(CheckConsistency, func() error {
		ents, err := os.ReadDir(filepath.Join(dir, dirCheckpoints))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if cpErr != nil {
			return errPrereq
		}
		var problems []string
		for _, e := range ents {
			name := e.Name()
			cb, err := read(path.Join(dirCheckpoints, name))
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			c, err := chain.OpenCheckpoint(cb)
			if err != nil {
				problems = append(problems, name+": "+err.Error())
				continue
			}
			if c.Origin != cp.Origin {
				problems = append(problems, name+": another log ("+c.Origin+")")
				continue
			}
			pb, err := read(path.Join(dirConsistency, name))
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			p, err := evidence.ParseConsistencyProof(pb)
			if err != nil {
				problems = append(problems, name+": "+err.Error())
				continue
			}
			if p.Old != c.Size || p.New != cp.Size {
				problems = append(problems, fmt.Sprintf("%s: proof is from %d to %d, checkpoints are %d and %d", name, p.Old, p.New, c.Size, cp.Size))
				continue
			}
			if err := p.Verify(c.Root, cp.Root); err != nil {
				problems = append(problems, fmt.Sprintf("%s: checkpoint %d is not a prefix of checkpoint %d: %v", name, c.Size, cp.Size, err))
				continue
			}
			nEarlier++
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	}(), "")
	if c := &r.Checks[len(r.Checks)-1]; c.OK {
		c.Detail = fmt.Sprintf("%d earlier checkpoints are prefixes of this one", nEarlier)
	}
	return r, nil
}

func ptrTime(t *time.Time) string {
	if t == nil {
		return "open"
	}
	return t.UTC().Format(time.RFC3339)
}

type leafLine struct {
	index uint64
	hash  tlog.Hash
	shown bool
}

// readLeaves parses leaves.tsv and checks it against events.jsonl: indices
// contiguous and increasing, every shown entry's line hashing (with its
// nonce) to its leaf hash, and as many event lines as shown entries.
func readLeaves(dir string) ([]leafLine, int, error) {
	lf, err := os.Open(filepath.Join(dir, fileLeaves))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", fileLeaves, errors.Unwrap(err))
	}
	defer lf.Close()
	ef, err := os.Open(filepath.Join(dir, fileEvents))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", fileEvents, errors.Unwrap(err))
	}
	defer ef.Close()
	evr := bufio.NewReaderSize(ef, 1<<20)
	sc := bufio.NewScanner(lf)
	var out []leafLine
	shown := 0
	line := 0
	for sc.Scan() {
		line++
		ll, nonce, err := ParseLeafLine(sc.Text())
		if err != nil {
			return nil, 0, fmt.Errorf("leaves.tsv:%d: %w", line, err)
		}
		if len(out) > 0 && ll.index != out[len(out)-1].index+1 {
			prev := out[len(out)-1].index
			switch {
			case ll.index == prev:
				return nil, 0, fmt.Errorf("leaves.tsv:%d: entry %d duplicated", line, ll.index)
			case ll.index < prev:
				return nil, 0, fmt.Errorf("leaves.tsv:%d: entry %d after %d: out of order", line, ll.index, prev)
			default:
				return nil, 0, fmt.Errorf("leaves.tsv:%d: entries %d to %d missing", line, prev+1, ll.index-1)
			}
		}
		if ll.shown {
			ev, err := readLine(evr)
			if err != nil {
				return nil, 0, fmt.Errorf("events.jsonl:%d: %w (leaves.tsv:%d shows entry %d)", shown+1, err, line, ll.index)
			}
			shown++
			if evidence.LeafHash(nonce, ev) != ll.hash {
				return nil, 0, fmt.Errorf("events.jsonl:%d does not hash to entry %d's leaf hash (event changed, or events dropped, added or reordered)", shown, ll.index)
			}
		}
		out = append(out, ll)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("leaves.tsv: %w", err)
	}
	if len(out) == 0 {
		return nil, 0, errors.New("leaves.tsv: no entries")
	}
	if _, err := readLine(evr); err != io.EOF {
		return nil, 0, fmt.Errorf("events.jsonl: more lines than leaves.tsv shows (%d)", shown)
	}
	return out, shown, nil
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		b, err := r.ReadSlice('\n')
		line = append(line, b...)
		if len(line) > maxVerifyLineSize {
			return nil, errors.New("line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, errors.New("last line has no newline")
		}
		if err != nil {
			return nil, err
		}
		return line[:len(line)-1], nil
	}
}

// ParseLeafLine parses one line of leaves.tsv: "index<TAB>nonce<TAB>leaf
// hash" with hex nonce and hash, the nonce "-" for an entry shown by its
// hash only.
func ParseLeafLine(s string) (l leafLine, nonce []byte, err error) {
	f := strings.Split(s, "\t")
	if len(f) != 3 {
		return l, nil, errors.New("want index, nonce and leaf hash separated by tabs")
	}
	if l.index, err = evidence.ParseDecimal(f[0]); err != nil {
		return l, nil, err
	}
	if f[1] != "-" {
		nonce, err = hex.DecodeString(f[1])
		if err != nil || len(nonce) != evidence.NonceSize {
			return l, nil, fmt.Errorf("bad nonce %q", truncate(f[1], 40))
		}
		l.shown = true
	}
	h, err := hex.DecodeString(f[2])
	if err != nil || len(h) != tlog.HashSize {
		return l, nil, fmt.Errorf("bad leaf hash %q", truncate(f[2], 70))
	}
	copy(l.hash[:], h)
	return l, nonce, nil
}

// checkEvents decodes every event and checks it against the custody
// record's case and window.
func checkEvents(dir string, cr evidence.CustodyRecord) error {
	f, err := os.Open(filepath.Join(dir, fileEvents))
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	sel := Selection{Case: cr.Case}
	if cr.From != nil {
		sel.From = *cr.From
	}
	if cr.To != nil {
		sel.To = *cr.To
	}
	for n := 1; ; n++ {
		line, err := readLine(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("events.jsonl:%d: %w", n, err)
		}
		ev, err := event.UnmarshalJSONL(line)
		if err != nil {
			return fmt.Errorf("events.jsonl:%d: %w", n, err)
		}
		if !sel.matches(&ev) {
			return fmt.Errorf("events.jsonl:%d: event of case %q at %s is outside the export's case or window", n, ev.Case, ev.Timestamp.Format(time.RFC3339))
		}
	}
}

// ParseManifest parses SHA256SUMS ("<64 hex>  <path>" lines, as sha256sum
// writes them) into path → hex digest.
func ParseManifest(b []byte) (map[string]string, error) {
	lines, err := evidence.SplitLines(b)
	if err != nil {
		return nil, fmt.Errorf("SHA256SUMS: %w", err)
	}
	out := make(map[string]string, len(lines))
	for i, l := range lines {
		sum, name, ok := strings.Cut(l, "  ")
		if !ok || len(sum) != 64 || strings.ToLower(sum) != sum {
			return nil, fmt.Errorf("SHA256SUMS:%d: want \"<sha256 hex>  <file>\"", i+1)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("SHA256SUMS:%d: bad digest", i+1)
		}
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." || strings.ContainsAny(name, "\\\r") {
			return nil, fmt.Errorf("SHA256SUMS:%d: bad file name %q", i+1, truncate(name, 60))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("SHA256SUMS:%d: %s listed twice", i+1, name)
		}
		out[name] = sum
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// packageChain follows a package's keys/ folder from the trusted key. has
// is false when the package has no keys/ folder.
func packageChain(dir string, trusted ed25519.PublicKey) (chain evidence.KeyChain, rots []evidence.Rotation, has bool, err error) {
	kd := filepath.Join(dir, dirKeys)
	if _, err := os.Stat(kd); errors.Is(err, fs.ErrNotExist) {
		return evidence.SingleKey(trusted), nil, false, nil
	}
	rots, err = evidence.ReadRotations(kd)
	if err != nil {
		return evidence.SingleKey(trusted), nil, true, err
	}
	if len(rots) == 0 {
		return evidence.SingleKey(trusted), nil, true, errors.New("keys/: no rotation records")
	}
	chain, err = evidence.FollowRotations(trusted, rots)
	if err != nil {
		return evidence.SingleKey(trusted), rots, true, err
	}
	return chain, rots, true, nil
}

// checkRotationProofs checks that every rotation record of a package is in
// the tree of its checkpoint cp (cpBytes as shipped).
func checkRotationProofs(dir string, rots []evidence.Rotation, cp evidence.Checkpoint, cpBytes []byte) error {
	for _, r := range rots {
		name := path.Join(dirKeys, fmt.Sprintf("%020d.tlog-proof", r.Last))
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("%s: %w", name, errors.Unwrap(err))
		}
		ip, err := evidence.ParseInclusionProof(b)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !bytes.Equal(ip.Checkpoint, cpBytes) {
			return fmt.Errorf("%s: its checkpoint is not checkpoint.txt", name)
		}
		if len(ip.Extra) != evidence.NonceSize || ip.Index != r.Record.TreeSize || ip.Index >= cp.Size {
			return fmt.Errorf("%s: bad nonce or index %d (record says %d, tree size %d)", name, ip.Index, r.Record.TreeSize, cp.Size)
		}
		if err := tlog.CheckRecord(ip.Proof, int64(cp.Size), cp.Root, int64(ip.Index), evidence.LeafHash(ip.Extra, r.Raw)); err != nil {
			return fmt.Errorf("%s: rotation record not in the checkpoint's tree: %w", name, err)
		}
	}
	return nil
}
