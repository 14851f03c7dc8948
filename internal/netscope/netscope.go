// Package netscope says who owns which addresses and what a holder may see:
// Networks (the ASNs, CIDRs and country codes a network operator answers
// for), its parsing, normalisation and Covers, and the roles that decide
// whether a principal sees every network or only its own. The API, the
// notifications, the stores and the dashboard's sessions all read it.
//
// It is not authentication: secrets and tokens live in package api/token,
// passwords and sessions in package web; nor does it decide what a route
// allows (package api does).
package netscope

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/takedown/takedown/internal/netprefix"
)

// Role is what a principal (an API token, a dashboard user) may see.
type Role string

// Roles.
const (
	// RoleAdmin sees everything and manages tokens.
	RoleAdmin Role = "admin"
	// RoleAnalyst sees everything and changes nothing.
	RoleAnalyst Role = "analyst"
	// RoleNetwork sees IP-level data only inside its own networks, and
	// aggregates above the public threshold.
	RoleNetwork Role = "network"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleAnalyst, RoleNetwork:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want admin, analyst or network)", s)
}

// SeesAll reports whether the role sees IP-level data of every network.
func (r Role) SeesAll() bool { return r == RoleAdmin || r == RoleAnalyst }

// Networks is what a network operator answers for: an address is inside when one
// of the prefixes contains it, or when its row's ASN or country is listed.
// The zero value covers nothing.
type Networks struct {
	ASNs      []uint32       `json:"asns,omitempty"`
	Prefixes  []netip.Prefix `json:"prefixes,omitempty"`
	Countries []string       `json:"countries,omitempty"` // ISO 3166 alpha-2, upper case
}

// Empty reports whether n covers nothing.
func (n Networks) Empty() bool {
	return len(n.ASNs) == 0 && len(n.Prefixes) == 0 && len(n.Countries) == 0
}

// ParseNetworks parses a comma-separated list of ASNs ("AS64500" or
// "64500"), CIDRs or addresses ("192.0.2.0/24", "2001:db8::/32") and
// country codes ("DE"). Every bad item is reported.
func ParseNetworks(s string) (Networks, error) {
	var n Networks
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := n.add(item); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Networks{}, err
	}
	n.normalize()
	return n, nil
}

func (n *Networks) add(item string) error {
	up := strings.ToUpper(item)
	if num, ok := strings.CutPrefix(up, "AS"); ok && num != "" && isDigits(num) {
		up = num
	}
	if isDigits(up) {
		v, err := strconv.ParseUint(up, 10, 32)
		if err != nil || v == 0 {
			return fmt.Errorf("network %q: not an AS number", item)
		}
		n.ASNs = append(n.ASNs, uint32(v))
		return nil
	}
	if len(up) == 2 && up[0] >= 'A' && up[0] <= 'Z' && up[1] >= 'A' && up[1] <= 'Z' {
		n.Countries = append(n.Countries, up)
		return nil
	}
	p, err := netprefix.Parse(item)
	if err != nil {
		if strings.Contains(item, "/") {
			return fmt.Errorf("network %q: %w", item, err)
		}
		return fmt.Errorf("network %q: not an ASN, country code, address or CIDR", item)
	}
	n.Prefixes = append(n.Prefixes, p)
	return nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func (n *Networks) normalize() {
	slices.Sort(n.ASNs)
	n.ASNs = slices.Compact(n.ASNs)
	slices.Sort(n.Countries)
	n.Countries = slices.Compact(n.Countries)
	slices.SortFunc(n.Prefixes, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	n.Prefixes = slices.Compact(n.Prefixes)
}

// String formats n as ParseNetworks reads it.
func (n Networks) String() string {
	var parts []string
	for _, a := range n.ASNs {
		parts = append(parts, "AS"+strconv.FormatUint(uint64(a), 10))
	}
	for _, p := range n.Prefixes {
		parts = append(parts, p.String())
	}
	parts = append(parts, n.Countries...)
	return strings.Join(parts, ",")
}

// Covers reports whether a row about address ip, enriched with asn and
// country, is inside n. IPv4-mapped IPv6 addresses are checked as IPv4. An
// invalid address is never covered (deny by default).
func (n Networks) Covers(ip netip.Addr, asn uint32, country string) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range n.Prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	if asn != 0 && slices.Contains(n.ASNs, asn) {
		return true
	}
	if country != "" && slices.Contains(n.Countries, strings.ToUpper(country)) {
		return true
	}
	return false
}
