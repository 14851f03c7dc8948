package proxyproto

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/takedown/takedown/internal/netprefix"
)

// Trust is the set of peers allowed to send PROXY headers: a header from any
// other peer must be ignored (or the connection refused), since it would let
// anyone choose the address an event is recorded under. A nil *Trust trusts
// nobody. It is immutable and safe for concurrent use.
type Trust struct {
	prefixes []netip.Prefix
}

// ParseTrust parses CIDR prefixes or bare addresses ("127.0.0.1",
// "10.0.0.0/8", "::1"). All problems are reported together.
func ParseTrust(cidrs []string) (*Trust, error) {
	t := &Trust{}
	var errs []error
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		p, err := netprefix.Parse(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted proxy %q: %w", s, err))
			continue
		}
		t.prefixes = append(t.prefixes, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Trusted reports whether a may send PROXY headers. IPv4-mapped IPv6
// addresses match IPv4 prefixes.
func (t *Trust) Trusted(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Empty reports whether t trusts nobody.
func (t *Trust) Empty() bool { return t == nil || len(t.prefixes) == 0 }

// String lists the trusted prefixes, comma separated.
func (t *Trust) String() string {
	if t == nil {
		return ""
	}
	s := make([]string, len(t.prefixes))
	for i, p := range t.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
