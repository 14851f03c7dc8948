package registry

import (
	"net/netip"
	"sort"
	"strings"
)

// Index answers which entry of an ActiveSet covers a name or an address. It
// is immutable once built and safe for concurrent use; rebuild it when the
// set changes.
type Index struct {
	domains map[string]*Entry // name and every subdomain
	hosts   map[string]*Entry // exactly that name
	addrs   map[netip.Addr]*Entry
	// prefixes, longest first, for CIDR lookups (sets are small: a court
	// order's CIDRs number in the hundreds).
	prefixes []*Entry
}

// NewIndex indexes set's entries. Where two cases seize the same indicator,
// the first in the set's order wins.
func NewIndex(set *ActiveSet) *Index {
	ix := &Index{domains: map[string]*Entry{}, hosts: map[string]*Entry{}, addrs: map[netip.Addr]*Entry{}}
	if set == nil {
		return ix
	}
	for i := range set.Entries {
		e := &set.Entries[i]
		switch e.Kind {
		case KindDomain:
			if _, ok := ix.domains[e.Value]; !ok {
				ix.domains[e.Value] = e
			}
		case KindHost:
			if _, ok := ix.hosts[e.Value]; !ok {
				ix.hosts[e.Value] = e
			}
		case KindIP:
			if a := e.Prefix.Addr(); a.IsValid() {
				if _, ok := ix.addrs[a]; !ok {
					ix.addrs[a] = e
				}
			}
		case KindCIDR:
			if e.Prefix.IsValid() {
				ix.prefixes = append(ix.prefixes, e)
			}
		}
	}
	sort.SliceStable(ix.prefixes, func(i, j int) bool { return ix.prefixes[i].Prefix.Bits() > ix.prefixes[j].Prefix.Bits() })
	return ix
}

// LookupName returns the entry that seizes name (any case, with or without
// a trailing dot, a port is not allowed): an exact host entry, else the
// closest enclosing domain entry.
func (ix *Index) LookupName(name string) (*Entry, bool) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" {
		return nil, false
	}
	if e, ok := ix.hosts[n]; ok {
		return e, true
	}
	for {
		if e, ok := ix.domains[n]; ok {
			return e, true
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			return nil, false
		}
		n = n[i+1:]
	}
}

// LookupAddr returns the ip or the most specific cidr entry covering a.
func (ix *Index) LookupAddr(a netip.Addr) (*Entry, bool) {
	a = a.Unmap()
	if e, ok := ix.addrs[a]; ok {
		return e, true
	}
	for _, e := range ix.prefixes {
		if e.Prefix.Contains(a) {
			return e, true
		}
	}
	return nil, false
}

// Len is the number of entries indexed.
func (ix *Index) Len() int {
	return len(ix.domains) + len(ix.hosts) + len(ix.addrs) + len(ix.prefixes)
}
