package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Counts are the ground-truth figures of one day or window, computed with
// the stats rules: UniqueIPs are the distinct source addresses of direct
// connections (http, https) in the window; ResolverIPs the distinct sources
// of DNS queries, which are never counted as infected; HostsAlive the
// infected hosts (at the end of a day; for a window, those that beaconed in
// it).
type Counts struct {
	HostsAlive  int `json:"hosts_alive"`
	UniqueIPs   int `json:"unique_ips"`
	ResolverIPs int `json:"resolver_ips"`
	Events      int `json:"events"`
}

// CountryCounts are one country's figures.
type CountryCounts struct {
	HostsAlive int `json:"hosts_alive"`
	UniqueIPs  int `json:"unique_ips"`
}

// Period is the truth of one UTC day or one window of days: [From, To).
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Counts
	Countries map[string]CountryCounts `json:"countries"`
	// Families are the distinct source addresses of direct connections
	// per family, as the classification names the events (what `stats
	// --by family` counts).
	Families map[string]int `json:"families"`
}

// Truth is the ground truth of a history: per day, per trailing 7-day
// window (ending with each day; the first six are shorter, since nothing
// precedes day 0), and the reduction from the first window to the last.
type Truth struct {
	Seed         uint64    `json:"seed"`
	Bots         int       `json:"bots"`
	Start        time.Time `json:"start"`
	Days         int       `json:"days"`
	Churn        float64   `json:"churn"`
	NAT          float64   `json:"nat"`
	Cleanup      string    `json:"cleanup"`
	Rules        string    `json:"rules"`
	Daily        []Period  `json:"daily"`
	Weekly       []Period  `json:"weekly"`
	Baseline     *Period   `json:"baseline,omitempty"`      // the first full 7-day window
	Last         *Period   `json:"last,omitempty"`          // the last 7-day window
	ReductionPct float64   `json:"reduction_pct,omitempty"` // 100 × (1 − last/baseline), unique IPs, one decimal
}

const truthRules = "unique_ips: distinct src_ip of http and https events in [from, to), UTC; " +
	"resolver_ips: distinct src_ip of dns events, never counted as infected; " +
	"hosts_alive: infected hosts at the end of the day (windows: hosts that beaconed in it); " +
	"a country is the country database's country_code of the address; " +
	"families: distinct src_ip of http and https events per family as the classification names them"

// window is the trailing window length of Weekly.
const window = 7

// Truth computes the ground truth of the whole history. It walks the same
// observations as [Sim.EachEvent], so it is exact by construction; the
// tests check it against the written history independently.
func (s *Sim) Truth() (*Truth, error) {
	days := s.opts.Days
	t := &Truth{Seed: s.opts.Seed, Bots: s.opts.Bots, Start: s.start, Days: days, Churn: s.opts.Churn,
		NAT: s.opts.NAT, Cleanup: s.sched.String(), Rules: truthRules,
		Daily: make([]Period, days), Weekly: make([]Period, days)}
	nc := len(s.countries)
	type win struct {
		ips, hosts, resolvers int
		cIPs, cHosts          []int
		fams                  map[string]int
	}
	wins := make([]win, days)
	for i := range wins {
		wins[i].cIPs, wins[i].cHosts = make([]int, nc), make([]int, nc)
		wins[i].fams = map[string]int{}
	}
	// Per family, as for addresses: the last window an address of that
	// family was credited to.
	type famIP struct {
		fam string
		ip  uint32
	}
	famCredit := map[famIP]int{}
	familyOf := s.beaconFamilies()
	// An address or host seen on day e belongs to windows e..e+6; credit
	// each window once through the last window already credited.
	ipCredit := map[uint32]int{}
	resCredit := map[uint32]int{}
	hostCredit := make([]int, len(s.hosts))
	for i := range hostCredit {
		hostCredit[i] = -1
	}
	credit := func(last map[uint32]int, a uint32, e int, add func(w int)) {
		from := e
		if l, ok := last[a]; ok {
			from = max(from, l+1)
		}
		to := min(e+window-1, days-1)
		for w := from; w <= to; w++ {
			add(w)
		}
		if to >= from {
			last[a] = to
		}
	}
	cAlive := make([]int, nc)
	cIPs := make([]int, nc)
	err := s.eachDay(0, days-1, func(d int, bs []beacon, _ *stepper) error {
		p := &t.Daily[d]
		p.From = s.start.AddDate(0, 0, d)
		p.To = p.From.AddDate(0, 0, 1)
		p.Countries = map[string]CountryCounts{}
		p.Families = map[string]int{}
		clear(cAlive)
		clear(cIPs)
		for i := range s.hosts {
			if s.alive(i, d) {
				p.HostsAlive++
				cAlive[s.hosts[i].country]++
			}
		}
		seen := map[uint32]bool{}
		seenRes := map[uint32]bool{}
		seenFam := map[famIP]bool{}
		for _, b := range bs {
			p.Events++
			if b.kind == kindDNS {
				if !seenRes[b.src] {
					seenRes[b.src] = true
					credit(resCredit, b.src, d, func(w int) { wins[w].resolvers++ })
				}
				continue
			}
			c := int(s.hosts[b.who].country)
			if k := (famIP{familyOf(b, d), b.src}); !seenFam[k] {
				seenFam[k] = true
				p.Families[k.fam]++
				from := d
				if l, ok := famCredit[k]; ok {
					from = max(from, l+1)
				}
				to := min(d+window-1, days-1)
				for w := from; w <= to; w++ {
					wins[w].fams[k.fam]++
				}
				if to >= from {
					famCredit[k] = to
				}
			}
			if !seen[b.src] {
				seen[b.src] = true
				cIPs[c]++
				credit(ipCredit, b.src, d, func(w int) { wins[w].ips++; wins[w].cIPs[c]++ })
			}
			if hostCredit[b.who] < d+window-1 {
				for w := max(d, hostCredit[b.who]+1); w <= min(d+window-1, days-1); w++ {
					wins[w].hosts++
					wins[w].cHosts[c]++
				}
				hostCredit[b.who] = d + window - 1
			}
		}
		p.UniqueIPs, p.ResolverIPs = len(seen), len(seenRes)
		for c, cc := range s.countries {
			if cAlive[c] > 0 || cIPs[c] > 0 {
				p.Countries[cc] = CountryCounts{HostsAlive: cAlive[c], UniqueIPs: cIPs[c]}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for d := range days {
		w := &wins[d]
		p := &t.Weekly[d]
		p.From = s.start.AddDate(0, 0, max(0, d-window+1))
		p.To = s.start.AddDate(0, 0, d+1)
		p.HostsAlive, p.UniqueIPs, p.ResolverIPs = w.hosts, w.ips, w.resolvers
		for i := max(0, d-window+1); i <= d; i++ {
			p.Events += t.Daily[i].Events
		}
		p.Countries = map[string]CountryCounts{}
		p.Families = w.fams
		for c, cc := range s.countries {
			if w.cIPs[c] > 0 || w.cHosts[c] > 0 {
				p.Countries[cc] = CountryCounts{HostsAlive: w.cHosts[c], UniqueIPs: w.cIPs[c]}
			}
		}
	}
	if days >= window {
		t.Baseline = &t.Weekly[window-1]
		t.Last = &t.Weekly[days-1]
		if t.Baseline.UniqueIPs > 0 {
			r := 100 * (1 - float64(t.Last.UniqueIPs)/float64(t.Baseline.UniqueIPs))
			t.ReductionPct = math.Round(r*10) / 10
		}
	}
	return t, nil
}

// WriteTruth writes the ground truth as one indented JSON document
// (docs/simulator.md describes it).
func (s *Sim) WriteTruth(w io.Writer) error {
	t, err := s.Truth()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(t); err != nil {
		return fmt.Errorf("simulate: write truth: %w", err)
	}
	return nil
}

// Day returns the truth of the UTC day that starts at day, if the history
// has it.
func (t *Truth) Day(day time.Time) (Period, bool) {
	i := slices.IndexFunc(t.Daily, func(p Period) bool { return p.From.Equal(day.UTC()) })
	if i < 0 {
		return Period{}, false
	}
	return t.Daily[i], true
}

// Window returns the truth of the trailing 7-day window that ends at end
// (exclusive, a UTC midnight), if the history has it.
func (t *Truth) Window(end time.Time) (Period, bool) {
	i := slices.IndexFunc(t.Weekly, func(p Period) bool { return p.To.Equal(end.UTC()) })
	if i < 0 {
		return Period{}, false
	}
	return t.Weekly[i], true
}
