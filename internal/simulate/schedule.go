package simulate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultCountries is the default country distribution of the population
// at the takedown (weights, normalised at use). See docs/simulator.md for
// the sources; in short:
//
//   - Microsoft's special-edition Security Intelligence Report "Battling
//     the Rustock Threat" (July 2011), as reported by the press: India and
//     Russia were the two largest infected countries in March 2011, the
//     United States fourth (second in June);
//   - the United States' share, 5.4%, is the 86,000 of 1,601,619 addresses
//     of the stats example in PRODUCT.md;
//   - Brazil third, and the long tail (Eastern Europe, South-East Asia,
//     Latin America, the Middle East), are an assumption shaped like the
//     2009-2011 Rustock spam-source tables of Microsoft's anti-spam team.
func DefaultCountries() map[string]float64 {
	return map[string]float64{
		// Percent; they add up to 100.
		"IN": 14, "RU": 10, "BR": 6, "US": 5.4,
		"UA": 3.5, "TR": 3.5, "VN": 3.5, "PL": 3.5, "TH": 3.5, "ID": 3, "PH": 3,
		"CO": 3, "AR": 3, "MX": 3, "RO": 2.5, "KR": 2.5, "IT": 2.5, "ES": 2.5,
		"PK": 2.5, "SA": 1.6, "EG": 2, "KZ": 1.5, "BY": 1.5, "CL": 1.5, "PE": 1.5,
		"MY": 1.5, "IR": 1.5, "GB": 1.5, "DE": 1.5, "FR": 1, "CZ": 1, "IL": 1,
		"ZA": 1,
	}
}

// ParseCountries parses "IN=14,RU=10,US=5.4" into weights.
func ParseCountries(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		cc, w, ok := strings.Cut(f, "=")
		cc = strings.ToUpper(strings.TrimSpace(cc))
		v, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if !ok || len(cc) != 2 || err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("country weight %q: want CC=WEIGHT, e.g. IN=14", f)
		}
		out[cc] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("country distribution %q is empty", s)
	}
	return out, nil
}

// The Rustock clean-up figures (Microsoft, 2011): unique infected
// addresses at the end of March, in mid-June and in mid-September, and the
// day of each counted from the end of March (day 0).
const (
	rustockMarch     = 1601619
	rustockJune      = 702860
	rustockSeptember = 421000
	dayJune          = 77  // 31 March to 16 June
	daySeptember     = 167 // 31 March to 14 September
)

// countryAnchor is what the sources say about one country's survival (the
// fraction of its day-0 hosts still infected) at the June and September
// anchors; zero means unknown.
type countryAnchor struct{ june, september float64 }

// knownAnchors: India -69.30% and Russia -70.61% by June, the United
// States -35.48% by June (Microsoft, July 2011) and 36,000 of 86,000 left
// by September (PRODUCT.md's example).
var knownAnchors = map[string]countryAnchor{
	"IN": {june: 1 - 0.6930},
	"RU": {june: 1 - 0.7061},
	"US": {june: 1 - 0.3548, september: 36000.0 / 86000},
}

// schedule gives, per country, the probability that a host still infected
// on day d-1 is cleaned at the start of day d.
type schedule struct {
	constant float64               // ≥ 0: the same daily rate everywhere
	logs     map[string][3]float64 // rustock: log survival at days 0 (=0), June, September
}

// newConstantSchedule cleans the same fraction of the remaining hosts
// every day.
func newConstantSchedule(rate float64) *schedule { return &schedule{constant: rate} }

// newRustockSchedule fits per-country survival curves to the Rustock
// figures: log survival is piecewise linear between day 0, the June anchor
// and the September anchor, and goes on at the June–September slope
// afterwards. Countries with a published figure follow it; the others
// share the survival that makes the whole population follow the global
// figures (1,601,619 → 702,860 → 421,000).
func newRustockSchedule(shares map[string]float64) *schedule {
	sJune := float64(rustockJune) / rustockMarch
	sSept := float64(rustockSeptember) / rustockMarch
	june := map[string]float64{}
	var known, rest float64
	for cc, s := range shares {
		if a := knownAnchors[cc]; a.june > 0 {
			june[cc] = a.june
			known += s * a.june
		} else {
			rest += s
		}
	}
	rJune := sJune
	if rest > 0 {
		rJune = clamp((sJune-known)/rest, 0.01, 1)
	}
	var knownSept, restSept float64
	for cc, s := range shares {
		if _, ok := june[cc]; !ok {
			june[cc] = rJune
		}
		if a := knownAnchors[cc]; a.september > 0 {
			knownSept += s * a.september
		} else {
			restSept += s * june[cc]
		}
	}
	q := sSept / sJune
	if restSept > 0 {
		q = clamp((sSept-knownSept)/restSept, 0.01, 1)
	}
	sc := &schedule{constant: -1, logs: map[string][3]float64{}}
	for cc := range shares {
		sept := june[cc] * q
		if a := knownAnchors[cc]; a.september > 0 {
			sept = a.september
		}
		sept = min(sept, june[cc])
		sc.logs[cc] = [3]float64{0, math.Log(june[cc]), math.Log(sept)}
	}
	return sc
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

// logSurvival is a country's log survival on day d.
func (s *schedule) logSurvival(cc string, d int) float64 {
	l := s.logs[cc]
	x := float64(d)
	switch {
	case d <= 0:
		return 0
	case d <= dayJune:
		return l[1] * x / dayJune
	default:
		slope := (l[2] - l[1]) / (daySeptember - dayJune)
		return l[1] + slope*(x-dayJune)
	}
}

// cleanProb is the probability that a host of country cc infected on day
// d-1 is cleaned at the start of day d (d ≥ 1).
func (s *schedule) cleanProb(cc string, d int) float64 {
	if d <= 0 {
		return 0
	}
	if s.constant >= 0 {
		return s.constant
	}
	return 1 - math.Exp(s.logSurvival(cc, d)-s.logSurvival(cc, d-1))
}

// String describes the schedule for logs and the truth file.
func (s *schedule) String() string {
	if s.constant >= 0 {
		return strconv.FormatFloat(s.constant, 'g', -1, 64) + " per day"
	}
	return "rustock"
}
