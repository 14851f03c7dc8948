package stats

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/RoaringBitmap/roaring/v2/roaring64"

	"github.com/takedown/takedown/internal/store"
)

// Hourly sets (docs/counting.md, "Hourly sets"). The store's writer keeps,
// next to the (day, IP, family) aggregates and in the same transaction,
// persisted Roaring sets that a window is the union of:
//
//	part "day", "h00" … "h23"   the day, and each of its hours:
//	    "d\x00<family>"         addresses with a direct contact of that family
//	    "n"                     addresses with a DNS query (any family)
//	    "b\x00<family>\x00<case>" hashed bot identifiers (in Set.V6)
//	part "k:country", "k:asn", "k:case"   the day's aggregates by attribute:
//	    "<family>\x00<key>"     addresses of the family's aggregates with that
//	                            key and a direct contact that day
//
// Every write appends one small blob per part it touches; a part's blobs
// are unioned by readers and merged into one by the writer when they pile
// up (CompactAfter). Adding an address twice changes nothing, so blobs
// may be merged, repeated or read in any order.

// The parts of a day's sets.
const (
	partDay       = "day"
	partKeyPrefix = "k:"
)

// keyDims are the dimensions with key parts; family needs none (its rows
// are the direct sets themselves).
var keyDims = [3]Dim{ByCountry, ByASN, ByCase}

// keyIndex maps keyDims to the index of dimKeys.
var keyIndex = [3]int{0, 1, 3}

// CompactAfter is the number of blobs of one part above which the writer
// merges them all into one, whatever their sizes (MergeFrom).
const CompactAfter = 16

// MergeFrom returns the index of the first blob to merge into one, given
// the sizes of a part's blobs oldest first, or len(sizes) when none needs
// merging. The newest blobs are merged as a binary counter carries: a run
// of them as soon as its total size reaches the blob before it. So a part
// written once a second all day keeps a few blobs of doubling sizes (one
// large, the rest smaller and smaller), each address is rewritten about
// log2(blobs written) times, and the day's large blob is rewritten only
// when the newer ones add up to it, not every CompactAfter writes (which
// rewrote a Rustock day's 5 MB sets 5,400 times a day). Beyond CompactAfter
// blobs, all are merged.
func MergeFrom(sizes []int) int {
	n := len(sizes)
	if n > CompactAfter {
		return 0
	}
	if n < 2 {
		return n
	}
	j, tail := n-1, sizes[n-1]
	for j > 0 && tail >= sizes[j-1] {
		j--
		tail += sizes[j]
	}
	if j == n-1 {
		return n
	}
	return j
}

func hourPart(h uint) string { return fmt.Sprintf("h%02d", h) }

func keyPart(dim Dim) string { return partKeyPrefix + string(dim) }

func directName(family string) string { return "d\x00" + family }

const dnsName = "n"

func botName(family, caseKey string) string { return "b\x00" + family + "\x00" + caseKey }

// namedSets is the content of one part.
type namedSets map[string]Set

func (m namedSets) get(name string) Set {
	s, ok := m[name]
	if !ok {
		s = NewSet()
		m[name] = s
	}
	return s
}

// encode is EncodeDim's layout: version, count, then name and set each.
func (m namedSets) encode() ([]byte, error) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	b := []byte{encVersion}
	b = binary.AppendUvarint(b, uint64(len(names)))
	var err error
	for _, k := range names {
		b = appendBytes(b, []byte(k))
		if b, err = appendSet(b, m[k]); err != nil {
			return nil, fmt.Errorf("encode sets: %w", err)
		}
	}
	return b, nil
}

// decodeNamed decodes a part's blob; the IPv4 bitmaps read b in place.
func decodeNamed(b []byte) (namedSets, error) {
	r, err := newDecoder(b)
	if err != nil {
		return nil, err
	}
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	m := make(namedSets, n)
	for range n {
		k, err := r.bytes()
		if err != nil {
			return nil, err
		}
		s, err := r.set()
		if err != nil {
			return nil, err
		}
		m[string(k)] = s
	}
	if len(r.b) != 0 {
		return nil, errCorrupt
	}
	return m, nil
}

// SetPart is one encoded blob of a day's part, as the writer stores it.
type SetPart struct {
	Day  int64 // unix seconds of UTC midnight
	Part string
	Data []byte
}

// SetDelta gathers what one write of aggregates adds to the sets. The
// zero value is ready; it is not safe for concurrent use.
type SetDelta struct {
	days map[int64]map[string]namedSets
}

func (x *SetDelta) part(day int64, part string) namedSets {
	if x.days == nil {
		x.days = make(map[int64]map[string]namedSets)
	}
	p := x.days[day]
	if p == nil {
		p = make(map[string]namedSets)
		x.days[day] = p
	}
	m := p[part]
	if m == nil {
		m = make(namedSets)
		p[part] = m
	}
	return m
}

// Add folds in the aggregates one write touched, with their stored
// attributes (store.RollupFold.Touched).
func (x *SetDelta) Add(touched []store.Touched) {
	for _, t := range touched {
		d := t.Delta
		day, ip, fam := d.Key.Day, d.Key.IP, d.Key.Family
		keys := dimKeys(&store.DayIP{Family: fam, Case: t.Case, Country: t.Country, ASN: t.ASN})
		// Only aggregates with a direct contact have rows (a key set is
		// only ever intersected with direct sets).
		if t.After&store.Direct != 0 {
			for i, dim := range keyDims {
				x.part(day, keyPart(dim)).get(fam + "\x00" + keys[keyIndex[i]]).Add(ip)
			}
		}
		x.addHours(day, d.DirectHours, directName(fam), func(s Set) { s.Add(ip) })
		x.addHours(day, d.DNSHours, dnsName, func(s Set) { s.Add(ip) })
		// Identifiers count for aggregates with a direct contact that day,
		// as in the day's sets built from the aggregates (add).
		if t.After&store.Direct != 0 && len(d.BotIDs) > 0 {
			x.addHours(day, d.BotHours, botName(fam, keys[3]), func(s Set) {
				for _, id := range d.BotIDs {
					s.V6.Add(botHash(fam, id))
				}
			})
		}
	}
}

// addHours applies add to the set name of the day part and of each hour
// in mask.
func (x *SetDelta) addHours(day int64, mask uint32, name string, add func(Set)) {
	if mask == 0 {
		return
	}
	add(x.part(day, partDay).get(name))
	for m := mask; m != 0; m &= m - 1 {
		add(x.part(day, hourPart(uint(bits.TrailingZeros32(m)))).get(name))
	}
}

// Parts encodes the delta, one blob per (day, part), sorted by day then
// part (the order writers lock in).
func (x *SetDelta) Parts() ([]SetPart, error) {
	var out []SetPart
	for day, parts := range x.days {
		for part, m := range parts {
			b, err := m.encode()
			if err != nil {
				return nil, err
			}
			out = append(out, SetPart{Day: day, Part: part, Data: b})
		}
	}
	slices.SortFunc(out, func(a, b SetPart) int {
		if a.Day != b.Day {
			if a.Day < b.Day {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Part, b.Part)
	})
	return out, nil
}

// MergeSetBlobs merges the blobs of one part into one.
func MergeSetBlobs(blobs [][]byte) ([]byte, error) {
	byName := make(map[string][]Set)
	for _, b := range blobs {
		m, err := decodeNamed(b)
		if err != nil {
			return nil, err
		}
		for k, s := range m {
			byName[k] = append(byName[k], s)
		}
	}
	out := make(namedSets, len(byName))
	for k, ss := range byName {
		out[k] = Union(ss...)
	}
	return out.encode()
}

// unionBots is the union of bot-identifier sets (kept in Set.V6).
func unionBots(ss []Set) *roaring64.Bitmap {
	bms := make([]*roaring64.Bitmap, 0, len(ss))
	for _, s := range ss {
		if s.V6 != nil && !s.V6.IsEmpty() {
			bms = append(bms, s.V6)
		}
	}
	switch len(bms) {
	case 0:
		return roaring64.New()
	case 1:
		return bms[0].Clone()
	}
	return roaring64.FastOr(bms...)
}
