package dga

import (
	"crypto/md5"
	"encoding/binary"
	"time"
)

// Murofet (LICAT, a Zeus descendant), version 1: J. Bader, "Three variants
// of Murofet's DGA" (2015), reimplemented in
// github.com/baderj/domain_generation_algorithms murofet/v1/dga.py. The MD5
// of seven bytes (a byte of the year, the month, the day rounded down to a
// multiple of seven, the 32-bit index) turned into letters; the TLD by the
// index modulo 6, 5, … 1 over ru, biz, info, org, net, com. Names change on
// days 7, 14, 21 and 28.
func init() {
	register(&Family{
		Name:   "murofet",
		Doc:    "Murofet/LICAT v1 (J. Bader 2015): MD5 of the week-of-month and index, 1000 names a day",
		Margin: 7 * Day, // a period lasts up to seven days
		Count:  1000,
		TLDs:   []string{"ru", "biz", "info", "org", "net", "com"},
		New: func(p map[string]string, count int, tlds []string) (Generator, error) {
			return &murofet{count: count, tlds: tlds}, nil
		},
	})
}

type murofet struct {
	count int
	tlds  []string
}

func (g *murofet) Domains(day time.Time) []string {
	y, m, d := utcDay(day)
	var seed [7]byte
	// The published reimplementation computes year & (0xFF + 0x30) & 0xFF
	// (Python's precedence); its samples are made so, and so is this.
	seed[0] = byte(y & (0xFF + 0x30) & 0xFF)
	seed[1] = byte(m)
	seed[2] = byte(d / 7 * 7)
	out := make([]string, g.count)
	var buf [40]byte
	for index := range g.count {
		binary.LittleEndian.PutUint32(seed[3:], uint32(index))
		sum := md5.Sum(seed[:])
		b := buf[:0]
		for _, x := range sum {
			lo, hi := x&0x1F+'a', x>>3+'a'
			if lo != hi {
				if lo <= 'z' {
					b = append(b, lo)
				}
				if hi <= 'z' {
					b = append(b, hi)
				}
			}
		}
		// The first TLD i whose modulus len−i divides the index.
		t := len(g.tlds) - 1
		for i := range g.tlds {
			if index%(len(g.tlds)-i) == 0 {
				t = i
				break
			}
		}
		b = append(b, '.')
		b = append(b, g.tlds[t]...)
		out[index] = string(b)
	}
	return out
}
