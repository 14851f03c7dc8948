package dga

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// newGOZ, the DGA of Gameover Zeus after Operation Tovar (2014): J. Bader,
// "The DGA of newGOZ" (2014), reimplemented in
// github.com/baderj/domain_generation_algorithms newgoz/dga.py. The MD5 of
// the index, the year, the month and the day, each followed by a four-byte
// key; its four 32-bit words written in base 36; the TLD by the index (com,
// org, biz, net). 1000 names a day, new every day.
func init() {
	register(&Family{
		Name:   "newgoz",
		Doc:    "newGOZ / Gameover Zeus (J. Bader 2014): MD5 of the date and a 4-byte key, 1000 names a day",
		Margin: Day,
		Params: []Param{{Name: "key", Default: "01051935", Doc: "the 4-byte key, in hex (the published samples use 01051935)"}},
		Count:  1000,
		TLDs:   []string{"com", "org", "biz", "net"},
		New: func(p map[string]string, count int, tlds []string) (Generator, error) {
			key, err := hex.DecodeString(p["key"])
			if err != nil || len(key) != 4 {
				return nil, fmt.Errorf("key %q is not 4 bytes in hex (8 digits)", p["key"])
			}
			return &newgoz{key: [4]byte(key), count: count, tlds: tlds}, nil
		},
	})
}

type newgoz struct {
	key   [4]byte
	count int
	tlds  []string
}

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

func (g *newgoz) Domains(day time.Time) []string {
	y, m, d := utcDay(day)
	var msg [4 + 3*(2+4)]byte
	binary.LittleEndian.PutUint16(msg[4:], uint16(y))
	copy(msg[6:], g.key[:])
	binary.LittleEndian.PutUint16(msg[10:], uint16(m))
	copy(msg[12:], g.key[:])
	binary.LittleEndian.PutUint16(msg[16:], uint16(d))
	copy(msg[18:], g.key[:])
	out := make([]string, g.count)
	var buf [48]byte
	for seq := range g.count {
		binary.LittleEndian.PutUint32(msg[:4], uint32(seq))
		sum := md5.Sum(msg[:])
		b := buf[:0]
		for w := 0; w < 16; w += 4 {
			v := binary.LittleEndian.Uint32(sum[w:])
			// At most seven base-36 digits, most significant first.
			var part [7]byte
			n := 0
			for n < 7 {
				part[6-n] = base36[v%36]
				v /= 36
				n++
				if v == 0 {
					break
				}
			}
			b = append(b, part[7-n:]...)
		}
		var t int
		switch {
		case seq%4 == 0:
			t = 0
		case seq%3 == 0:
			t = 1
		case seq%2 == 0:
			t = 2
		default:
			t = 3
		}
		b = append(b, '.')
		b = append(b, g.tlds[t%len(g.tlds)]...)
		out[seq] = string(b)
	}
	return out
}
