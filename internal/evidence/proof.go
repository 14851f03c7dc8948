package evidence

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// A range proof shows that the leaves [Lo, Hi) sit, contiguous and in
// order, in the tree of size Size: it gives the hashes of the perfect
// subtrees covering [0, Lo) and [Hi, Size) (each the greedy, largest-first
// decomposition), and the verifier recomputes the RFC 6962 root from those
// and the range's own leaf hashes.
//
// File form (range-proof.txt):
//
//	takedown.evidence/range-proof@v1
//	size <tree size>
//	range <lo> <hi>
//	<start> <width> <base64 hash>     one line per subtree, left to right
const rangeProofHeader = "takedown.evidence/range-proof@v1"

// RangeProof proves that leaves [Lo, Hi) are in the tree of size Size.
type RangeProof struct {
	Size, Lo, Hi uint64
	Nodes        []Node
}

// Node is the hash of the perfect subtree of Width leaves starting at Start.
type Node struct {
	Start, Width uint64
	Hash         tlog.Hash
}

// coverNodes decomposes [a, b) into maximal aligned perfect subtrees.
func coverNodes(a, b uint64) []Node {
	var out []Node
	for a < b {
		w := uint64(1)
		if a != 0 {
			w = a & -a
		} else {
			w = 1 << (63 - bits.LeadingZeros64(b))
		}
		for a+w > b {
			w >>= 1
		}
		out = append(out, Node{Start: a, Width: w})
		a += w
	}
	return out
}

// proveRange builds the range proof of [lo, hi) in the tree of size n from
// stored hashes.
func proveRange(n, lo, hi uint64, r tlog.HashReader) (RangeProof, error) {
	if lo >= hi || hi > n {
		return RangeProof{}, fmt.Errorf("range proof: bad range [%d, %d) in tree of size %d", lo, hi, n)
	}
	nodes := append(coverNodes(0, lo), coverNodes(hi, n)...)
	idx := make([]int64, len(nodes))
	for i, nd := range nodes {
		level := bits.TrailingZeros64(nd.Width)
		idx[i] = tlog.StoredHashIndex(level, int64(nd.Start>>level))
	}
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return RangeProof{}, fmt.Errorf("range proof: %w", err)
	}
	for i := range nodes {
		nodes[i].Hash = hs[i]
	}
	return RangeProof{Size: n, Lo: lo, Hi: hi, Nodes: nodes}, nil
}

// Root recomputes the tree root from the proof and the leaf hashes of
// [Lo, Hi). Every node of the proof must lie outside the range and be used.
func (p RangeProof) Root(leaves []tlog.Hash) (tlog.Hash, error) {
	if p.Lo >= p.Hi || p.Hi > p.Size {
		return tlog.Hash{}, fmt.Errorf("range [%d, %d) not inside tree size %d", p.Lo, p.Hi, p.Size)
	}
	if uint64(len(leaves)) != p.Hi-p.Lo {
		return tlog.Hash{}, fmt.Errorf("%d leaf hashes for a range of %d", len(leaves), p.Hi-p.Lo)
	}
	known := make(map[[2]uint64]tlog.Hash, len(p.Nodes))
	for _, nd := range p.Nodes {
		if nd.Width == 0 || nd.Width&(nd.Width-1) != 0 || nd.Start%nd.Width != 0 || nd.Start+nd.Width > p.Size || nd.Start+nd.Width < nd.Start {
			return tlog.Hash{}, fmt.Errorf("node (%d, %d) is not a subtree of the tree", nd.Start, nd.Width)
		}
		if nd.Start < p.Hi && nd.Start+nd.Width > p.Lo {
			return tlog.Hash{}, fmt.Errorf("node (%d, %d) overlaps the range", nd.Start, nd.Width)
		}
		k := [2]uint64{nd.Start, nd.Width}
		if _, dup := known[k]; dup {
			return tlog.Hash{}, fmt.Errorf("node (%d, %d) given twice", nd.Start, nd.Width)
		}
		known[k] = nd.Hash
	}
	used := 0
	var sub func(s, e uint64) (tlog.Hash, error)
	sub = func(s, e uint64) (tlog.Hash, error) {
		if s >= p.Lo && e <= p.Hi && e-s == 1 {
			return leaves[s-p.Lo], nil
		}
		if e <= p.Lo || s >= p.Hi {
			if h, ok := known[[2]uint64{s, e - s}]; ok {
				used++
				return h, nil
			}
		}
		if e-s == 1 {
			return tlog.Hash{}, fmt.Errorf("no hash for leaf %d", s)
		}
		k := uint64(1) << (63 - bits.LeadingZeros64(e-s-1)) // largest power of two < e-s
		l, err := sub(s, s+k)
		if err != nil {
			return tlog.Hash{}, err
		}
		r, err := sub(s+k, e)
		if err != nil {
			return tlog.Hash{}, err
		}
		return tlog.NodeHash(l, r), nil
	}
	root, err := sub(0, p.Size)
	if err != nil {
		return tlog.Hash{}, err
	}
	if used != len(known) {
		return tlog.Hash{}, fmt.Errorf("%d of the proof's nodes are not part of the tree's shape", len(known)-used)
	}
	return root, nil
}

// Marshal returns the file form of p.
func (p RangeProof) Marshal() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nsize %d\nrange %d %d\n", rangeProofHeader, p.Size, p.Lo, p.Hi)
	for _, nd := range p.Nodes {
		fmt.Fprintf(&b, "%d %d %s\n", nd.Start, nd.Width, b64(nd.Hash))
	}
	return []byte(b.String())
}

// ParseRangeProof parses the file form of a range proof.
func ParseRangeProof(b []byte) (RangeProof, error) {
	lines, err := SplitLines(b)
	if err != nil {
		return RangeProof{}, fmt.Errorf("range proof: %w", err)
	}
	if len(lines) < 3 || lines[0] != rangeProofHeader {
		return RangeProof{}, errors.New("range proof: missing header, size or range line")
	}
	var p RangeProof
	if p.Size, err = keyedUint(lines[1], "size"); err != nil {
		return RangeProof{}, fmt.Errorf("range proof: %w", err)
	}
	f := strings.Split(lines[2], " ")
	if len(f) != 3 || f[0] != "range" {
		return RangeProof{}, errors.New("range proof: malformed range line")
	}
	if p.Lo, err = ParseDecimal(f[1]); err != nil {
		return RangeProof{}, fmt.Errorf("range proof: %w", err)
	}
	if p.Hi, err = ParseDecimal(f[2]); err != nil {
		return RangeProof{}, fmt.Errorf("range proof: %w", err)
	}
	if len(lines)-3 > 2*64 {
		return RangeProof{}, errors.New("range proof: too many nodes")
	}
	for i, line := range lines[3:] {
		f := strings.Split(line, " ")
		if len(f) != 3 {
			return RangeProof{}, fmt.Errorf("range proof: line %d: want start, width and hash", i+4)
		}
		var nd Node
		if nd.Start, err = ParseDecimal(f[0]); err != nil {
			return RangeProof{}, fmt.Errorf("range proof: line %d: %w", i+4, err)
		}
		if nd.Width, err = ParseDecimal(f[1]); err != nil {
			return RangeProof{}, fmt.Errorf("range proof: line %d: %w", i+4, err)
		}
		if nd.Hash, err = parseB64Hash(f[2]); err != nil {
			return RangeProof{}, fmt.Errorf("range proof: line %d: %w", i+4, err)
		}
		p.Nodes = append(p.Nodes, nd)
	}
	return p, nil
}

// ProveRange returns the range proof of leaves [lo, hi) in the tree of
// size n (at most Size), from the stored hashes.
func (l *Log) ProveRange(n, lo, hi uint64) (RangeProof, error) {
	return proveRange(n, lo, hi, l.hashes())
}

// Consistency proofs (consistency/<old size>.txt):
//
//	takedown.evidence/consistency-proof@v1
//	old <size>
//	new <size>
//	<base64 hash>…      the RFC 9162 §2.1.4 proof, as tlog.ProveTree makes it
const consistencyHeader = "takedown.evidence/consistency-proof@v1"

// ConsistencyProof proves that the tree of size Old is a prefix of the tree
// of size New.
type ConsistencyProof struct {
	Old, New uint64
	Proof    tlog.TreeProof
}

// Marshal returns the file form of p.
func (p ConsistencyProof) Marshal() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nold %d\nnew %d\n", consistencyHeader, p.Old, p.New)
	for _, h := range p.Proof {
		b.WriteString(b64(h) + "\n")
	}
	return []byte(b.String())
}

// ParseConsistencyProof parses the file form of a consistency proof.
func ParseConsistencyProof(b []byte) (ConsistencyProof, error) {
	lines, err := SplitLines(b)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", err)
	}
	if len(lines) < 3 || lines[0] != consistencyHeader {
		return ConsistencyProof{}, errors.New("consistency proof: missing header, old or new line")
	}
	var p ConsistencyProof
	if p.Old, err = keyedUint(lines[1], "old"); err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", err)
	}
	if p.New, err = keyedUint(lines[2], "new"); err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", err)
	}
	if p.Proof, err = parseHashLines(lines[3:]); err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", err)
	}
	return p, nil
}

// ProveConsistency returns the proof that the tree of size old is a
// prefix of the tree of size n (at most Size).
func (l *Log) ProveConsistency(old, n uint64) (ConsistencyProof, error) {
	tp, err := tlog.ProveTree(int64(n), int64(old), l.hashes())
	if err != nil {
		return ConsistencyProof{}, err
	}
	return ConsistencyProof{Old: old, New: n, Proof: tp}, nil
}

// Verify checks p between the two roots.
func (p ConsistencyProof) Verify(oldRoot, newRoot tlog.Hash) error {
	if p.Old > p.New || p.New > 1<<62 {
		return fmt.Errorf("old size %d larger than new size %d", p.Old, p.New)
	}
	return tlog.CheckTree(p.Proof, int64(p.New), newRoot, int64(p.Old), oldRoot)
}

// InclusionProof is a C2SP tlog-proof (c2sp.org/tlog-proof@v1): the index
// of a leaf, optional extra data (here: the entry's nonce), the RFC 9162
// inclusion proof, and the signed checkpoint it leads to.
type InclusionProof struct {
	Extra      []byte
	Index      uint64
	Proof      tlog.RecordProof
	Checkpoint []byte
}

const tlogProofHeader = "c2sp.org/tlog-proof@v1"

// ProveEntry returns the inclusion proof of entry i in the tree of
// checkpoint cp, with the entry's nonce as extra data, and the entry's
// record, which the caller compares with the record it expects there.
func (l *Log) ProveEntry(cp Checkpoint, i uint64) (InclusionProof, []byte, error) {
	nonce, rec, err := l.readEntry(i)
	if err != nil {
		return InclusionProof{}, nil, err
	}
	proof, err := tlog.ProveRecord(int64(cp.Size), int64(i), l.hashes())
	if err != nil {
		return InclusionProof{}, nil, err
	}
	return InclusionProof{Extra: nonce, Index: i, Proof: proof, Checkpoint: cp.Note}, rec, nil
}

// Marshal returns the tlog-proof file form of p.
func (p InclusionProof) Marshal() []byte {
	var b strings.Builder
	b.WriteString(tlogProofHeader + "\n")
	if p.Extra != nil {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	fmt.Fprintf(&b, "index %d\n", p.Index)
	for _, h := range p.Proof {
		b.WriteString(b64(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return []byte(b.String())
}

// ParseInclusionProof parses a C2SP tlog-proof file. The checkpoint is
// returned unverified.
func ParseInclusionProof(b []byte) (InclusionProof, error) {
	head, cp, ok := strings.Cut(string(b), "\n\n")
	if !ok || cp == "" {
		return InclusionProof{}, errors.New("tlog-proof: no checkpoint after a blank line")
	}
	lines, err := SplitLines([]byte(head + "\n"))
	if err != nil {
		return InclusionProof{}, fmt.Errorf("tlog-proof: %w", err)
	}
	if len(lines) < 2 || lines[0] != tlogProofHeader {
		return InclusionProof{}, errors.New("tlog-proof: missing c2sp.org/tlog-proof@v1 header")
	}
	var p InclusionProof
	lines = lines[1:]
	if rest, ok := strings.CutPrefix(lines[0], "extra "); ok {
		if p.Extra, err = decodeB64(rest); err != nil {
			return InclusionProof{}, fmt.Errorf("tlog-proof: bad extra data: %w", err)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 {
		return InclusionProof{}, errors.New("tlog-proof: missing index line")
	}
	if p.Index, err = keyedUint(lines[0], "index"); err != nil {
		return InclusionProof{}, fmt.Errorf("tlog-proof: %w", err)
	}
	if p.Proof, err = parseHashLines(lines[1:]); err != nil {
		return InclusionProof{}, fmt.Errorf("tlog-proof: %w", err)
	}
	p.Checkpoint = []byte(cp)
	return p, nil
}

// SplitLines splits a proof or manifest file into its lines: the file must
// end in a newline and hold no empty line.
func SplitLines(b []byte) ([]string, error) {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return nil, errors.New("does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if l == "" {
			return nil, fmt.Errorf("line %d is empty", i+1)
		}
	}
	return lines, nil
}

func keyedUint(line, key string) (uint64, error) {
	rest, ok := strings.CutPrefix(line, key+" ")
	if !ok {
		return 0, fmt.Errorf("want %q line, got %q", key, truncate(line, 40))
	}
	return ParseDecimal(rest)
}

// ParseDecimal parses a tree size, leaf index or subtree width as the
// files write it: canonical decimal (no sign, no leading zero), below 2^63.
func ParseDecimal(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad number %q", truncate(s, 30))
	}
	return v, nil
}

func parseB64Hash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := decodeB64(s)
	if err != nil || len(raw) != tlog.HashSize {
		return h, fmt.Errorf("bad hash %q", truncate(s, 50))
	}
	copy(h[:], raw)
	return h, nil
}

func parseHashLines(lines []string) ([]tlog.Hash, error) {
	if len(lines) > 2*64 {
		return nil, errors.New("too many hashes")
	}
	out := make([]tlog.Hash, 0, len(lines))
	for _, l := range lines {
		h, err := parseB64Hash(l)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// decodeB64 decodes canonical standard base64 only: Go's decoder skips
// '\r' and '\n' even in strict mode, which would let two different files
// parse to the same proof.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break inside base64")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}
