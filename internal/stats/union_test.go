package stats

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// Union equals the union of the members whatever the sizes' mix (a large
// set with small ones added in place, sets of similar size merged), and
// leaves its inputs unchanged.
func TestUnionMixedSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	mk := func(n int, dense bool) (Set, map[netip.Addr]bool) {
		s, m := NewSet(), map[netip.Addr]bool{}
		for range n {
			var ip netip.Addr
			switch {
			case rng.IntN(10) == 0:
				var b [16]byte
				b[0], b[1], b[7] = 0x20, 0x01, byte(rng.IntN(64))
				ip = netip.AddrFrom16(b)
			case dense:
				ip = netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			default:
				v := rng.Uint32()
				ip = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			}
			s.Add(ip)
			m[ip] = true
		}
		return s, m
	}
	for _, sizes := range [][]int{{1}, {200000, 10, 3000, 7}, {5000, 5000, 5000}, {0, 100, 0}, {10, 200000}, {50000, 49000, 1, 20000}} {
		var sets []Set
		want := map[netip.Addr]bool{}
		var lens []uint64
		for i, n := range sizes {
			s, m := mk(n, i%2 == 0)
			sets = append(sets, s)
			lens = append(lens, s.Len())
			for ip := range m {
				want[ip] = true
			}
		}
		got := Union(sets...)
		if got.Len() != uint64(len(want)) {
			t.Errorf("sizes %v: union has %d, want %d", sizes, got.Len(), len(want))
		}
		for ip := range want {
			var in bool
			if ip.Is4() {
				b := ip.As4()
				in = got.V4.Contains(binary.BigEndian.Uint32(b[:]))
			} else {
				b := ip.As16()
				in = got.V6.Contains(binary.BigEndian.Uint64(b[:8]))
			}
			if !in {
				t.Fatalf("sizes %v: %s missing from the union", sizes, ip)
			}
		}
		for i, s := range sets {
			if s.Len() != lens[i] {
				t.Errorf("sizes %v: input %d changed: %d, was %d", sizes, i, s.Len(), lens[i])
			}
		}
	}
}
