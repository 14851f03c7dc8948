// Package netprefix reads "an address or a CIDR", as operators write them
// in configuration, trust lists, network scopes and query parameters, into
// one canonical netip.Prefix: masked, with an IPv4-mapped IPv6 prefix in
// its IPv4 form, a bare address as a /32 or /128. It is the one parser for
// that notion; it is not the registry's indicator parser (which also knows
// names and kinds) and it does not match addresses (callers use
// netip.Prefix.Contains on unmapped addresses).
package netprefix

import (
	"errors"
	"net/netip"
	"strings"
)

// Parse reads a CIDR ("192.0.2.0/24", "2001:db8::/32") or a bare address
// ("192.0.2.7", "::1") and returns its canonical prefix (see Canonical).
// Addresses with a zone are refused. The error names what is wrong but not
// s, which callers name with their own context.
func Parse(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s) // refuses zones itself
		if err != nil {
			return netip.Prefix{}, err
		}
		return Canonical(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errZone
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var errZone = errors.New("zones are not supported")

// Canonical masks p and turns an IPv4-mapped IPv6 prefix
// (::ffff:192.0.2.0/120) into its IPv4 form (192.0.2.0/24). A mapped
// prefix shorter than /96 spans more than IPv4 and stays IPv6.
func Canonical(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}
