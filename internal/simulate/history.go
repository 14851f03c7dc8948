package simulate

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
)

const dayNs = int64(24 * time.Hour)

// UserAgent is the User-Agent of simulated beacons (Rustock's HTTP client
// presented itself as an Internet Explorer of the time).
const UserAgent = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)"

// BeaconPath is the URL path bots post to.
const BeaconPath = "/login.php"

// Beacon kinds.
const (
	kindHTTP uint8 = iota
	kindHTTPS
	kindDNS
)

// beacon is one simulated observation before it becomes an event.
type beacon struct {
	t      int64 // ns since the start of the day
	src    uint32
	sport  uint16
	kind   uint8
	domain uint16 // index into Domains, or into the day's generated names if gen
	gen    bool
	who    int32  // host index, or resolver index for kindDNS
	key    uint64 // time order: milliseconds, then order of generation
}

// stepper walks the population's addresses day by day from day 0. Churn is
// sequential (an address freed on one day may be taken on a later one), so
// every reader of any day starts from day 0.
type stepper struct {
	s       *Sim
	day     int
	addr    []uint32 // per holder, at the end of the day
	prev    []uint32 // per holder, before today's churn
	churnAt []int64  // per holder: ns into the day at which addr replaced prev; 0 for none
	used    map[uint32]int32
}

func (s *Sim) newStepper() *stepper {
	st := &stepper{s: s, addr: make([]uint32, len(s.holders)), prev: make([]uint32, len(s.holders)),
		churnAt: make([]int64, len(s.holders)), used: make(map[uint32]int32, len(s.holders)+len(s.resolvers))}
	for i, h := range s.holders {
		st.addr[i], st.prev[i] = h.addr, h.addr
		st.used[h.addr] = int32(i)
	}
	for _, r := range s.resolvers {
		st.used[r.addr] = -1
	}
	return st
}

// advance moves to the next day and applies its churn: each holder, with
// probability Churn, gets a new address in its network at a random time of
// the day (the old one is seen before, the new one after).
func (st *stepper) advance() {
	st.day++
	s := st.s
	rng := s.rng(streamChurn, uint64(st.day))
	for i := range st.addr {
		st.prev[i] = st.addr[i]
		st.churnAt[i] = 0
		if s.opts.Churn == 0 || rng.Float64() >= s.opts.Churn {
			continue
		}
		h := s.holders[i]
		cs := churnSpan(s.ranges[h.country].spans[h.span], st.addr[i])
		at := 1 + rng.Int64N(dayNs-1)
		for range 8 { // a full small network keeps the old address
			a := cs.lo + uint32(rng.Uint64N(uint64(cs.size)))
			if _, taken := st.used[a]; taken || !plausibleHost(a) {
				continue
			}
			delete(st.used, st.addr[i])
			st.used[a] = int32(i)
			st.addr[i] = a
			st.churnAt[i] = at
			break
		}
	}
}

// alive reports whether host i beacons on day d.
func (s *Sim) alive(i int, d int) bool { return int32(d) < s.hosts[i].cleaned }

// beacons returns the day's observations in time order.
func (st *stepper) beacons(buf []beacon) []beacon {
	s := st.s
	d := st.day
	rng := s.rng(streamBeacons, uint64(d))
	buf = buf[:0]
	active := make([]bool, len(s.resolvers))
	for i := range s.hosts {
		if !s.alive(i, d) {
			continue
		}
		h := &s.hosts[i]
		active[h.resolver] = true
		for range s.opts.BeaconsPerDay {
			t := rng.Int64N(dayNs) / int64(time.Millisecond) * int64(time.Millisecond)
			k := kindHTTP
			if rng.Float64() < s.opts.HTTPSShare {
				k = kindHTTPS
			}
			src := st.addr[h.holder]
			if at := st.churnAt[h.holder]; at > 0 && t < at {
				src = st.prev[h.holder]
			}
			b := beacon{t: t, src: src, sport: uint16(1024 + rng.IntN(64512)), kind: k, domain: h.domain, who: int32(i),
				key: uint64(t/int64(time.Millisecond))<<32 | uint64(len(buf))}
			if g, ok := s.genName(h, d); ok {
				b.domain, b.gen = g, true
			}
			buf = append(buf, b)
		}
	}
	for r, on := range active {
		if !on {
			continue
		}
		for range s.opts.DNSPerResolverDay {
			t := rng.Int64N(dayNs) / int64(time.Millisecond) * int64(time.Millisecond)
			buf = append(buf, beacon{t: t, src: s.resolvers[r].addr, sport: uint16(1024 + rng.IntN(64512)),
				kind: kindDNS, domain: uint16(rng.IntN(len(s.opts.Domains))), who: int32(r),
				key: uint64(t/int64(time.Millisecond))<<32 | uint64(len(buf))})
		}
	}
	slices.SortFunc(buf, func(a, b beacon) int { return cmp.Compare(a.key, b.key) })
	return buf
}

// eachDay calls fn with every history day in [first, last] (day indexes)
// and its observations, stepping the population from day 0.
func (s *Sim) eachDay(first, last int, fn func(day int, bs []beacon, st *stepper) error) error {
	st := s.newStepper()
	var buf []beacon
	for d := 0; d <= last; d++ {
		if d > 0 {
			st.advance()
		}
		if d < first {
			continue
		}
		buf = st.beacons(buf)
		if err := fn(d, buf, st); err != nil {
			return err
		}
	}
	return nil
}

// EachEvent calls fn with every history event whose timestamp is in
// [from, to), in time order. fn must not keep ev. Events are the same on
// every call: IDs are "sim-<population>-<YYYYMMDD>-<n>", so importing the
// same history twice stores it once.
func (s *Sim) EachEvent(from, to time.Time, fn func(ev *event.Event) error) error {
	first, last := s.dayRange(from, to)
	if first > last {
		return nil
	}
	ev := new(event.Event)
	var in classify.Input
	var idBuf []byte
	pay := make([]byte, 0, PayloadSize)
	return s.eachDay(first, last, func(d int, bs []beacon, _ *stepper) error {
		day := s.start.AddDate(0, 0, d)
		date := day.Format("20060102")
		for n, b := range bs {
			ts := day.Add(time.Duration(b.t))
			if ts.Before(from) || !ts.Before(to) {
				continue
			}
			idBuf = fmt.Appendf(idBuf[:0], "sim-%s-%s-%06d", s.tag, date, n)
			s.fillEvent(ev, &in, b, ts, string(idBuf), pay)
			if err := fn(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// dayRange is the history days that [from, to) touches.
func (s *Sim) dayRange(from, to time.Time) (int, int) {
	first := int(max(from.Sub(s.start), 0) / (24 * time.Hour))
	last := s.opts.Days - 1
	if e := to.Sub(s.start); e < time.Duration(s.opts.Days)*24*time.Hour {
		last = int((e - 1) / (24 * time.Hour))
		if e <= 0 {
			last = -1
		}
	}
	return first, last
}

func (s *Sim) fillEvent(ev *event.Event, in *classify.Input, b beacon, ts time.Time, id string, pay []byte) {
	var dom string
	path, fam := BeaconPath, s.opts.Family
	if b.gen {
		dom = s.gen[int(ts.Sub(s.start)/(24*time.Hour))][b.domain]
		path, fam = DGABeaconPath, s.opts.DGA.Family
	} else {
		dom = s.opts.Domains[b.domain]
	}
	*ev = event.Event{
		ID: id, Timestamp: ts, Sensor: s.opts.Sensor, SrcIP: addr4(b.src), SrcPort: b.sport,
		DstIP: s.opts.SinkholeIP, Case: s.opts.Case,
	}
	switch b.kind {
	case kindDNS:
		r := s.resolvers[b.who]
		ev.Protocol, ev.Transport, ev.DstPort = event.ProtoDNS, "udp", 53
		ev.SrcGeo = s.countries[r.country]
		ev.QName, ev.QType, ev.RCode, ev.Matched = dom, "A", "NOERROR", dom
		ev.Family = s.opts.Family
		return
	case kindHTTPS:
		ev.Protocol, ev.DstPort = event.ProtoHTTPS, 443
		ev.SSLServerName = dom
	default:
		ev.Protocol, ev.DstPort = event.ProtoHTTP, 80
	}
	h := &s.hosts[b.who]
	ev.Transport = "tcp"
	ev.SrcGeo = s.countries[h.country]
	ev.BotID = s.BotID(int(b.who))
	ev.HTTPMethod, ev.HTTPURL, ev.HTTPHost, ev.HTTPAgent = "POST", path, dom, UserAgent
	ev.ContentLength = PayloadSize
	body := s.payload(pay[:0], int(b.who))
	sum := sha256.Sum256(body)
	ev.PayloadSize = PayloadSize
	ev.PayloadSHA256 = hex.EncodeToString(sum[:])
	*in = classify.Input{Protocol: ev.Protocol, DstPort: ev.DstPort, Host: dom, Method: "POST", URI: path,
		UserAgent: UserAgent, BodyLen: PayloadSize, Body: body, IndicatorFamily: fam}
	if ev.Protocol == event.ProtoHTTPS {
		in.SNI = dom
	}
	res := s.rules.Match(in)
	ev.Family, ev.Tag, ev.Confidence = res.Family, res.Tag, res.Confidence
}

// WriteHistory writes the history events in [from, to) to w as JSON lines
// (the format of `takedown events import --format jsonl`).
func (s *Sim) WriteHistory(w io.Writer, from, to time.Time) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var line []byte
	err := s.EachEvent(from, to, func(ev *event.Event) error {
		var err error
		if line, err = event.AppendJSONL(line[:0], ev); err != nil {
			return err
		}
		line = append(line, '\n')
		_, err = bw.Write(line)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("simulate: write history: %w", err)
	}
	return nil
}
