package stats

import (
	"math/bits"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/RoaringBitmap/roaring/v2/roaring64"
)

// unionLen32 is the cardinality of the union of bms without building it:
// the bitmaps' values are read in order, 16-bit chunk by chunk, into one
// 8 KiB scratch bitset whose set words are counted and cleared per chunk.
// Its cost is linear in the values read, where merging array containers
// into a new bitmap copies the growing union once per input.
func unionLen32(bms []*roaring.Bitmap) uint64 {
	in := bms[:0:0]
	for _, b := range bms {
		if b != nil && !b.IsEmpty() {
			in = append(in, b)
		}
	}
	switch len(in) {
	case 0:
		return 0
	case 1:
		return in[0].GetCardinality()
	}
	type cursor struct {
		it   roaring.ManyIntIterable
		buf  []uint32
		pos  int
		done bool
	}
	cs := make([]cursor, len(in))
	fill := func(c *cursor) {
		n := c.it.NextMany(c.buf[:cap(c.buf)])
		c.buf, c.pos = c.buf[:n], 0
		c.done = n == 0
	}
	for i, b := range in {
		cs[i] = cursor{it: b.ManyIterator(), buf: make([]uint32, 0, 4096)}
		fill(&cs[i])
	}
	var scratch [1024]uint64
	touched := make([]uint16, 0, 1024)
	var total uint64
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
			return total
		}
		for i := range cs {
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
		for _, w := range touched {
			total += uint64(bits.OnesCount64(scratch[w]))
			scratch[w] = 0
		}
		touched = touched[:0]
	}
}

// UnionLen is the number of distinct addresses in the union of sets.
func UnionLen(sets ...Set) uint64 {
	v4 := make([]*roaring.Bitmap, 0, len(sets))
	var v6 []*roaring64.Bitmap
	for _, s := range sets {
		v4 = append(v4, s.V4)
		if s.V6 != nil && !s.V6.IsEmpty() {
			v6 = append(v6, s.V6)
		}
	}
	n := unionLen32(v4)
	switch len(v6) {
	case 0:
	case 1:
		n += v6[0].GetCardinality()
	default:
		acc := v6[0].Clone()
		for _, b := range v6[1:] {
			acc.Or(b)
		}
		n += acc.GetCardinality()
	}
	return n
}
