package stats

import (
	"math/bits"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/RoaringBitmap/roaring/v2/roaring64"
)

// unionLen32 is the cardinality of the union of bms without building it.
func unionLen32(bms []*roaring.Bitmap) uint64 { return unionLens32(bms)[0] }

// unionLens32 returns, for groups G1, G2, …, the cardinalities of G1,
// G1∪G2, G1∪G2∪G3, … in one pass, without building any union: the
// bitmaps' values are read in order, 16-bit chunk by chunk, into one 8 KiB
// scratch bitset whose set words are counted after each group and cleared
// per chunk. Its cost is linear in the values read, where merging array
// containers into a new bitmap copies the growing union once per input.
func unionLens32(groups ...[]*roaring.Bitmap) []uint64 {
	type cursor struct {
		it    roaring.ManyIntIterable
		buf   []uint32
		pos   int
		group int
		done  bool
	}
	var cs []cursor
	fill := func(c *cursor) {
		n := c.it.NextMany(c.buf[:cap(c.buf)])
		c.buf, c.pos = c.buf[:n], 0
		c.done = n == 0
	}
	for g, bms := range groups {
		for _, b := range bms {
			if b == nil || b.IsEmpty() {
				continue
			}
			cs = append(cs, cursor{it: b.ManyIterator(), buf: make([]uint32, 0, 4096), group: g})
			fill(&cs[len(cs)-1])
		}
	}
	total := make([]uint64, len(groups))
	var scratch [1024]uint64
	touched := make([]uint16, 0, 1024)
	for {
		key, any := uint32(0), false
		for i := range cs {
			if c := &cs[i]; !c.done {
				if k := c.buf[c.pos] >> 16; !any || k < key {
					key, any = k, true
				}
			}
		}
		if !any {
			break
		}
		i := 0
		for g := range groups {
			for ; i < len(cs) && cs[i].group == g; i++ {
				c := &cs[i]
				for !c.done && c.buf[c.pos]>>16 == key {
					v := c.buf[c.pos]
					w := (v & 0xffff) >> 6
					if scratch[w] == 0 {
						touched = append(touched, uint16(w))
					}
					scratch[w] |= 1 << (v & 63)
					c.pos++
					if c.pos == len(c.buf) {
						fill(c)
					}
				}
			}
			var n uint64
			for _, w := range touched {
				n += uint64(bits.OnesCount64(scratch[w]))
			}
			total[g] += n
		}
		for _, w := range touched {
			scratch[w] = 0
		}
		touched = touched[:0]
	}
	return total
}

// UnionLen is the number of distinct addresses in the union of sets.
func UnionLen(sets ...Set) uint64 {
	v4 := make([]*roaring.Bitmap, 0, len(sets))
	for _, s := range sets {
		v4 = append(v4, s.V4)
	}
	return unionLen32(v4) + unionLen64(sets)
}

// unionLen64 is the number of distinct IPv6 /64s in the union of sets.
func unionLen64(sets []Set) uint64 {
	var v6 []*roaring64.Bitmap
	for _, s := range sets {
		if s.V6 != nil && !s.V6.IsEmpty() {
			v6 = append(v6, s.V6)
		}
	}
	switch len(v6) {
	case 0:
		return 0
	case 1:
		return v6[0].GetCardinality()
	}
	acc := v6[0].Clone()
	for _, b := range v6[1:] {
		acc.Or(b)
	}
	return acc.GetCardinality()
}
