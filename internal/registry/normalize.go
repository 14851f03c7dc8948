package registry

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// idnaProfile converts names to A-labels the way a resolver looks them up.
var idnaProfile = idna.Lookup

// NormalizeName returns name in lower case, as A-labels, without a trailing
// dot, or an error saying why it is not a valid host name.
func NormalizeName(name string) (string, error) {
	n := strings.TrimSuffix(strings.TrimSpace(name), ".")
	if n == "" {
		return "", fmt.Errorf("empty name")
	}
	ascii, err := idnaProfile.ToASCII(n)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid domain name: %v", name, err)
	}
	ascii = strings.ToLower(ascii)
	// The A-label form must itself be valid and stable: some inputs map to
	// punycode that the same profile then refuses, which would store a name
	// no resolver can look up.
	if again, err := idnaProfile.ToASCII(ascii); err != nil || again != ascii {
		return "", fmt.Errorf("%q is not a valid domain name: its A-label form %q does not validate", name, ascii)
	}
	if len(ascii) > 253 {
		return "", fmt.Errorf("%q is longer than 253 characters", name)
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%q has a single label; seize a registered domain, not a top-level domain", name)
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", fmt.Errorf("%q is not a valid domain name: %v", name, err)
		}
	}
	// RFC 3696 section 2: a top-level domain is never all-numeric, so a
	// name whose last label is digits is an address or a mistyped one
	// (999.1.1.300), never a domain to seize.
	if tld := labels[len(labels)-1]; allDigits(tld) {
		if a, err := netip.ParseAddr(ascii); err == nil {
			return "", fmt.Errorf("%q is an address, not a name: seize it as the address %s (a line of its own, or ip:%s)", name, a, a)
		}
		return "", fmt.Errorf("%q is neither a domain name nor an address: the top-level label %q is all-numeric", name, tld)
	}
	return ascii, nil
}

// allDigits tells whether l is made of ASCII digits only.
func allDigits(l string) bool {
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return l != ""
}

func checkLabel(l string) error {
	if l == "" {
		return fmt.Errorf("empty label")
	}
	if len(l) > 63 {
		return fmt.Errorf("label %q is longer than 63 characters", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(l)-1 {
				return fmt.Errorf("label %q starts or ends with a hyphen", l)
			}
		default:
			return fmt.Errorf("label %q has the character %q", l, c)
		}
	}
	return nil
}

// Parse turns one raw indicator into a normalised Indicator. kind may be
// empty, in which case it is inferred: an address is ip, a prefix is cidr, a
// name is domain. A leading "*." on a name means the same as domain; an
// explicit "host:" or "domain:" (and "ip:", "cidr:") prefix sets the kind;
// "dga:FAMILY?param=value&…" is a generator (see docs/dga.md).
func Parse(raw string, kind Kind) (Indicator, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return Indicator{}, fmt.Errorf("empty indicator")
	}
	if kind == "" {
		if i := strings.IndexByte(s, ':'); i > 0 {
			if k, err := ParseKind(strings.ToLower(s[:i])); err == nil {
				kind, s = k, strings.TrimSpace(s[i+1:])
			}
		}
	}
	if kind == KindDGA {
		return parseDGA(raw, s)
	}
	if strings.HasPrefix(s, "*.") {
		if kind == KindHost || kind == KindIP || kind == KindCIDR {
			return Indicator{}, fmt.Errorf("%q: a wildcard name is a domain indicator, not %s", raw, kind)
		}
		kind, s = KindDomain, s[2:]
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Indicator{}, fmt.Errorf("%q is not a valid CIDR: %v", raw, err)
		}
		if kind != "" && kind != KindCIDR && kind != KindIP {
			return Indicator{}, fmt.Errorf("%q is a CIDR, not a %s", raw, kind)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if p.IsSingleIP() {
			return Indicator{Kind: KindIP, Value: p.Addr().String(), Prefix: p}, nil
		}
		return Indicator{Kind: KindCIDR, Value: p.String(), Prefix: p}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if kind != "" && kind != KindIP && kind != KindCIDR {
			return Indicator{}, fmt.Errorf("%q is an address, not a %s: to seize the address, write it as ip:%s", raw, kind, a.Unmap())
		}
		if a.Zone() != "" {
			return Indicator{}, fmt.Errorf("%q: an address with a zone cannot be seized", raw)
		}
		a = a.Unmap()
		return Indicator{Kind: KindIP, Value: a.String(), Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if kind == KindIP || kind == KindCIDR {
		return Indicator{}, fmt.Errorf("%q is not a valid %s", raw, kind)
	}
	name, err := NormalizeName(s)
	if err != nil {
		return Indicator{}, err
	}
	if kind == "" {
		kind = KindDomain
	}
	return Indicator{Kind: kind, Value: name}, nil
}

// unmapBits is how many leading bits an IPv4-mapped prefix loses when unmapped.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}
