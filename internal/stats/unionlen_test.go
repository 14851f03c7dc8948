package stats

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// randomDays returns days bitmaps of n random addresses each, a share
// stay of each day's addresses seen the day before too.
func randomDays(days, n int, stay float64) []*roaring.Bitmap {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []*roaring.Bitmap
	var prev []uint32
	for range days {
		b := roaring.New()
		var cur []uint32
		for _, v := range prev {
			if rng.Float64() < stay {
				b.Add(v)
				cur = append(cur, v)
			}
		}
		for k := b.GetCardinality(); k < uint64(n); {
			v := rng.Uint32() >> uint(rng.IntN(12)) // dense and sparse chunks
			if b.CheckedAdd(v) {
				k++
				cur = append(cur, v)
			}
		}
		prev = cur
		b.RunOptimize()
		out = append(out, b)
	}
	return out
}

func TestUnionLen(t *testing.T) {
	tests := []struct {
		name string
		bms  []*roaring.Bitmap
	}{
		{"none", nil},
		{"one", randomDays(1, 1000, 0)},
		{"empty and nil", []*roaring.Bitmap{roaring.New(), nil, roaring.BitmapOf(1, 2, 3)}},
		{"week", randomDays(7, 50000, 0.7)},
		{"runs", []*roaring.Bitmap{roaring.BitmapOf(0, 65535, 65536, 1<<31), func() *roaring.Bitmap {
			b := roaring.New()
			b.AddRange(0, 200000)
			b.RunOptimize()
			return b
		}()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := uint64(0)
			var in []*roaring.Bitmap
			for _, b := range tc.bms {
				if b != nil {
					in = append(in, b)
				}
			}
			if len(in) > 0 {
				want = roaring.FastOr(in...).GetCardinality()
			}
			if got := unionLen32(tc.bms); got != want {
				t.Errorf("unionLen32 = %d, want %d", got, want)
			}
		})
	}
	a, b := NewSet(), NewSet()
	a.Add(netip.MustParseAddr("2001:db8::1"))
	b.Add(netip.MustParseAddr("2001:db8::2")) // same /64
	b.Add(netip.MustParseAddr("2001:db8:0:1::1"))
	b.Add(netip.MustParseAddr("192.0.2.1"))
	if got := UnionLen(a, b); got != 3 {
		t.Errorf("UnionLen with IPv6 = %d, want 3", got)
	}
}

// BenchmarkUnionLen counts the union of a week of 1,600,000 random
// addresses a day, the worst case for Roaring (a few addresses per chunk).
func BenchmarkUnionLen(b *testing.B) {
	days := randomDays(7, 1_600_000, 0.7)
	for b.Loop() {
		unionLen32(days)
	}
}

func TestUnionLensLayered(t *testing.T) {
	a, b := randomDays(3, 20000, 0.5), randomDays(2, 5000, 0)
	got := unionLens32(a, nil, b)
	if want := roaring.FastOr(a...).GetCardinality(); got[0] != want || got[1] != want {
		t.Errorf("first groups: %v, want %d", got, want)
	}
	if want := roaring.FastOr(append(a, b...)...).GetCardinality(); got[2] != want {
		t.Errorf("all groups: %d, want %d", got[2], want)
	}
}
