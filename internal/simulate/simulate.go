// Package simulate is a population of Rustock-like infected hosts for the
// demo, the end-to-end tests and the load benchmarks: countries drawn from
// a configurable distribution, addresses from those countries' real ranges
// in the bundled geo data, address churn, NAT, recursive resolvers and a
// clean-up over months. It writes the past as event history
// ([Sim.WriteHistory]), the ground truth the analytics must reproduce
// ([Sim.WriteTruth]), and sends the present as real beacons to the
// sinkholes over loopback, each carrying the simulated source in a PROXY
// protocol v2 header ([Sim.RunLive]).
//
// It is not a malware emulator: beacons carry a fixed shape and an opaque
// 96-byte body, nothing executes, and it refuses every destination that is
// not a loopback address. The same [Options] (seed included) always give the
// same population, history and truth.
package simulate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	geodata "github.com/takedown/takedown/data/geo"
	"github.com/takedown/takedown/internal/classify"
)

// CleanupRustock as Options.Cleanup selects the Rustock-shaped clean-up
// schedule instead of a constant daily rate.
const CleanupRustock = -1

// Defaults of the population.
const (
	DefaultBots          = 20000
	DefaultDays          = 180
	DefaultChurn         = 0.05
	DefaultNAT           = 0.1
	DefaultBeaconsPerDay = 2
	DefaultHTTPSShare    = 0.1
	DefaultResolverHosts = 250
	DefaultDNSPerDay     = 24
	DefaultFamily        = "rustock"
)

// Options describe a population and its history. Use [DefaultOptions] and
// change what you need: Churn, NAT and Cleanup take zero as "none".
type Options struct {
	Seed uint64
	// Bots is the number of infected hosts on day 0 (default 20,000).
	Bots int
	// Start is day 0 (truncated to a UTC day); Days is the number of history
	// days from Start. The live beacons of [Sim.RunLive] use the state of
	// the day after the history.
	Start time.Time
	Days  int
	// Churn is the daily probability that an address (one host's, or a NAT
	// gateway's) is replaced by another in the same network.
	Churn float64
	// NAT is the fraction of hosts that share a public address with 1–5
	// others of the same country.
	NAT float64
	// Cleanup is the daily fraction of remaining hosts cleaned, or
	// CleanupRustock (any negative value) for the Rustock-shaped schedule.
	Cleanup float64
	// Countries weights the hosts' countries; nil means DefaultCountries.
	Countries map[string]float64
	// Domains are the seized names the bots call (at least one).
	Domains []string
	// Case and Family are written into every history event (default family
	// "rustock").
	Case, Family string
	// DGA, if set, makes a share of the hosts a family that calls the
	// day's generated names instead of Domains.
	DGA *DGA
	// BeaconsPerDay is the number of beacons an infected host makes on each
	// history day (default 2). Live beacons are paced by Targets.Rate.
	BeaconsPerDay int
	// HTTPSShare is the fraction of beacons made over HTTPS (default 0.1;
	// negative means none).
	HTTPSShare float64
	// ResolverHosts is the number of hosts per recursive resolver of a
	// country (default 250; every country with hosts has at least one).
	// DNSPerResolverDay is the number of sinkhole queries a resolver makes
	// on a day when any of its hosts is infected (default 24: a one-hour
	// TTL).
	ResolverHosts, DNSPerResolverDay int
	// SinkholeIP is the address the seized names resolve to: the dst_ip of
	// history events and of the PROXY headers (default 127.0.0.1).
	SinkholeIP netip.Addr
	// Sensor is the sensor name of history events (default "simulator").
	Sensor string
	// CountryDB is a country MMDB; nil means the bundled one. It must be the
	// database the pipeline enriches with, or per-country truth will differ.
	CountryDB []byte
	// Rules classify history events as the sinkhole would; nil means
	// classify.Default().
	Rules  *classify.Rules
	Logger *slog.Logger // nil discards
	// Now is the clock of the live beacons (which day's population they
	// come from) and of the default Start; nil means time.Now.
	Now func() time.Time
}

// DefaultOptions returns the defaults: 20,000 bots, 180 days ending at the
// start of today (UTC), 5% churn, 10% behind NAT, the Rustock clean-up.
func DefaultOptions(now time.Time) Options {
	end := now.UTC().Truncate(24 * time.Hour)
	return Options{
		Bots: DefaultBots, Days: DefaultDays, Start: end.AddDate(0, 0, -DefaultDays),
		Churn: DefaultChurn, NAT: DefaultNAT, Cleanup: CleanupRustock,
		BeaconsPerDay: DefaultBeaconsPerDay, HTTPSShare: DefaultHTTPSShare,
	}
}

// Sim is a population. It is immutable after New; its methods may be
// called concurrently.
type Sim struct {
	opts      Options
	log       *slog.Logger
	rules     *classify.Rules
	start     time.Time
	tag       string // in every event ID: which population made it
	countries []string
	ranges    []*countryRanges // by country index
	sched     *schedule
	hosts     []host
	holders   []holder // day-0 addresses
	resolvers []resolver
	gen       [][]string // with a DGA: the generated names of day 0 to Days
}

// host is one infected machine.
type host struct {
	holder   int32 // the address holder (itself, or its NAT gateway)
	resolver int32
	country  uint16
	domain   uint16 // index into Domains: the C2 name it calls
	cleaned  int32  // first day it no longer beacons
	dga      bool   // calls generated names (Options.DGA)
	gen      uint16 // which of a day's generated names, modulo their number
}

// holder is a public address: one host's, or a NAT gateway's.
type holder struct {
	addr    uint32
	span    int32 // index into the country's spans
	country uint16
}

// resolver is a recursive resolver the hosts of one country use.
type resolver struct {
	addr    uint32
	country uint16
}

// New builds the population of opts.
func New(opts Options) (*Sim, error) {
	if err := normalise(&opts); err != nil {
		return nil, err
	}
	s := &Sim{opts: opts, log: opts.Logger, rules: opts.Rules, start: opts.Start}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rules == nil {
		s.rules = classify.Default()
	}
	s.countries = slices.Sorted(func(yield func(string) bool) {
		for cc, w := range opts.Countries {
			if w > 0 && !yield(cc) {
				return
			}
		}
	})
	want := map[string]bool{}
	for _, cc := range s.countries {
		want[cc] = true
	}
	db := opts.CountryDB
	if db == nil {
		db = geodata.Country()
	}
	rs, err := loadRanges(db, want)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, cc := range s.countries {
		if rs[cc] == nil || rs[cc].total() == 0 {
			missing = append(missing, cc)
		}
		s.ranges = append(s.ranges, rs[cc])
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("simulate: the country database has no IPv4 ranges for %s", strings.Join(missing, ", "))
	}
	shares := map[string]float64{}
	var sum float64
	for _, cc := range s.countries {
		sum += opts.Countries[cc]
	}
	for _, cc := range s.countries {
		shares[cc] = opts.Countries[cc] / sum
	}
	if opts.Cleanup < 0 {
		s.sched = newRustockSchedule(shares)
	} else {
		s.sched = newConstantSchedule(opts.Cleanup)
	}
	s.tag = runTag(&opts, s.countries)
	s.populate(shares)
	s.prepareDGA()
	s.log.Info("simulated population built", "bots", len(s.hosts), "addresses", len(s.holders),
		"resolvers", len(s.resolvers), "countries", len(s.countries), "cleanup", s.sched.String())
	return s, nil
}

func normalise(o *Options) error {
	var errs []error
	if o.Bots == 0 {
		o.Bots = DefaultBots
	}
	if o.Days == 0 {
		o.Days = DefaultDays
	}
	if o.Bots < 0 || o.Bots > 1<<24 {
		errs = append(errs, fmt.Errorf("bots %d: want 1 to %d", o.Bots, 1<<24))
	}
	if o.Days < 0 || o.Days > 3660 {
		errs = append(errs, fmt.Errorf("days %d: want 0 to 3660", o.Days))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"churn", o.Churn}, {"nat", o.NAT}, {"cleanup", max(o.Cleanup, 0)}, {"https share", max(o.HTTPSShare, 0)}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > 1 {
			errs = append(errs, fmt.Errorf("%s %v: want a fraction from 0 to 1", f.name, f.v))
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Start.IsZero() {
		o.Start = o.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -o.Days)
	}
	o.Start = o.Start.UTC().Truncate(24 * time.Hour)
	if o.Countries == nil {
		o.Countries = DefaultCountries()
	}
	var pos int
	for cc, w := range o.Countries {
		if len(cc) != 2 || cc != strings.ToUpper(cc) || w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			errs = append(errs, fmt.Errorf("country weight %s=%v: want an upper-case ISO code and a weight ≥ 0", cc, w))
		}
		if w > 0 {
			pos++
		}
	}
	if pos == 0 {
		errs = append(errs, errors.New("the country distribution has no positive weight"))
	}
	doms := make([]string, 0, len(o.Domains))
	seen := map[string]bool{}
	for _, d := range o.Domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || seen[d] {
			continue
		}
		if !validName(d) {
			errs = append(errs, fmt.Errorf("domain %q is not a host name", d))
			continue
		}
		seen[d] = true
		doms = append(doms, d)
	}
	if len(doms) == 0 {
		errs = append(errs, errors.New("no seized domains to call: give --domains or import an order"))
	}
	if len(doms) > math.MaxUint16 {
		doms = doms[:math.MaxUint16]
	}
	o.Domains = doms
	if o.Family == "" {
		o.Family = DefaultFamily
	}
	if err := checkDGA(o); err != nil {
		errs = append(errs, err)
	}
	if o.BeaconsPerDay <= 0 {
		o.BeaconsPerDay = DefaultBeaconsPerDay
	}
	if o.BeaconsPerDay > 96 {
		errs = append(errs, fmt.Errorf("beacons per day %d: want at most 96", o.BeaconsPerDay))
	}
	if o.HTTPSShare == 0 {
		o.HTTPSShare = DefaultHTTPSShare
	}
	o.HTTPSShare = max(o.HTTPSShare, 0)
	if o.ResolverHosts <= 0 {
		o.ResolverHosts = DefaultResolverHosts
	}
	if o.DNSPerResolverDay <= 0 {
		o.DNSPerResolverDay = DefaultDNSPerDay
	}
	if !o.SinkholeIP.IsValid() {
		o.SinkholeIP = netip.MustParseAddr("127.0.0.1")
	}
	if o.Sensor == "" {
		o.Sensor = "simulator"
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return nil
}

// validName accepts LDH host names (and underscores), 1–253 bytes.
func validName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// runTag names a population in event IDs: a hash of everything that shapes
// its events, so that re-importing the same history is idempotent and two
// different populations never share an ID.
func runTag(o *Options, countries []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%d|%s|%d|%v|%v|%v|%d|%v|%d|%d|%s|%s|%s|%s|", o.Seed, o.Bots, o.Start.Format(time.DateOnly), o.Days,
		o.Churn, o.NAT, o.Cleanup, o.BeaconsPerDay, o.HTTPSShare, o.ResolverHosts, o.DNSPerResolverDay,
		o.SinkholeIP, o.Case, o.Family, o.Sensor)
	for _, cc := range countries {
		fmt.Fprintf(h, "%s=%v,", cc, o.Countries[cc])
	}
	for _, d := range o.Domains {
		fmt.Fprintf(h, "%s,", d)
	}
	if o.CountryDB != nil {
		sum := sha256.Sum256(o.CountryDB)
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// Random streams: each purpose and day has its own, so that what one
// consumes never shifts another.
const (
	streamPopulation uint64 = 0x706f70 << 32
	streamChurn      uint64 = 0x636875 << 32
	streamBeacons    uint64 = 0x626561 << 32
	streamLive       uint64 = 0x6c6976 << 32
)

func (s *Sim) rng(stream uint64, n uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s.opts.Seed, stream^n*0x9E3779B97F4A7C15))
}

// populate draws the hosts, their NAT groups, addresses and resolvers.
func (s *Sim) populate(shares map[string]float64) {
	rng := s.rng(streamPopulation, 0)
	cum := make([]float64, len(s.countries))
	var acc float64
	for i, cc := range s.countries {
		acc += shares[cc]
		cum[i] = acc
	}
	n := s.opts.Bots
	s.hosts = make([]host, n)
	byCountry := make([][]int32, len(s.countries))
	for i := range s.hosts {
		u := rng.Float64() * acc
		c, _ := slices.BinarySearch(cum, u)
		c = min(c, len(cum)-1)
		h := &s.hosts[i]
		h.country = uint16(c)
		h.domain = uint16(rng.IntN(len(s.opts.Domains)))
		h.cleaned = s.cleanDay(s.countries[c], rng.Float64())
		byCountry[c] = append(byCountry[c], int32(i))
	}
	used := map[uint32]bool{}
	draw := func(c int) (uint32, int32) {
		for {
			a, sp := s.ranges[c].draw(rng)
			if !used[a] {
				used[a] = true
				return a, int32(sp)
			}
		}
	}
	// NAT: per country, the hosts picked for NAT are cut into groups of 2
	// to 6 that share one gateway address; everyone else has their own.
	for c, hs := range byCountry {
		var natted []int32
		for _, i := range hs {
			if rng.Float64() < s.opts.NAT {
				natted = append(natted, i)
				continue
			}
			a, sp := draw(c)
			s.hosts[i].holder = int32(len(s.holders))
			s.holders = append(s.holders, holder{addr: a, span: sp, country: uint16(c)})
		}
		for len(natted) > 0 {
			k := min(2+rng.IntN(5), len(natted))
			a, sp := draw(c)
			for _, i := range natted[:k] {
				s.hosts[i].holder = int32(len(s.holders))
			}
			s.holders = append(s.holders, holder{addr: a, span: sp, country: uint16(c)})
			natted = natted[k:]
		}
		// Resolvers: one per ResolverHosts hosts of the country, at least
		// one; never one of the hosts' own addresses.
		if len(hs) == 0 {
			continue
		}
		nr := max(1, (len(hs)+s.opts.ResolverHosts-1)/s.opts.ResolverHosts)
		first := len(s.resolvers)
		for range nr {
			a, _ := draw(c)
			s.resolvers = append(s.resolvers, resolver{addr: a, country: uint16(c)})
		}
		for _, i := range hs {
			s.hosts[i].resolver = int32(first + rng.IntN(nr))
		}
	}
}

// cleanDay is the first day a host of country cc no longer beacons, drawn
// by inverting the country's survival curve at u: the same law as a daily
// coin with the schedule's clean-up probability, in one draw.
func (s *Sim) cleanDay(cc string, u float64) int32 {
	const horizon = 1 << 20
	if u <= 0 {
		return horizon
	}
	lu := math.Log(u)
	if s.sched.constant >= 0 {
		if s.sched.constant == 0 {
			return horizon
		}
		if s.sched.constant >= 1 {
			return 1
		}
		// survival (1-r)^d < u ⇔ d > ln u / ln(1-r)
		d := math.Floor(lu/math.Log1p(-s.sched.constant)) + 1
		return int32(min(max(d, 1), horizon))
	}
	// Survival is log-linear in pieces: find the first day below u.
	lo, hi := 1, horizon
	if s.sched.logSurvival(cc, hi) >= lu {
		return horizon
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if s.sched.logSurvival(cc, mid) < lu {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int32(lo)
}

func (s *Sim) now() time.Time { return s.opts.Now() }

// Start is day 0 of the history (UTC midnight).
func (s *Sim) Start() time.Time { return s.start }

// End is the end of the history: Start plus Days.
func (s *Sim) End() time.Time { return s.start.AddDate(0, 0, s.opts.Days) }

// Days is the number of history days.
func (s *Sim) Days() int { return s.opts.Days }

// Hosts is the number of infected hosts on day 0.
func (s *Sim) Hosts() int { return len(s.hosts) }

// Countries lists the population's countries, sorted.
func (s *Sim) Countries() []string { return slices.Clone(s.countries) }

// Domains lists the seized names the bots call.
func (s *Sim) Domains() []string { return slices.Clone(s.opts.Domains) }

// Options returns the options after defaults were applied.
func (s *Sim) Options() Options { return s.opts }

// BotID is host i's bot identifier, 16 hex digits.
func (s *Sim) BotID(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.botKey(i))
	return hex.EncodeToString(b[:])
}

func (s *Sim) botKey(i int) uint64 {
	return splitmix(s.opts.Seed ^ splitmix(uint64(i)+0x626f74))
}

// payload appends host i's 96-byte beacon body: opaque bytes, constant per
// bot (the bot identifier encrypted under a key of the bot's own, as far as
// the sinkhole can tell), so that payload_sha256 tells bots apart behind
// NAT and across churn.
func (s *Sim) payload(dst []byte, i int) []byte {
	x := s.botKey(i)
	for range 12 {
		x = splitmix(x)
		dst = binary.BigEndian.AppendUint64(dst, x)
	}
	return dst
}

// PayloadSize is the length of a beacon body.
const PayloadSize = 96

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}
