package dga

import (
	"fmt"
	"math/bits"
	"strconv"
	"time"
)

// Necurs: J. Bader, "The DGAs of Necurs" (2015), reimplemented in
// github.com/baderj/domain_generation_algorithms necurs/dga.py. A 64-bit
// mixing function seeded with the year, the month, the day divided by four
// (names change every four days, on days 4, 8, …), the sequence number and a
// per-build magic number; 2048 names a day of 7 to 21 letters a–y, under one
// of 43 TLDs.
func init() {
	register(&Family{
		Name:   "necurs",
		Doc:    "Necurs (J. Bader 2015): 2048 names a day, changing every 4th day; seed is the build's magic number",
		Margin: 4 * Day, // a period lasts up to four days; bots retry for days
		Params: []Param{{Name: "seed", Default: "9", Doc: "the magic number of the build (the published samples use 9)"}},
		Count:  2048,
		TLDs: []string{"tj", "in", "jp", "tw", "ac", "cm", "la", "mn", "so", "sh", "sc", "nu", "nf", "mu",
			"ms", "mx", "ki", "im", "cx", "cc", "tv", "bz", "me", "eu", "de", "ru", "co", "su", "pw",
			"kz", "sx", "us", "ug", "ir", "to", "ga", "com", "net", "org", "biz", "xxx", "pro", "bit"},
		New: func(p map[string]string, count int, tlds []string) (Generator, error) {
			seed, err := strconv.ParseUint(p["seed"], 0, 32)
			if err != nil {
				return nil, fmt.Errorf("seed %q is not a 32-bit unsigned number", p["seed"])
			}
			return &necurs{seed: seed, count: count, tlds: tlds}, nil
		},
	})
}

type necurs struct {
	seed  uint64
	count int
	tlds  []string
}

// necursMix is the family's mixing function on v + add. The reference works
// on unbounded integers and reduces to 64 bits after each round, so the
// first round sees the sum's carry in its right shift: it is kept here.
func necursMix(v, add uint64) uint64 {
	v, carry := bits.Add64(v, add, 0)
	rounds := (v & 0x7F) + 21
	for i := uint64(0); i < rounds; i++ {
		shr := v >> 5
		if i == 0 && carry != 0 {
			shr |= 1 << 59
		}
		v += ((v * 7) ^ (v << 15)) + 8*i - shr
	}
	return v
}

func (g *necurs) Domains(day time.Time) []string {
	y, m, d := utcDay(day)
	base := necursMix(uint64(y), 0)
	base = necursMix(base, uint64(m)+43690)
	base = necursMix(base, uint64(d>>2))
	out := make([]string, g.count)
	var buf [64]byte
	for seq := range g.count {
		n := necursMix(base, uint64(seq))
		n = necursMix(n, g.seed)
		length := int(n%15) + 7
		b := buf[:0]
		for i := range length {
			n = necursMix(n, uint64(i))
			b = append(b, byte('a'+n%25))
			n = necursMix(n, 0xABBEDF)
		}
		tld := g.tlds[n%uint64(len(g.tlds))]
		b = append(b, '.')
		b = append(b, tld...)
		out[seq] = string(b)
	}
	return out
}
