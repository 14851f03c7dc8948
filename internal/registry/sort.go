package registry

import (
	"sort"
	"strings"
)

// SortEntries puts entries in the registry's deterministic order: kind, then
// value (names bytewise, addresses numerically), then
// case.
func SortEntries(es []Entry) {
	rank := map[Kind]int{KindDomain: 0, KindHost: 1, KindIP: 2, KindCIDR: 3}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := &es[i], &es[j]
		if a.Kind != b.Kind {
			return rank[a.Kind] < rank[b.Kind]
		}
		if a.Value != b.Value {
			if a.Prefix.IsValid() && b.Prefix.IsValid() {
				if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
					return c < 0
				}
				return a.Prefix.Bits() < b.Prefix.Bits()
			}
			return strings.Compare(a.Value, b.Value) < 0
		}
		return a.Case < b.Case
	})
}
