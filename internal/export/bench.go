package export

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

// SyntheticSet builds a set of the given numbers of seized domains and
// prefixes (nine in ten IPv4 /24, one in ten IPv6 /48) over three cases,
// sorted as the registry sorts, for benchmarks of the exporters and their
// consumers. It is deterministic.
func SyntheticSet(domains, prefixes int, at time.Time) *registry.ActiveSet {
	cases := []struct{ id, court, family string }{
		{"rustock-2011", "U.S. District Court, W.D. Wash.", "rustock"},
		{"waledac-2010", "U.S. District Court, E.D. Va.", "waledac"},
		{"kelihos-2011", "U.S. District Court, E.D. Va.", "kelihos"},
	}
	entries := make([]registry.Entry, 0, domains+prefixes)
	add := func(i int, kind registry.Kind, value string, p netip.Prefix) {
		c := cases[i%len(cases)]
		entries = append(entries, registry.Entry{
			Kind: kind, Value: value, Prefix: p, Family: c.family, Case: c.id, Court: c.court,
			OrderID: int64(i%len(cases) + 1), Effective: at.AddDate(0, -6, 0), Expires: at.AddDate(2, 0, 0),
		})
	}
	for i := range domains {
		// Names like those of a DGA: distinct, spread over a few TLDs.
		add(i, registry.KindDomain, fmt.Sprintf("q%07x%s.%s", uint32(i)*2654435761, "bx", []string{"com", "net", "org", "ru"}[i%4]), netip.Prefix{})
	}
	for i := range prefixes {
		var p netip.Prefix
		if i%10 == 9 {
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48)
		} else {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		}
		add(i, registry.KindCIDR, p.String(), p)
	}
	slices.SortFunc(entries, func(a, b registry.Entry) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value), cmp.Compare(a.Case, b.Case))
	})
	return &registry.ActiveSet{At: at, Serial: 1, Entries: entries}
}

// Measurement is the cost of exporting one set in one format.
type Measurement struct {
	Format    string
	Entries   int
	Bytes     int64         // size of one export
	PerExport time.Duration // mean wall time of one export
}

// String is one line for the bench output.
func (m Measurement) String() string {
	return fmt.Sprintf("export-%s entries=%d bytes=%d per_export=%s", m.Format, m.Entries, m.Bytes, m.PerExport)
}

// Measure exports set in format name rounds times (at least once) to a
// discarding writer and reports the mean time per export. It is for the
// command-line benchmark; Go benchmarks use BenchmarkExport*.
func Measure(name string, set *registry.ActiveSet, opt Options, rounds int) (Measurement, error) {
	e, err := Lookup(name)
	if err != nil {
		return Measurement{}, err
	}
	rounds = max(rounds, 1)
	var w countingWriter
	start := time.Now()
	for range rounds {
		if err := e.Export(&w, set, opt); err != nil {
			return Measurement{}, fmt.Errorf("export %s: %w", name, err)
		}
	}
	elapsed := time.Since(start)
	return Measurement{Format: name, Entries: len(set.Entries), Bytes: w.n / int64(rounds), PerExport: elapsed / time.Duration(rounds)}, nil
}

// countingWriter discards what it is given and counts it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
