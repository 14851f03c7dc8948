package stats

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/RoaringBitmap/roaring/v2/roaring64"
)

// Set is an exact set of source addresses: IPv4 addresses as 32-bit
// integers, IPv6 addresses by their 64-bit prefix (see docs/counting.md).
type Set struct {
	V4 *roaring.Bitmap
	V6 *roaring64.Bitmap
}

// NewSet returns an empty set.
func NewSet() Set { return Set{V4: roaring.New(), V6: roaring64.New()} }

// Add adds an address (IPv4-mapped IPv6 counts as IPv4).
func (s Set) Add(ip netip.Addr) {
	ip = ip.Unmap()
	if ip.Is4() {
		b := ip.As4()
		s.V4.Add(binary.BigEndian.Uint32(b[:]))
		return
	}
	b := ip.As16()
	s.V6.Add(binary.BigEndian.Uint64(b[:8]))
}

// Len is the number of distinct addresses (IPv6: /64 prefixes).
func (s Set) Len() uint64 {
	var n uint64
	if s.V4 != nil {
		n += s.V4.GetCardinality()
	}
	if s.V6 != nil {
		n += s.V6.GetCardinality()
	}
	return n
}

// Union returns the union of sets as a new set; the inputs are unchanged.
func Union(sets ...Set) Set {
	v4 := make([]*roaring.Bitmap, 0, len(sets))
	v6 := make([]*roaring64.Bitmap, 0, len(sets))
	for _, s := range sets {
		if s.V4 != nil && !s.V4.IsEmpty() {
			v4 = append(v4, s.V4)
		}
		if s.V6 != nil && !s.V6.IsEmpty() {
			v6 = append(v6, s.V6)
		}
	}
	out := Set{V4: roaring.New(), V6: roaring64.New()}
	if len(v4) > 0 {
		out.V4 = union(v4, (*roaring.Bitmap).GetCardinality, (*roaring.Bitmap).Clone, roaring.Or, (*roaring.Bitmap).Or)
	}
	if len(v6) > 0 {
		out.V6 = union(v6, (*roaring64.Bitmap).GetCardinality, (*roaring64.Bitmap).Clone, roaring64.Or, (*roaring64.Bitmap).Or)
	}
	return out
}

// union is the union of bms (at least one), largest first. A set much
// smaller than the union so far is added in place: it touches only its
// own containers, where a merging Or would copy the whole union again (a
// closed day read as one large blob and a dozen small ones copied the day
// a dozen times). A set of comparable size is merged into a new bitmap:
// roaring64's in-place Or (v2.30) inserts each bucket the union lacks one
// by one, quadratic on sparse sets such as random identifier hashes
// (roaring's 32-bit Or merges them in one pass; one rule serves both).
func union[B any](bms []B, card func(B) uint64, clone func(B) B, merge func(B, B) B, add func(B, B)) B {
	slices.SortFunc(bms, func(a, b B) int { return cmp.Compare(card(b), card(a)) })
	out := clone(bms[0])
	n := card(out)
	for _, b := range bms[1:] {
		if m := card(b); m*8 < n {
			add(out, b)
		} else {
			out = merge(out, b)
		}
		n = card(out)
	}
	return out
}

// botHash maps a family-scoped bot identifier to the 64-bit key counted in
// the identifier sets. Collisions are possible in principle and negligible
// in practice (about n²/2⁶⁵ for n identifiers).
func botHash(family, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(family))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return h.Sum64()
}

// Day is the analytics' view of one UTC day (or the part of one that a
// window covers): the address sets it needs, per dimension key.
type Day struct {
	Day int64 // unix seconds of UTC midnight
	// All holds the sources with a direct connection.
	All Set
	// Resolvers holds the sources seen only through DNS (for some family).
	Resolvers Set
	// IDAddrs holds the direct sources of families whose traffic carried
	// bot identifiers that day; All minus IDAddrs are the sources the
	// estimate models (docs/counting.md).
	IDAddrs Set
	// BotIDs holds the hashed, family-scoped bot identifiers, per case.
	BotIDs map[string]*roaring64.Bitmap
	// By maps a dimension to its keys' direct-source sets.
	By map[Dim]map[string]Set

	idFamilies map[string]bool // while building: families with identifiers

	// busiest is, for a block of days (blocks.go), the most sources
	// without identifiers on one of its days; 0 for one day, whose figure
	// is All minus IDAddrs.
	busiest uint64
}

// busiestDay is the most sources without identifiers on one day of d.
func (d *Day) busiestDay() uint64 {
	if d.busiest > 0 {
		return d.busiest
	}
	return d.All.Len() - d.IDAddrs.Len()
}

func newDay(day int64) *Day {
	d := &Day{Day: day, All: NewSet(), Resolvers: NewSet(), IDAddrs: NewSet(), BotIDs: make(map[string]*roaring64.Bitmap), By: make(map[Dim]map[string]Set, len(Dims))}
	for _, dim := range Dims {
		d.By[dim] = make(map[string]Set)
	}
	return d
}

func (d *Day) addDirect(ip netip.Addr, family string, keys [4]string, botIDs []string) {
	caseKey := keys[3]
	d.All.Add(ip)
	for i, dim := range Dims {
		m := d.By[dim]
		s, ok := m[keys[i]]
		if !ok {
			s = NewSet()
			m[keys[i]] = s
		}
		s.Add(ip)
	}
	if len(botIDs) == 0 {
		return
	}
	if d.idFamilies == nil {
		d.idFamilies = make(map[string]bool)
	}
	d.idFamilies[keys[2]] = true
	b := d.BotIDs[caseKey]
	if b == nil {
		b = roaring64.New()
		d.BotIDs[caseKey] = b
	}
	for _, id := range botIDs {
		b.Add(botHash(family, id))
	}
}

// finish collects the direct sources of families whose traffic carried bot
// identifiers that day (IDAddrs). A family's aggregates without an
// identifier (a connection of a kind that does not carry it) count with
// the family's.
func (d *Day) finish() {
	var id []Set
	for f, s := range d.By[ByFamily] {
		if d.idFamilies[f] {
			id = append(id, s)
		}
	}
	d.IDAddrs = Union(id...)
	d.idFamilies = nil
}

// optimize compresses runs before the day is stored.
func (d *Day) optimize() {
	for _, s := range d.sets() {
		s.V4.RunOptimize()
		s.V6.RunOptimize()
	}
	for _, m := range d.By {
		for _, s := range m {
			s.V4.RunOptimize()
			s.V6.RunOptimize()
		}
	}
}

func (d *Day) sets() []Set { return []Set{d.All, d.Resolvers, d.IDAddrs} }

// The cached encoding of a day is one blob for the overall sets ("" part)
// and one blob per dimension, so a by-country query reads only what it
// needs. Layout (all lengths uvarint): version byte 1, then for the
// overall part the three sets and the identifier bitmaps per case; for a dimension
// part the key count, then per key the key and its set. A set is the
// portable Roaring encoding of V4 then of V6, each length-prefixed.

// Version 2 prefixes every 64-bit bitmap (IPv6 /64s, hashed bot
// identifiers) with its kind: the portable Roaring encoding (kind 0, all
// that version 1 had), or the sorted values as a count, the first and the
// gaps, uvarints (kind 1). Random 64-bit hashes each fill a Roaring bucket
// of their own, about 20 bytes a value; their gaps take 6 to 7 bytes: a
// Rustock day's identifiers took 38 of its 46 MB of day sets. The writer
// keeps the smaller; readers take both versions.
const encVersion = 2

const (
	kindRoaring64 = 0
	kindGaps64    = 1
)

// append64 appends m in the smaller of the two kinds, length-prefixed.
func append64(b []byte, m *roaring64.Bitmap) ([]byte, error) {
	rb, err := m.ToBytes()
	if err != nil {
		return nil, err
	}
	n := m.GetCardinality()
	// Random 64-bit values take about 7 bytes a gap: a set whose Roaring
	// encoding is smaller than that (clustered /64s) keeps it untried.
	if n*7 > uint64(len(rb)) {
		return appendBytes(b, append([]byte{kindRoaring64}, rb...)), nil
	}
	g := make([]byte, 1, 1+n*7)
	g[0] = kindGaps64
	g = binary.AppendUvarint(g, n)
	var prev uint64
	it := m.Iterator()
	for first := true; it.HasNext(); first = false {
		v := it.Next()
		if first {
			g = binary.AppendUvarint(g, v)
		} else {
			g = binary.AppendUvarint(g, v-prev)
		}
		prev = v
		if len(g) > len(rb) {
			return appendBytes(b, append([]byte{kindRoaring64}, rb...)), nil
		}
	}
	return appendBytes(b, g), nil
}

// decode64 decodes append64's bytes (without the kind byte for version 1).
func decode64(p []byte, version byte) (*roaring64.Bitmap, error) {
	kind := byte(kindRoaring64)
	if version >= 2 {
		if len(p) == 0 {
			return nil, errCorrupt
		}
		kind, p = p[0], p[1:]
	}
	m := roaring64.New()
	switch kind {
	case kindRoaring64:
		if err := check64(p); err != nil {
			return nil, err
		}
		if err := m.UnmarshalBinary(p); err != nil {
			return nil, fmt.Errorf("%w: %w", errCorrupt, err)
		}
	case kindGaps64:
		n, k := binary.Uvarint(p)
		// Each value takes at least a byte: n is bounded by the input.
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errCorrupt
		}
		p = p[k:]
		vals := make([]uint64, n)
		var v uint64
		for i := range vals {
			g, k := binary.Uvarint(p)
			if k <= 0 || (i > 0 && (g == 0 || v+g < v)) {
				return nil, errCorrupt
			}
			p = p[k:]
			v += g
			vals[i] = v
		}
		if len(p) != 0 {
			return nil, errCorrupt
		}
		m.AddMany(vals)
	default:
		return nil, errCorrupt
	}
	return m, nil
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendSet(b []byte, s Set) ([]byte, error) {
	v4, err := s.V4.ToBytes()
	if err != nil {
		return nil, err
	}
	return append64(appendBytes(b, v4), s.V6)
}

// EncodeOverall encodes the day's overall sets.
func (d *Day) EncodeOverall() ([]byte, error) {
	b := []byte{encVersion}
	var err error
	for _, s := range d.sets() {
		if b, err = appendSet(b, s); err != nil {
			return nil, fmt.Errorf("encode day sets: %w", err)
		}
	}
	cases := make([]string, 0, len(d.BotIDs))
	for k := range d.BotIDs {
		cases = append(cases, k)
	}
	slices.Sort(cases)
	b = binary.AppendUvarint(b, uint64(len(cases)))
	for _, k := range cases {
		if b, err = append64(appendBytes(b, []byte(k)), d.BotIDs[k]); err != nil {
			return nil, fmt.Errorf("encode bot ids: %w", err)
		}
	}
	return b, nil
}

// EncodeDim encodes the day's sets of one dimension.
func (d *Day) EncodeDim(dim Dim) ([]byte, error) {
	m := d.By[dim]
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := []byte{encVersion}
	b = binary.AppendUvarint(b, uint64(len(keys)))
	var err error
	for _, k := range keys {
		b = appendBytes(b, []byte(k))
		if b, err = appendSet(b, m[k]); err != nil {
			return nil, fmt.Errorf("encode %s sets: %w", dim, err)
		}
	}
	return b, nil
}

var errCorrupt = errors.New("corrupt cached day sets")

type decoder struct {
	b       []byte
	version byte
}

func (r *decoder) bytes() ([]byte, error) {
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(len(r.b)-k) {
		return nil, errCorrupt
	}
	p := r.b[k : k+int(n)]
	r.b = r.b[k+int(n):]
	return p, nil
}

// count reads a count of items that take at least one byte each.
func (r *decoder) count() (uint64, error) {
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(len(r.b)-k) {
		return 0, errCorrupt
	}
	r.b = r.b[k:]
	return n, nil
}

func (r *decoder) set() (Set, error) {
	p4, err := r.bytes()
	if err != nil {
		return Set{}, err
	}
	p6, err := r.bytes()
	if err != nil {
		return Set{}, err
	}
	s := NewSet()
	// Zero-copy: the bitmap reads p4 in place. Loaded sets are never
	// modified (unions and intersections build new ones).
	if _, err := s.V4.FromUnsafeBytes(p4); err != nil {
		return Set{}, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if s.V6, err = decode64(p6, r.version); err != nil {
		return Set{}, err
	}
	return s, nil
}

// check64 bounds the bucket count of a portable 64-bit Roaring encoding by
// its length before the library allocates for it (it trusts the count):
// each bucket takes at least a 4-byte key and an 8-byte 32-bit bitmap.
func check64(p []byte) error {
	if len(p) < 8 {
		return errCorrupt
	}
	if n := binary.LittleEndian.Uint64(p); n > uint64(len(p)-8)/12 {
		return errCorrupt
	}
	return nil
}

func newDecoder(b []byte) (*decoder, error) {
	if len(b) == 0 || b[0] < 1 || b[0] > encVersion {
		return nil, errCorrupt
	}
	return &decoder{b: b[1:], version: b[0]}, nil
}

// decodeOverall fills d's overall sets from EncodeOverall's output.
func (d *Day) decodeOverall(b []byte) error {
	r, err := newDecoder(b)
	if err != nil {
		return err
	}
	for _, p := range []*Set{&d.All, &d.Resolvers, &d.IDAddrs} {
		if *p, err = r.set(); err != nil {
			return err
		}
	}
	n, err := r.count()
	if err != nil {
		return err
	}
	d.BotIDs = make(map[string]*roaring64.Bitmap, n)
	for range n {
		k, err := r.bytes()
		if err != nil {
			return err
		}
		ids, err := r.bytes()
		if err != nil {
			return err
		}
		b, err := decode64(ids, r.version)
		if err != nil {
			return err
		}
		d.BotIDs[string(k)] = b
	}
	if len(r.b) != 0 {
		return errCorrupt
	}
	return nil
}

// decodeDim fills d's sets of dim from EncodeDim's output.
func (d *Day) decodeDim(dim Dim, b []byte) error {
	r, err := newDecoder(b)
	if err != nil {
		return err
	}
	n, err := r.count()
	if err != nil {
		return err
	}
	m := make(map[string]Set, n)
	for range n {
		key, err := r.bytes()
		if err != nil {
			return err
		}
		s, err := r.set()
		if err != nil {
			return err
		}
		m[string(key)] = s
	}
	if len(r.b) != 0 {
		return errCorrupt
	}
	d.By[dim] = m
	return nil
}

// intersect returns the addresses of s that are also in o, as a new set.
func intersect(s, o Set) Set {
	return Set{V4: roaring.And(s.V4, o.V4), V6: roaring64.And(s.V6, o.V6)}
}

// restrict keeps only the direct sources of case caseID. Resolvers are
// not kept per case and stay as they are; bot identifiers are not kept per
// case and are dropped (the caller scales the estimate instead).
func (d *Day) restrict(caseID string) {
	c, ok := d.By[ByCase][caseID]
	if !ok {
		c = NewSet()
	}
	d.All = intersect(d.All, c)
	d.IDAddrs = intersect(d.IDAddrs, c)
	for k := range d.BotIDs {
		if k != caseID {
			delete(d.BotIDs, k)
		}
	}
	for dim, m := range d.By {
		for k, s := range m {
			if i := intersect(s, c); i.Len() > 0 {
				m[k] = i
			} else {
				delete(m, k)
			}
		}
		d.By[dim] = m
	}
}
