package simulate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
)

// DGA makes a share of the population a family that calls names generated
// by date (a domain generation algorithm) instead of [Options.Domains]: on
// each day, a host of the family calls one of that day's names (its own
// pick, the same index every day), over HTTP and HTTPS; its resolvers'
// DNS queries stay on Domains.
type DGA struct {
	// Family is the family the sinkhole gives the generated names (the
	// generator indicator's family); history events carry it.
	Family string
	// Names returns the names the registry seizes for a UTC day (for
	// example registry.GeneratedNames of that day). It is called once per
	// day of the history and for the day after it (the live day), in New.
	// On a day without names the family's hosts call Domains like the
	// others.
	Names func(day time.Time) []string
	// Share is the fraction of hosts of the family (default 0.25).
	Share float64
}

// DefaultDGAShare is the share of hosts of [DGA] when it gives none.
const DefaultDGAShare = 0.25

// DGABeaconPath is the path a DGA host POSTs its beacon to. It differs from
// [BeaconPath], so that the Rustock rule of the default classification does
// not claim the family's beacons: the sinkhole classifies them by the
// generated name's indicator family.
const DGABeaconPath = "/gate.php"

// streamDGA draws which hosts use the DGA, apart from the population's
// stream, so that a population without it is the same as before.
const streamDGA uint64 = 0x646761 << 32

// checkDGA normalises o.DGA (nil stays nil).
func checkDGA(o *Options) error {
	d := o.DGA
	if d == nil {
		return nil
	}
	var errs []error
	if d.Names == nil {
		errs = append(errs, errors.New("dga: no name generator"))
	}
	if d.Family == "" || !plain(d.Family) {
		errs = append(errs, fmt.Errorf("dga: family %q: want a plain name", d.Family))
	}
	if d.Share == 0 {
		d.Share = DefaultDGAShare
	}
	if d.Share < 0 || d.Share > 1 || math.IsNaN(d.Share) {
		errs = append(errs, fmt.Errorf("dga: share %v: want a fraction", d.Share))
	}
	return errors.Join(errs...)
}

// prepareDGA generates the names of every history day and the live day and
// picks the family's hosts.
func (s *Sim) prepareDGA() {
	d := s.opts.DGA
	if d == nil {
		return
	}
	s.gen = make([][]string, s.opts.Days+1)
	for i := range s.gen {
		var names []string
		seen := map[string]bool{}
		for _, n := range d.Names(s.start.AddDate(0, 0, i)) {
			if validName(n) && !seen[n] && len(names) < math.MaxUint16 {
				seen[n] = true
				names = append(names, n)
			}
		}
		s.gen[i] = names
	}
	rng := s.rng(streamDGA, 0)
	for i := range s.hosts {
		h := &s.hosts[i]
		h.dga = rng.Float64() < d.Share
		h.gen = uint16(rng.Uint32())
	}
	// Event IDs name the population: one with the family is another.
	sum := sha256.New()
	fmt.Fprintf(sum, "%s|dga|%s|%v|", s.tag, d.Family, d.Share)
	for _, names := range s.gen {
		fmt.Fprintf(sum, "%d,", len(names))
		for _, n := range names {
			sum.Write([]byte(n))
			sum.Write([]byte{','})
		}
	}
	s.tag = hex.EncodeToString(sum.Sum(nil)[:6])
}

// genName is the generated name host h calls on day d, if it calls one.
func (s *Sim) genName(h *host, d int) (uint16, bool) {
	if !h.dga || d < 0 || d >= len(s.gen) || len(s.gen[d]) == 0 {
		return 0, false
	}
	return uint16(int(h.gen) % len(s.gen[d])), true
}

// GeneratedNames returns the generated names the family's hosts call on
// the UTC day of day (nil without a DGA or outside the history and the
// live day).
func (s *Sim) GeneratedNames(day time.Time) []string {
	d := int(day.UTC().Truncate(24*time.Hour).Sub(s.start) / (24 * time.Hour))
	if s.gen == nil || d < 0 || d >= len(s.gen) {
		return nil
	}
	return append([]string(nil), s.gen[d]...)
}

// beaconFamilies returns the family the classification gives a direct
// beacon of day d, as in its history event: the same fillEvent, memoised
// per host and kind (and day, for a generated name), which is all a
// beacon's classification input depends on.
func (s *Sim) beaconFamilies() func(b beacon, d int) string {
	memo := map[uint64]string{}
	var ev event.Event
	var in classify.Input
	pay := make([]byte, 0, PayloadSize)
	return func(b beacon, d int) string {
		key := uint64(uint32(b.who))<<32 | uint64(b.kind)<<24
		if b.gen {
			key |= uint64(d+1) & 0xffffff
		}
		if f, ok := memo[key]; ok {
			return f
		}
		s.fillEvent(&ev, &in, b, s.start.AddDate(0, 0, d), "", pay)
		memo[key] = ev.Family
		return ev.Family
	}
}

// plain reports whether s is a plain name: printable ASCII that JSON
// writes as is (no quote, backslash or HTML character).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
