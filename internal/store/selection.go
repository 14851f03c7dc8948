package store

import (
	"bytes"
	"cmp"
	"context"
	"net/netip"
	"strings"
	"time"
)

// Selection narrows a scan of aggregates to the rows of some networks, so
// that a backend can find them through its keys and indexes instead of
// reading every row: a row is selected when one of Prefixes contains its
// address, or its ASN or country is listed. The zero Selection selects
// nothing; a nil *Selection selects everything.
type Selection struct {
	Prefixes  []netip.Prefix // masked, IPv4 as IPv4
	ASNs      []uint32
	Countries []string // upper case
}

// Selects reports whether a is selected (the reference the backends'
// queries must agree with).
func (s *Selection) Selects(a *DayIP) bool {
	if s == nil {
		return true
	}
	ip := a.IP.Unmap()
	for _, p := range s.Prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	for _, n := range s.ASNs {
		if a.ASN == n && n != 0 {
			return true
		}
	}
	for _, c := range s.Countries {
		if c != "" && strings.EqualFold(a.Country, c) {
			return true
		}
	}
	return false
}

// PrefixRange returns the first and last address of p as the bytes the
// backends store (4 for IPv4, 16 for IPv6): p's rows are those whose ip
// lies in [lo, hi].
func PrefixRange(p netip.Prefix) (lo, hi []byte) {
	p = p.Masked()
	a := p.Addr().Unmap()
	lo = a.AsSlice()
	hi = bytes.Clone(lo)
	bits := p.Bits()
	if a.Is4() && p.Addr().Is4In6() {
		bits -= 96
	}
	for i := range hi {
		// Set every bit after the prefix.
		keep := bits - i*8
		switch {
		case keep <= 0:
			hi[i] = 0xff
		case keep < 8:
			hi[i] |= 0xff >> keep
		}
	}
	return lo, hi
}

// Position is a place in the order of ScanDayIPs: (day, address bytes,
// family). A cursor made of the last row a client read stays valid when
// that row is purged: the scan continues after the place, not after the
// row.
type Position struct {
	Day    int64 // unix seconds of the UTC midnight
	IP     netip.Addr
	Family string
}

// PositionOf returns a's place.
func PositionOf(a *DayIP) Position {
	return Position{Day: a.Day.Unix(), IP: a.IP.Unmap(), Family: a.Family}
}

// Compare orders positions as ScanDayIPs orders rows.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.Day, q.Day); c != 0 {
		return c
	}
	if c := bytes.Compare(p.IP.Unmap().AsSlice(), q.IP.Unmap().AsSlice()); c != 0 {
		return c
	}
	return strings.Compare(p.Family, q.Family)
}

// SelectScanner is optional for an EventStore: a scan of the aggregates of
// days in [from, to) that lie strictly after a position (nil: from the
// start) and that sel selects (nil: all), in the order of ScanDayIPs, at a
// cost in proportion to the rows it returns (and the days in the window
// that hold any). The API uses it so that a network's request reads only
// that network's rows.
type SelectScanner interface {
	ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *Selection, after *Position, fn func(*DayIP) error) error
}
