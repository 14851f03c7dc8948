package registry

import (
	"bufio"
	_ "embed"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

//go:embed never-seize.txt
var defaultNeverSeize string

// DefaultNeverSeize returns the names shipped with the binary that are never
// seized: major platforms' apex domains, where a mistaken seizure would cut
// off millions of users.
func DefaultNeverSeize() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(defaultNeverSeize))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// Guard refuses indicators whose seizure would cause collateral damage.
type Guard struct {
	// AllowReserved lets loopback, private, link-local, multicast and
	// documentation addresses and special-use names through (for tests and
	// the demo).
	AllowReserved bool
	// AllowWide lets CIDRs wider than /16 (IPv4) or /32 (IPv6) through.
	AllowWide bool
	// DGAMargin is the margin given to a dga indicator whose line names
	// none (config registry.dga_margin); zero: the family's default.
	DGAMargin time.Duration
	never     map[string]bool
}

// NewGuard returns a guard with the default never-seize list plus extra.
func NewGuard(extra []string) (*Guard, error) {
	g := &Guard{never: map[string]bool{}}
	for _, n := range append(DefaultNeverSeize(), extra...) {
		name, err := NormalizeName(n)
		if err != nil {
			return nil, fmt.Errorf("never-seize list: %w", err)
		}
		g.never[name] = true
	}
	return g, nil
}

// specialNames are special-use top-level names (RFC 6761, RFC 6762, RFC 8375,
// RFC 9476) that are never registered and so never seized by a court order.
var specialNames = []string{"test", "example", "invalid", "localhost", "local", "onion", "alt", "home.arpa"}

var reservedPrefixes = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "100::/64",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Check returns why ind must not be seized, or nil.
func (g *Guard) Check(ind Indicator) error {
	switch ind.Kind {
	case KindDomain, KindHost:
		suffix, icann := publicsuffix.PublicSuffix(ind.Value)
		if suffix == ind.Value && (icann || strings.Contains(suffix, ".")) {
			return fmt.Errorf("%s is a public suffix: seizing it would take every domain under it", ind.Value)
		}
		for n := ind.Value; ; {
			if g.never[n] {
				if n == ind.Value {
					return fmt.Errorf("%s is on the never-seize list", ind.Value)
				}
				return fmt.Errorf("%s is under %s, which is on the never-seize list", ind.Value, n)
			}
			i := strings.IndexByte(n, '.')
			if i < 0 {
				break
			}
			n = n[i+1:]
		}
		if !g.AllowReserved {
			for _, s := range specialNames {
				if ind.Value == s || strings.HasSuffix(ind.Value, "."+s) {
					return fmt.Errorf("%s is a special-use name (.%s); use --allow-reserved for tests", ind.Value, s)
				}
			}
		}
	case KindDGA:
		// The generated names themselves are checked against the order's
		// window by CheckGenerated; here only the TLDs it generates under.
		sp, err := DGASpec(ind)
		if err != nil {
			return err
		}
		if !g.AllowReserved {
			for _, t := range sp.TLDs {
				for _, s := range specialNames {
					if t == s || strings.HasSuffix(t, "."+s) {
						return fmt.Errorf("dga:%s generates names under the special-use name .%s; use --allow-reserved for tests", sp.Family.Name, s)
					}
				}
			}
		}
	case KindIP, KindCIDR:
		p := ind.Prefix
		if !g.AllowReserved {
			for _, r := range reservedPrefixes {
				if r.Overlaps(p) {
					return fmt.Errorf("%s is in the reserved range %s (loopback, private, link-local, multicast or documentation); use --allow-reserved for tests", ind.Value, r)
				}
			}
		}
		if ind.Kind == KindCIDR && !g.AllowWide {
			if (p.Addr().Is4() && p.Bits() < 16) || (p.Addr().Is6() && p.Bits() < 32) {
				return fmt.Errorf("%s is wider than /16 (IPv4) or /32 (IPv6); use --allow-wide if the order really covers it", ind.Value)
			}
		}
	}
	return nil
}
