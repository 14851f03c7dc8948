package stats_test

import (
	"math/bits"
	"slices"
	"testing"

	"github.com/takedown/takedown/internal/stats"
)

func TestMergeFrom(t *testing.T) {
	for _, tc := range []struct {
		sizes []int
		want  int
	}{
		{nil, 0},
		{[]int{5}, 1},
		{[]int{4, 1}, 2},       // the newest is smaller: kept
		{[]int{4, 2, 1, 1}, 0}, // 1+1 ≥ 2, then 4 ≥ 4: all
		{[]int{8, 2, 1, 1}, 1}, // 1+1 ≥ 2, 4 < 8: the newest three
		{[]int{1, 1}, 0},
		{[]int{100, 3, 5}, 1},
		{slices.Repeat([]int{1000}, stats.CompactAfter+1), 0},
	} {
		if got := stats.MergeFrom(tc.sizes); got != tc.want {
			t.Errorf("MergeFrom(%v) = %d, want %d", tc.sizes, got, tc.want)
		}
	}
}

// Blobs of equal size written one after another, merged as MergeFrom says
// (a merged blob's size the sum of its members'): the part never holds
// more than log2(written)+1 blobs, and no blob is rewritten more than
// log2(written) times.
func TestMergeFromBinaryCounter(t *testing.T) {
	type blob struct{ size, rewrites int }
	var part []blob
	const written = 5000
	maxRewrites, maxBlobs := 0, 0
	for range written {
		part = append(part, blob{size: 1})
		sizes := make([]int, len(part))
		for i, b := range part {
			sizes[i] = b.size
		}
		if j := stats.MergeFrom(sizes); j < len(part) {
			m := blob{}
			for _, b := range part[j:] {
				m.size += b.size
				m.rewrites = max(m.rewrites, b.rewrites)
			}
			m.rewrites++
			maxRewrites = max(maxRewrites, m.rewrites)
			part = append(part[:j], m)
		}
		maxBlobs = max(maxBlobs, len(part))
	}
	limit := bits.Len(written)
	if maxBlobs > limit+1 || maxRewrites > limit {
		t.Errorf("%d writes: up to %d blobs, a blob rewritten up to %d times; want at most %d and %d", written, maxBlobs, maxRewrites, limit+1, limit)
	}
	if maxBlobs > stats.CompactAfter {
		t.Errorf("%d blobs: the hard cap decided", maxBlobs)
	}
}
