package simulate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"

	"github.com/oschwald/maxminddb-golang/v2"
)

// span is one IPv4 network of the country database, as [lo, lo+size).
type span struct {
	lo   uint32
	size uint32 // at most 2^31: no country holds a /0
}

// countryRanges are the IPv4 networks the country database gives one
// country, with cumulative address counts for drawing an address uniformly.
type countryRanges struct {
	spans []span
	cum   []uint64 // cum[i] = addresses in spans[:i+1]
}

func (r *countryRanges) total() uint64 {
	if len(r.cum) == 0 {
		return 0
	}
	return r.cum[len(r.cum)-1]
}

// draw returns a uniformly random address of the country (never one ending
// in .0 or .255, which real hosts rarely hold) and the index of its span.
func (r *countryRanges) draw(rng *rand.Rand) (uint32, int) {
	for {
		k := rng.Uint64N(r.total())
		i := sort.Search(len(r.cum), func(i int) bool { return r.cum[i] > k })
		start := uint64(0)
		if i > 0 {
			start = r.cum[i-1]
		}
		a := r.spans[i].lo + uint32(k-start)
		if plausibleHost(a) {
			return a, i
		}
	}
}

// plausibleHost rejects the network and broadcast addresses of a /24.
func plausibleHost(a uint32) bool {
	b := a & 0xff
	return b != 0 && b != 255
}

// churnSpan is where an address of span s may move to: the span itself, or
// its /16 around a when the span is larger than a /16. It is the "same
// network" of address churn: same country, same allocation, usually the
// same ISP pool.
func churnSpan(s span, a uint32) span {
	if s.size <= 1<<16 {
		return s
	}
	return span{lo: a &^ 0xffff, size: 1 << 16}
}

// loadRanges reads the IPv4 networks of the wanted countries from a flat
// (country_code) or MaxMind (country.iso_code) MMDB.
func loadRanges(mmdb []byte, want map[string]bool) (map[string]*countryRanges, error) {
	r, err := maxminddb.OpenBytes(mmdb)
	if err != nil {
		return nil, fmt.Errorf("simulate: open country database: %w", err)
	}
	defer r.Close()
	type rec struct {
		Flat    string `maxminddb:"country_code"`
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
	}
	codes := map[uintptr]string{} // a country file has a few hundred distinct records
	out := map[string]*countryRanges{}
	for res := range r.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("simulate: read country database: %w", err)
		}
		cc, ok := codes[res.Offset()]
		if !ok {
			var v rec
			if err := res.Decode(&v); err != nil {
				return nil, fmt.Errorf("simulate: decode country record: %w", err)
			}
			cc = v.Flat
			if cc == "" {
				cc = v.Country.ISOCode
			}
			codes[res.Offset()] = cc
		}
		if !want[cc] {
			continue
		}
		p := res.Prefix()
		if !p.Addr().Is4() || p.Bits() < 1 {
			continue
		}
		cr := out[cc]
		if cr == nil {
			cr = &countryRanges{}
			out[cc] = cr
		}
		a4 := p.Addr().As4()
		s := span{lo: be32(a4), size: 1 << (32 - p.Bits())}
		cr.spans = append(cr.spans, s)
		cr.cum = append(cr.cum, cr.total()+uint64(s.size))
	}
	return out, nil
}

func be32(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr4(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}
