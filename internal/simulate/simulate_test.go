package simulate

import (
	"bufio"
	"bytes"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	geodata "github.com/takedown/takedown/data/geo"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/geo"
)

var testDomains = []string{"aactsxgiv.example", "aeebkbghps.example", "afijykyn.example"}

// testOptions is a small population: fast, and big enough for the bounds.
func testOptions(tb testing.TB) Options {
	tb.Helper()
	o := DefaultOptions(time.Date(2011, 9, 14, 0, 0, 0, 0, time.UTC))
	o.Seed = 42
	o.Bots = 1500
	o.Days = 21
	o.Start = time.Date(2011, 3, 31, 0, 0, 0, 0, time.UTC)
	o.Domains = testDomains
	o.Case = "demo-b107"
	return o
}

func newSim(tb testing.TB, o Options) *Sim {
	tb.Helper()
	s, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func history(tb testing.TB, s *Sim) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := s.WriteHistory(&b, s.Start(), s.End()); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func truthJSON(tb testing.TB, s *Sim) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := s.WriteTruth(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	o := testOptions(t)
	o.Days = 4
	a, b := newSim(t, o), newSim(t, o)
	ha, hb := history(t, a), history(t, b)
	if !bytes.Equal(ha, hb) {
		t.Fatal("the same options gave two different histories")
	}
	if !bytes.Equal(truthJSON(t, a), truthJSON(t, b)) {
		t.Fatal("the same options gave two different truths")
	}
	o.Seed++
	c := newSim(t, o)
	if bytes.Equal(ha, history(t, c)) {
		t.Fatal("another seed gave the same history")
	}
	// A window of the history is the same events as in the whole.
	from, to := a.Start().Add(36*time.Hour), a.Start().Add(60*time.Hour)
	var part bytes.Buffer
	if err := a.WriteHistory(&part, from, to); err != nil {
		t.Fatal(err)
	}
	if part.Len() == 0 || !bytes.Contains(ha, part.Bytes()) {
		t.Fatal("a partial history is not a contiguous part of the whole")
	}
	for line := range strings.Lines(part.String()) {
		ev, err := event.UnmarshalJSONL([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Timestamp.Before(from) || !ev.Timestamp.Before(to) {
			t.Fatalf("event at %s outside [%s, %s)", ev.Timestamp, from, to)
		}
	}
}

func TestEventsAreWellFormed(t *testing.T) {
	o := testOptions(t)
	o.Days = 2
	s := newSim(t, o)
	ids := map[string]bool{}
	protos := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(history(t, s)))
	var last time.Time
	for sc.Scan() {
		ev, err := event.UnmarshalJSONL(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if ids[ev.ID] {
			t.Fatalf("duplicate id %s", ev.ID)
		}
		ids[ev.ID] = true
		if ev.Timestamp.Before(last) {
			t.Fatalf("events out of time order at %s", ev.ID)
		}
		last = ev.Timestamp
		protos[ev.Protocol]++
		if ev.Case != "demo-b107" || ev.Family != "rustock" {
			t.Fatalf("%s: case %q family %q", ev.ID, ev.Case, ev.Family)
		}
		switch ev.Protocol {
		case event.ProtoHTTP, event.ProtoHTTPS:
			if ev.HTTPMethod != "POST" || ev.HTTPURL != "/login.php" || ev.PayloadSize != 96 || len(ev.PayloadSHA256) != 64 || ev.BotID == "" {
				t.Fatalf("%s: not a Rustock beacon: %+v", ev.ID, ev)
			}
			if ev.Tag != "rustock-http-beacon" {
				t.Fatalf("%s: the default rules did not classify it: tag %q", ev.ID, ev.Tag)
			}
			if ev.Protocol == event.ProtoHTTPS && ev.SSLServerName != ev.HTTPHost {
				t.Fatalf("%s: SNI %q, host %q", ev.ID, ev.SSLServerName, ev.HTTPHost)
			}
		case event.ProtoDNS:
			if ev.QName == "" || ev.QType != "A" {
				t.Fatalf("%s: query %q %q", ev.ID, ev.QName, ev.QType)
			}
		}
	}
	for _, p := range []string{event.ProtoHTTP, event.ProtoHTTPS, event.ProtoDNS} {
		if protos[p] == 0 {
			t.Errorf("no %s events in %v", p, protos)
		}
	}
}

func TestCountryShares(t *testing.T) {
	o := testOptions(t)
	o.Bots = 20000
	o.Days = 1
	s := newSim(t, o)
	tr, err := s.Truth()
	if err != nil {
		t.Fatal(err)
	}
	day := tr.Daily[0]
	if day.HostsAlive != o.Bots {
		t.Fatalf("day 0: %d hosts, want %d", day.HostsAlive, o.Bots)
	}
	w := DefaultCountries()
	var sum float64
	for _, v := range w {
		sum += v
	}
	for cc, v := range w {
		p := v / sum
		want := p * float64(o.Bots)
		sd := math.Sqrt(float64(o.Bots) * p * (1 - p))
		got := float64(day.Countries[cc].HostsAlive)
		if math.Abs(got-want) > 5*sd {
			t.Errorf("%s: %v hosts, want %.0f ± %.0f", cc, got, want, 5*sd)
		}
	}
	// India, Russia and the United States among the largest; India first.
	top := day.Countries["IN"].HostsAlive
	for cc, c := range day.Countries {
		if c.HostsAlive > top {
			t.Errorf("%s (%d) has more hosts than India (%d)", cc, c.HostsAlive, top)
		}
	}

	// Every address is in its country's real ranges: the bundled database,
	// read through the enrichment package, agrees on each event.
	db, err := geo.Open(geo.Options{Country: geo.Source{Data: geodata.Country()}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = s.EachEvent(s.Start(), s.End(), func(ev *event.Event) error {
		n++
		if got := db.Lookup(ev.SrcIP).Country; got != ev.SrcGeo {
			t.Fatalf("%s: src %s is in %q, the event says %q", ev.ID, ev.SrcIP, got, ev.SrcGeo)
		}
		if !ev.SrcIP.Is4() || ev.SrcIP.IsPrivate() || ev.SrcIP.IsLoopback() {
			t.Fatalf("%s: src %s is not a public IPv4 address", ev.ID, ev.SrcIP)
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
}

// dayIPs are the distinct addresses of direct connections on each day of a
// history, per country, read from the JSON lines: the stats rules applied
// independently of the simulator's own bookkeeping.
type dayIPs []map[netip.Addr]string

func readHistory(tb testing.TB, s *Sim, b []byte) (direct, resolvers dayIPs) {
	tb.Helper()
	direct, resolvers = make(dayIPs, s.Days()), make(dayIPs, s.Days())
	for i := range direct {
		direct[i], resolvers[i] = map[netip.Addr]string{}, map[netip.Addr]string{}
	}
	db, err := geo.Open(geo.Options{Country: geo.Source{Data: geodata.Country()}})
	if err != nil {
		tb.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		ev, err := event.UnmarshalJSONL(line)
		if err != nil {
			tb.Fatal(err)
		}
		d := int(ev.Timestamp.Sub(s.Start()) / (24 * time.Hour))
		cc := db.Lookup(ev.SrcIP).Country
		if ev.Resolver() {
			resolvers[d][ev.SrcIP] = cc
		} else {
			direct[d][ev.SrcIP] = cc
		}
	}
	return direct, resolvers
}

func countByCountry(sets ...map[netip.Addr]string) (int, map[string]int) {
	u := map[netip.Addr]string{}
	for _, s := range sets {
		for a, c := range s {
			u[a] = c
		}
	}
	by := map[string]int{}
	for _, c := range u {
		by[c]++
	}
	return len(u), by
}

func TestTruthMatchesHistory(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"defaults", func(*Options) {}},
		{"heavy churn and NAT", func(o *Options) { o.Churn, o.NAT = 0.5, 0.6 }},
		{"constant cleanup", func(o *Options) { o.Cleanup = 0.05; o.Seed = 7 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.Days = 9
			tc.edit(&o)
			s := newSim(t, o)
			tr, err := s.Truth()
			if err != nil {
				t.Fatal(err)
			}
			direct, res := readHistory(t, s, history(t, s))
			for d := range s.Days() {
				n, by := countByCountry(direct[d])
				p := tr.Daily[d]
				if p.UniqueIPs != n || p.ResolverIPs != len(res[d]) {
					t.Fatalf("day %d: truth %d IPs, %d resolvers; history %d, %d", d, p.UniqueIPs, p.ResolverIPs, n, len(res[d]))
				}
				for cc, c := range by {
					if p.Countries[cc].UniqueIPs != c {
						t.Fatalf("day %d %s: truth %d, history %d", d, cc, p.Countries[cc].UniqueIPs, c)
					}
				}
				n7, by7 := countByCountry(direct[max(0, d-6) : d+1]...)
				w := tr.Weekly[d]
				if w.UniqueIPs != n7 || !w.To.Equal(p.To) {
					t.Fatalf("window to day %d: truth %d, history %d", d, w.UniqueIPs, n7)
				}
				for cc, c := range by7 {
					if w.Countries[cc].UniqueIPs != c {
						t.Fatalf("window to day %d %s: truth %d, history %d", d, cc, w.Countries[cc].UniqueIPs, c)
					}
				}
				for a := range res[d] {
					if _, ok := direct[d][a]; ok {
						t.Fatalf("day %d: resolver %s also beacons", d, a)
					}
				}
			}
			want := 100 * (1 - float64(tr.Last.UniqueIPs)/float64(tr.Baseline.UniqueIPs))
			if math.Abs(tr.ReductionPct-want) > 0.05 {
				t.Fatalf("reduction %v, want %v", tr.ReductionPct, want)
			}
		})
	}
}

func TestChurnNATCleanup(t *testing.T) {
	base := testOptions(t)
	base.Days = 10
	base.Churn, base.NAT, base.Cleanup = 0, 0, 0
	truth := func(edit func(*Options)) *Truth {
		t.Helper()
		o := base
		edit(&o)
		tr, err := newSim(t, o).Truth()
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	t.Run("none", func(t *testing.T) {
		tr := truth(func(*Options) {})
		for _, p := range tr.Daily {
			if p.HostsAlive != base.Bots || p.UniqueIPs != base.Bots {
				t.Fatalf("%s: %d hosts, %d IPs; want %d each", p.From, p.HostsAlive, p.UniqueIPs, base.Bots)
			}
		}
		if w := tr.Weekly[9]; w.UniqueIPs != base.Bots {
			t.Fatalf("week: %d IPs, want %d", w.UniqueIPs, base.Bots)
		}
	})
	t.Run("nat", func(t *testing.T) {
		tr := truth(func(o *Options) { o.NAT = 0.5 })
		// Half the hosts in groups of 2–6 (mean 4): about 0.5 + 0.5/4 of
		// the hosts' count in addresses.
		got := float64(tr.Daily[0].UniqueIPs) / float64(base.Bots)
		if got < 0.58 || got > 0.68 {
			t.Fatalf("addresses/hosts %.3f, want about 0.625", got)
		}
	})
	t.Run("churn", func(t *testing.T) {
		tr := truth(func(o *Options) { o.Churn = 0.2 })
		// A churned address is seen with its successor on the same day
		// when the host beacons on both sides of the change.
		day := float64(tr.Daily[5].UniqueIPs) / float64(base.Bots)
		if day <= 1.02 || day > 1.2 {
			t.Fatalf("day: addresses/hosts %.3f, want a little over 1", day)
		}
		// Over a week, each day adds about 20% new addresses.
		week := float64(tr.Weekly[9].UniqueIPs) / float64(base.Bots)
		if week < 2.0 || week > 2.4 {
			t.Fatalf("week: addresses/hosts %.3f, want about 1 + 6×0.2", week)
		}
		if tr.Weekly[9].HostsAlive != base.Bots {
			t.Fatalf("week: %d hosts seen, want %d", tr.Weekly[9].HostsAlive, base.Bots)
		}
	})
	t.Run("constant cleanup", func(t *testing.T) {
		tr := truth(func(o *Options) { o.Cleanup = 0.05 })
		for d, p := range tr.Daily {
			want := float64(base.Bots) * math.Pow(0.95, float64(d))
			if sd := math.Sqrt(want); math.Abs(float64(p.HostsAlive)-want) > 5*sd {
				t.Fatalf("day %d: %d hosts, want %.0f", d, p.HostsAlive, want)
			}
		}
	})
}

func TestRustockSchedule(t *testing.T) {
	o := testOptions(t)
	o.Bots = 20000
	o.Days = daySeptember + 1
	o.ResolverHosts = 1 << 20
	s := newSim(t, o)
	// Hosts alive without walking the history: the clean-up day is drawn
	// once per host.
	alive := func(d int, cc string) float64 {
		n := 0
		for i := range s.hosts {
			if s.alive(i, d) && (cc == "" || s.countries[s.hosts[i].country] == cc) {
				n++
			}
		}
		return float64(n)
	}
	for _, tc := range []struct {
		cc   string
		day  int
		want float64
	}{
		{"", dayJune, float64(rustockJune) / rustockMarch},
		{"", daySeptember, float64(rustockSeptember) / rustockMarch},
		{"US", dayJune, 1 - 0.3548},
		{"US", daySeptember, 36000.0 / 86000},
		{"IN", dayJune, 1 - 0.6930},
		{"RU", dayJune, 1 - 0.7061},
	} {
		got := alive(tc.day, tc.cc) / alive(0, tc.cc)
		if math.Abs(got-tc.want) > 0.04 {
			t.Errorf("%q day %d: survival %.3f, want %.3f", tc.cc, tc.day, got, tc.want)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no domains", func(o *Options) { o.Domains = nil }, "no seized domains"},
		{"bad domain", func(o *Options) { o.Domains = []string{"a b.example"} }, "not a host name"},
		{"churn > 1", func(o *Options) { o.Churn = 1.5 }, "churn"},
		{"negative nat", func(o *Options) { o.NAT = -0.1 }, "nat"},
		{"unknown country", func(o *Options) { o.Countries = map[string]float64{"ZZ": 1} }, "ZZ"},
		{"no weight", func(o *Options) { o.Countries = map[string]float64{"US": 0} }, "no positive weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.edit(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestParseCountries(t *testing.T) {
	got, err := ParseCountries("in=14, RU=10,US=5.4")
	if err != nil || got["IN"] != 14 || got["RU"] != 10 || got["US"] != 5.4 || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "IN", "IN=x", "USA=1", "IN=-1", "IN=NaN"} {
		if _, err := ParseCountries(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseCountries(f *testing.F) {
	f.Add("IN=14,RU=10,US=5.4")
	f.Add("us=1,,")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCountries(s)
		if err != nil {
			return
		}
		for cc, w := range m {
			if len(cc) != 2 || w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
				t.Fatalf("%q: accepted %s=%v", s, cc, w)
			}
		}
	})
}

// TestHistoryJSONL holds the history's lines to the event package's records:
// the same bytes for every event of a history.
func TestHistoryJSONL(t *testing.T) {
	o := testOptions(t)
	o.Days = 2
	o.Bots = 500
	s := newSim(t, o)
	var buf bytes.Buffer
	if err := s.WriteHistory(&buf, s.Start(), s.End()); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), []byte{'\n'})
	n := 0
	err := s.EachEvent(s.Start(), s.End(), func(ev *event.Event) error {
		want, err := event.MarshalJSONL(ev)
		if err != nil {
			return err
		}
		if n >= len(lines) || !bytes.Equal(lines[n], want) {
			t.Fatalf("history line %d:\n%s\nevent package:\n%s", n, lines[min(n, len(lines)-1)], want)
		}
		n++
		return nil
	})
	if err != nil || n == 0 || n != len(lines) {
		t.Fatal(n, len(lines), err)
	}
}

// BenchmarkHistoryDay writes one day of a 20,000-host history.
func BenchmarkHistoryDay(b *testing.B) {
	o := testOptions(b)
	o.Bots = 20000
	o.Days = 1
	s := newSim(b, o)
	var n int64
	for b.Loop() {
		var cw countWriter
		if err := s.WriteHistory(&cw, s.Start(), s.End()); err != nil {
			b.Fatal(err)
		}
		n = cw.lines
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

type countWriter struct{ lines int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

func TestDefaultCountriesAddUp(t *testing.T) {
	var sum float64
	for _, w := range DefaultCountries() {
		sum += w
	}
	if math.Abs(sum-100) > 1e-9 {
		t.Fatalf("default country weights add up to %v, want 100 (percent)", sum)
	}
}

func TestReadDomains(t *testing.T) {
	got, err := ReadDomains(strings.NewReader("# seized\nAactsxgiv.example.\n\n bbkwyjt.example # c2\n"), "names.txt")
	if err != nil || len(got) != 2 || got[0] != "aactsxgiv.example" || got[1] != "bbkwyjt.example" {
		t.Fatalf("%q %v", got, err)
	}
	_, err = ReadDomains(strings.NewReader("ok.example\nnot a name\nbad,name.example\n"), "names.txt")
	if err == nil || !strings.Contains(err.Error(), "names.txt:2:") || !strings.Contains(err.Error(), "names.txt:3:") {
		t.Fatalf("want both problems with file:line, got %v", err)
	}
	if _, err := ReadDomains(strings.NewReader("# nothing\n"), "empty.txt"); err == nil {
		t.Fatal("an empty file gave no error")
	}
}

func FuzzReadDomains(f *testing.F) {
	f.Add("a.example\n# x\nb.example.\n")
	f.Add("\xff\n")
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ReadDomains(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		for _, n := range names {
			if !validName(n) {
				t.Fatalf("%q: accepted %q", s, n)
			}
		}
	})
}
