// Package statsfixture generates a known population of infected machines
// beaconing to a sinkhole over many days, with address churn, NAT,
// intermittent machines, clean-up, resolver queries and duplicate report
// rows, as Shadowserver-layout CSV reports and as events, together with the
// truth the analytics must reproduce. It is for tests and benchmarks only,
// and deterministic for a seed.
package statsfixture

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/takedown/takedown/internal/event"
)

// Config shapes the population.
type Config struct {
	Seed     uint64
	Start    time.Time // UTC midnight of the first day
	Days     int
	Machines int
	// NATRate is the share of machines behind a NAT shared with others.
	NATRate float64
	// Resolvers is the number of recursive resolvers querying seized names.
	Resolvers int
	// DuplicateRate is the share of report rows written twice.
	DuplicateRate float64
	// Case is the case every event belongs to.
	Case string
}

// Default is the acceptance population: 100 days, 3,000 machines.
func Default() Config {
	return Config{Seed: 20110316, Start: time.Date(2011, 3, 16, 0, 0, 0, 0, time.UTC), Days: 100, Machines: 3000,
		NATRate: 0.12, Resolvers: 60, DuplicateRate: 0.02, Case: "rustock-2011"}
}

// Families: IDFamily's traffic carries a bot identifier, NoIDFamily's does
// not.
const (
	IDFamily   = "kelihos"
	NoIDFamily = "rustock"
)

type network struct {
	country string
	asn     uint32
	org     string
	base    uint32 // a /16
	churn   float64
}

var networks = []network{
	{"US", 7922, "COMCAST-7922", 0x18000000, 0.05},
	{"US", 701, "UUNET", 0x18010000, 0.02},
	{"DE", 3320, "DTAG", 0x4f000000, 0.9}, // daily reconnects
	{"FR", 3215, "Orange", 0x51000000, 0.3},
	{"BR", 28573, "CLARO", 0xb1000000, 0.5},
	{"IN", 9829, "BSNL", 0x75000000, 0.6},
	{"GB", 2856, "BT", 0x56000000, 0.1},
	{"TR", 9121, "TTNET", 0x55000000, 0.4},
}

// weights of the networks for new machines (same order as networks).
var weights = []int{20, 8, 14, 8, 12, 14, 8, 10}

type machine struct {
	net      int
	family   string
	botID    string
	nat      int // NAT group+1, 0 if none
	start    int // first infected day
	end      int // cleaned up before this day
	presence float64
	addr     netip.Addr
}

// Fixture is a generated population.
type Fixture struct {
	Config Config
	// Events are all distinct events, in time order, with IDs.
	Events []event.Event
	// Dup marks the events written twice in the reports.
	Dup []bool
	// machineOf maps an event index to its machine (-1 for resolvers).
	machineOf []int
}

// Generate builds the population and its events.
func Generate(c Config) *Fixture {
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	pick := func() int {
		total := 0
		for _, w := range weights {
			total += w
		}
		n := rng.IntN(total)
		for i, w := range weights {
			if n < w {
				return i
			}
			n -= w
		}
		return 0
	}
	randAddr := func(n int) netip.Addr {
		v := networks[n].base | uint32(1+rng.IntN(65534))
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	ms := make([]machine, c.Machines)
	type natGroup struct {
		net  int
		addr netip.Addr
	}
	var nats []natGroup
	for i := range ms {
		m := &ms[i]
		m.net = pick()
		m.family = NoIDFamily
		if rng.IntN(2) == 0 {
			m.family = IDFamily
			m.botID = fmt.Sprintf("%016x", rng.Uint64())
		}
		if rng.IntN(5) != 0 {
			m.start = 0
		} else {
			m.start = rng.IntN(c.Days / 3)
		}
		// Clean-up: most machines are cleaned within the period.
		m.end = m.start + 1 + int(rng.ExpFloat64()*float64(c.Days)/2)
		m.presence = 0.6 + 0.4*rng.Float64()
		if rng.Float64() < c.NATRate {
			// Join a NAT group of this network, or open one.
			if len(nats) > 0 && rng.IntN(3) != 0 {
				g := rng.IntN(len(nats))
				m.nat = g + 1
				m.net = nats[g].net
			} else {
				nats = append(nats, natGroup{m.net, randAddr(m.net)})
				m.nat = len(nats)
			}
		}
		m.addr = randAddr(m.net)
	}
	resolvers := make([]netip.Addr, c.Resolvers)
	resolverNet := make([]network, c.Resolvers)
	for i := range resolvers {
		resolvers[i] = netip.AddrFrom4([4]byte{8, 8, byte(i / 200), byte(1 + i%200)})
		resolverNet[i] = network{country: "US", asn: 15169, org: "GOOGLE"}
	}
	// Two resolvers sit on addresses that are also NAT gateways of bots
	// (home routers): DNS rows never make them infected, but their direct
	// rows do. Their geolocation is the gateway's, as enrichment by
	// address gives.
	for i := range min(2, len(nats), len(resolvers)) {
		resolvers[i], resolverNet[i] = nats[i].addr, networks[nats[i].net]
	}
	f := &Fixture{Config: c}
	seq := 0
	emit := func(e event.Event, mi int) {
		seq++
		e.ID = fmt.Sprintf("fx-%08d", seq)
		f.Events = append(f.Events, e)
		f.Dup = append(f.Dup, rng.Float64() < c.DuplicateRate)
		f.machineOf = append(f.machineOf, mi)
	}
	protos := []string{event.ProtoHTTP, event.ProtoHTTP, event.ProtoHTTP, event.ProtoTCP, event.ProtoUDP}
	for d := range c.Days {
		day := c.Start.AddDate(0, 0, d)
		// NAT gateways churn with their network too.
		for g := range nats {
			if rng.Float64() < networks[nats[g].net].churn {
				nats[g].addr = randAddr(nats[g].net)
			}
		}
		var today []event.Event
		var owners []int
		for i := range ms {
			m := &ms[i]
			if d < m.start || d >= m.end {
				continue
			}
			if d > m.start && rng.Float64() < networks[m.net].churn {
				m.addr = randAddr(m.net)
			}
			if rng.Float64() >= m.presence {
				continue // switched off today
			}
			addr := m.addr
			if m.nat > 0 {
				addr = nats[m.nat-1].addr
			}
			n := networks[m.net]
			for range 1 + rng.IntN(3) {
				ts := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))).Truncate(time.Second))
				e := event.Event{Timestamp: ts, Protocol: protos[rng.IntN(len(protos))], SrcIP: addr, SrcPort: uint16(1024 + rng.IntN(60000)),
					SrcASN: n.asn, SrcOrg: n.org, SrcGeo: n.country, DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80,
					Case: c.Case, Family: m.family, BotID: m.botID}
				if e.Protocol == event.ProtoHTTP {
					e.HTTPURL, e.HTTPHost, e.HTTPAgent = "/login.php", "c2.example", "Mozilla/4.0"
				} else {
					e.DstPort = 443
				}
				today = append(today, e)
				owners = append(owners, i)
			}
		}
		for i, r := range resolvers {
			if rng.IntN(4) == 0 {
				continue
			}
			ts := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))).Truncate(time.Second))
			fam := IDFamily
			if i%2 == 1 {
				fam = NoIDFamily
			}
			n := resolverNet[i]
			today = append(today, event.Event{Timestamp: ts, Protocol: event.ProtoDNS, SrcIP: r, SrcPort: 53, SrcASN: n.asn, SrcOrg: n.org, SrcGeo: n.country,
				Case: c.Case, Family: fam, QName: "c2.example", QType: "A"})
			owners = append(owners, -1)
		}
		idx := make([]int, len(today))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return today[a].Timestamp.Compare(today[b].Timestamp) })
		for _, i := range idx {
			emit(today[i], owners[i])
		}
	}
	return f
}

// Window is the truth of one window.
type Window struct {
	From      time.Time      `json:"from"`
	To        time.Time      `json:"to"`
	UniqueIPs int            `json:"unique_ips"`
	Resolvers int            `json:"resolver_ips_excluded"`
	Machines  int            `json:"machines"`
	ByCountry map[string]int `json:"by_country"`
	ByFamily  map[string]int `json:"by_family"`
	ByASN     map[string]int `json:"by_asn"`
}

// Truth computes the truth of [from, to) straight from the events: the
// distinct sources of direct events, per key; the DNS-only sources not
// among them; the machines that called.
func (f *Fixture) Truth(from, to time.Time) Window {
	w := Window{From: from, To: to, ByCountry: map[string]int{}, ByFamily: map[string]int{}, ByASN: map[string]int{}}
	all := map[netip.Addr]bool{}
	res := map[netip.Addr]bool{}
	type kv struct {
		k string
		a netip.Addr
	}
	country, family, asn := map[kv]bool{}, map[kv]bool{}, map[kv]bool{}
	machines := map[int]bool{}
	for i := range f.Events {
		e := &f.Events[i]
		if e.Timestamp.Before(from) || !e.Timestamp.Before(to) {
			continue
		}
		if e.Protocol == event.ProtoDNS {
			res[e.SrcIP] = true
			continue
		}
		all[e.SrcIP] = true
		country[kv{e.SrcGeo, e.SrcIP}] = true
		family[kv{e.Family, e.SrcIP}] = true
		asn[kv{strconv.FormatUint(uint64(e.SrcASN), 10), e.SrcIP}] = true
		machines[f.machineOf[i]] = true
	}
	w.UniqueIPs, w.Machines = len(all), len(machines)
	for a := range res {
		if !all[a] {
			w.Resolvers++
		}
	}
	for k := range country {
		w.ByCountry[k.k]++
	}
	for k := range family {
		w.ByFamily[k.k]++
	}
	for k := range asn {
		w.ByASN[k.k]++
	}
	return w
}

// Shadowserver report headers (FORMATS.md).
var (
	headerSinkhole = []string{"timestamp", "protocol", "src_ip", "src_port", "src_asn", "src_geo", "src_region", "src_city", "src_hostname", "src_naics", "src_sector",
		"device_vendor", "device_type", "device_model", "severity", "dst_ip", "dst_port", "dst_asn", "dst_geo", "dst_region", "dst_city", "dst_hostname", "dst_naics",
		"dst_sector", "public_source", "infection", "family", "tag", "application", "version", "event_id", "ssl_cipher", "ssl_servername"}
	headerHTTP = append(slices.Clone(headerSinkhole), "http_url", "http_host", "http_agent", "forwarded_by", "http_referer", "machine_name")
	headerDNS  = []string{"timestamp", "protocol", "src_ip", "src_port", "src_asn", "src_geo", "src_region", "src_city", "src_hostname", "src_naics", "src_sector",
		"device_vendor", "device_type", "device_model", "severity", "infection", "family", "tag", "query_type", "query", "count"}
)

// Report types.
const (
	ReportHTTP = "event4_sinkhole_http"
	ReportTCP  = "event4_sinkhole"
	ReportDNS  = "event4_sinkhole_dns"
)

// BotIDColumn is the report column that carries the bot identifier of
// IDFamily in the HTTP report (Shadowserver's machine_name).
const BotIDColumn = "machine_name"

func row(header []string, e *event.Event) []string {
	v := map[string]string{
		"timestamp": e.Timestamp.UTC().Format(time.DateTime), "src_ip": e.SrcIP.String(), "src_port": strconv.Itoa(int(e.SrcPort)),
		"src_asn": strconv.FormatUint(uint64(e.SrcASN), 10), "src_geo": e.SrcGeo, "severity": "high", "public_source": "takedown-fixture",
		"infection": e.Family, "family": e.Family, "tag": e.Case, "event_id": e.ID,
	}
	switch e.Protocol {
	case event.ProtoDNS:
		v["protocol"], v["query_type"], v["query"], v["count"] = "udp", e.QType, e.QName, "1"
	case event.ProtoHTTP:
		v["protocol"], v["http_url"], v["http_host"], v["http_agent"], v["machine_name"] = "tcp", e.HTTPURL, e.HTTPHost, e.HTTPAgent, e.BotID
		v["dst_ip"], v["dst_port"] = e.DstIP.String(), strconv.Itoa(int(e.DstPort))
	default:
		v["protocol"] = e.Protocol
		v["dst_ip"], v["dst_port"] = e.DstIP.String(), strconv.Itoa(int(e.DstPort))
	}
	out := make([]string, len(header))
	for i, h := range header {
		out[i] = v[h]
	}
	return out
}

// WriteReports writes the events as daily Shadowserver reports in dir
// (YYYY-MM-DD-<report>-takedown.csv, only on days with data) and returns
// the files written. Events of the TCP and UDP sinkholes go to
// event4_sinkhole, HTTP to event4_sinkhole_http, DNS to
// event4_sinkhole_dns; duplicate rows are written twice.
func (f *Fixture) WriteReports(dir string) ([]string, error) {
	type key struct {
		day    string
		report string
	}
	writers := map[key]*csv.Writer{}
	var files []*os.File
	var names []string
	defer func() {
		for _, fh := range files {
			fh.Close()
		}
	}()
	for i := range f.Events {
		e := &f.Events[i]
		k := key{e.Timestamp.UTC().Format(time.DateOnly), ReportTCP}
		header := headerSinkhole
		switch e.Protocol {
		case event.ProtoDNS:
			k.report, header = ReportDNS, headerDNS
		case event.ProtoHTTP:
			k.report, header = ReportHTTP, headerHTTP
		}
		w := writers[k]
		if w == nil {
			name := filepath.Join(dir, k.day+"-"+k.report+"-takedown.csv")
			fh, err := os.Create(name)
			if err != nil {
				return nil, err
			}
			files, names = append(files, fh), append(names, name)
			w = csv.NewWriter(fh)
			writers[k] = w
			if err := w.Write(header); err != nil {
				return nil, err
			}
		}
		r := row(header, e)
		if err := w.Write(r); err != nil {
			return nil, err
		}
		if f.Dup[i] {
			if err := w.Write(r); err != nil {
				return nil, err
			}
		}
	}
	for _, w := range writers {
		w.Flush()
		if err := w.Error(); err != nil {
			return nil, err
		}
	}
	for _, fh := range files {
		if err := fh.Close(); err != nil {
			return nil, err
		}
	}
	files = nil
	slices.Sort(names)
	return names, nil
}

// WriteTruth writes windows as indented JSON to path.
func WriteTruth(path string, windows []Window) error {
	b, err := json.MarshalIndent(windows, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
