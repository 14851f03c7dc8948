package simulate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/takedown/takedown/internal/proxyproto"
)

// Targets are the sinkhole addresses live beacons go to, and their pace.
// Every address must be a loopback address literal (127.0.0.0/8 or ::1) or
// "localhost": the simulator sends nothing anywhere else.
type Targets struct {
	HTTP  string // host:port of the HTTP sinkhole; empty: no HTTP beacons
	HTTPS string // host:port of the HTTPS sinkhole; empty: no HTTPS beacons
	DNS   string // host:port of the DNS sinkhole (UDP); empty: no DNS queries

	// Rate is the number of beacons per second, all kinds together; zero
	// means as fast as the sinkholes take them.
	Rate float64
	// Concurrency is the number of beacons in flight (default 64).
	Concurrency int
	// Beacons stops the run after this many beacons; zero means until the
	// context ends.
	Beacons int64
	// DNSShare is the fraction of beacons that are DNS queries from the
	// resolvers, when DNS is set (default 0.1). The rest are HTTP and HTTPS
	// in the population's HTTPS share.
	DNSShare float64
	// Timeout bounds one beacon (default 5s).
	Timeout time.Duration
}

// LiveReport is what a live run sent.
type LiveReport struct {
	Day    time.Time // the population day the beacons were drawn from
	HTTP   int64     // HTTP beacons answered by the sinkhole
	HTTPS  int64     // HTTPS beacons answered
	DNS    int64     // DNS queries sent
	Failed int64     // beacons that failed (connection refused, timeout)
	Err    error     // the first failure, if any
	// Errors counts failures by kind: "timeout", "refused", "reset",
	// "ports" (no local port left), "other".
	Errors   map[string]int64
	Duration time.Duration
	// UniqueIPs are the distinct simulated source addresses of the
	// answered HTTP and HTTPS beacons, per country.
	UniqueIPs map[string]int
}

// Beacons is the number of beacons sent successfully.
func (r *LiveReport) Beacons() int64 { return r.HTTP + r.HTTPS + r.DNS }

// CheckLoopback returns an error unless addr is host:port with a loopback
// address literal or "localhost" as host. Names are not resolved: a name
// that could lead anywhere else is refused.
func CheckLoopback(flag, addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s %q: want host:port: %w", flag, addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%s %q: the simulator only sends to loopback address literals (127.0.0.0/8, ::1, localhost)", flag, addr)
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("%s %q: %s is not a loopback address; the simulator never sends traffic off this machine", flag, addr, ip)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ip.String(), port))
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s %q: bad port", flag, addr)
	}
	return ap, nil
}

// liveTargets are checked Targets.
type liveTargets struct {
	http, https, dns netip.AddrPort
}

func (t *Targets) check() (liveTargets, error) {
	var lt liveTargets
	var errs []error
	for _, f := range []struct {
		flag, addr string
		dst        *netip.AddrPort
	}{{"--http", t.HTTP, &lt.http}, {"--https", t.HTTPS, &lt.https}, {"--dns", t.DNS, &lt.dns}} {
		if f.addr == "" {
			continue
		}
		ap, err := CheckLoopback(f.flag, f.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*f.dst = ap
	}
	if err := errors.Join(errs...); err != nil {
		return lt, fmt.Errorf("simulate: %w", err)
	}
	if !lt.http.IsValid() && !lt.https.IsValid() && !lt.dns.IsValid() {
		return lt, errors.New("simulate: no target: give --http, --https or --dns")
	}
	if t.Rate < 0 || math.IsNaN(t.Rate) || t.DNSShare < 0 || t.DNSShare > 1 {
		return lt, errors.New("simulate: rate must be ≥ 0 and the DNS share a fraction")
	}
	return lt, nil
}

// snapshot is the population on the live day: who is infected, from which
// address.
type snapshot struct {
	day   time.Time
	alive []int32  // host indexes
	addr  []uint32 // per holder
	res   []int32  // resolvers with an infected host
	// With a DGA: the day's generated names and, per name, the request
	// line and headers of the family's beacon.
	gen         []string
	genPrefixes [][]byte
}

// liveDay is the population day of now: the days since Start, kept within
// the history and the day after it (a history in the past, such as 2011,
// beacons with its last state).
func (s *Sim) liveDay(now time.Time) int {
	d := int(now.Sub(s.start) / (24 * time.Hour))
	return min(max(d, 0), s.opts.Days)
}

func (s *Sim) snapshot(d int) *snapshot {
	st := s.newStepper()
	for range d {
		st.advance()
	}
	sn := &snapshot{day: s.start.AddDate(0, 0, d), addr: st.addr}
	if d < len(s.gen) {
		sn.gen = s.gen[d]
		for _, n := range sn.gen {
			sn.genPrefixes = append(sn.genPrefixes, beaconPrefix(DGABeaconPath, n))
		}
	}
	active := make([]bool, len(s.resolvers))
	for i := range s.hosts {
		if s.alive(i, d) {
			sn.alive = append(sn.alive, int32(i))
			active[s.hosts[i].resolver] = true
		}
	}
	for r, on := range active {
		if on {
			sn.res = append(sn.res, int32(r))
		}
	}
	return sn
}

// RunLive sends beacons of the hosts infected today to the sinkholes over
// loopback until ctx ends or Targets.Beacons have been sent: HTTP POSTs of
// /login.php with the bot's 96-byte body, one connection each with
// "Connection: close" (a DGA family's hosts: /gate.php on one of the live
// day's generated names); HTTPS the same inside TLS with the SNI of the
// bot's seized name; DNS queries for seized names from the hosts' resolvers.
// Each starts with a PROXY v2 header carrying the simulated source (the
// sinkholes must trust loopback for PROXY headers). Beacons are spaced by
// exponential (Poisson) gaps at Targets.Rate, from hosts drawn uniformly.
func (s *Sim) RunLive(ctx context.Context, t Targets) (*LiveReport, error) {
	lt, err := t.check()
	if err != nil {
		return nil, err
	}
	conc := t.Concurrency
	if conc <= 0 {
		conc = 64
	}
	if t.DNSShare == 0 {
		t.DNSShare = 0.1
	}
	if t.Timeout <= 0 {
		t.Timeout = 5 * time.Second
	}
	day := s.liveDay(s.now())
	sn := s.snapshot(day)
	if len(sn.alive) == 0 {
		return nil, fmt.Errorf("simulate: no host is infected on %s", sn.day.Format(time.DateOnly))
	}
	r := &live{s: s, t: t, lt: lt}
	r.sn.Store(sn)
	r.prefixes = make([][]byte, len(s.opts.Domains))
	for i, d := range s.opts.Domains {
		r.prefixes[i] = beaconPrefix(BeaconPath, d)
	}
	s.log.Info("live beacons starting", "day", sn.day.Format(time.DateOnly), "infected", len(sn.alive),
		"http", t.HTTP, "https", t.HTTPS, "dns", t.DNS, "rate", t.Rate, "concurrency", conc)
	start := time.Now()
	var wg sync.WaitGroup
	// At midnight (UTC) the beacons move on to the next day's population:
	// clean-up and churn go on while the run lasts.
	dayCtx, stopDays := context.WithCancel(ctx)
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-dayCtx.Done():
				return
			case <-tick.C:
			}
			if d := s.liveDay(s.now()); d != day {
				if next := s.snapshot(d); len(next.alive) > 0 {
					day = d
					r.sn.Store(next)
					s.log.Info("live beacons moved on a day", "day", next.day.Format(time.DateOnly), "infected", len(next.alive))
				}
			}
		}
	})
	workers := make([]*worker, conc)
	var wwg sync.WaitGroup
	for i := range workers {
		w := &worker{r: r, id: i, seen: map[uint32]uint16{}, errs: map[string]int64{}}
		w.rng = s.rng(streamLive, uint64(start.UnixNano())+uint64(i))
		workers[i] = w
		wwg.Go(func() { w.run(ctx, conc) })
	}
	wwg.Wait()
	stopDays()
	wg.Wait()
	rep := &LiveReport{Day: r.sn.Load().day, Duration: time.Since(start), UniqueIPs: map[string]int{}, Errors: map[string]int64{}}
	seen := map[uint32]uint16{}
	for _, w := range workers {
		rep.HTTP += w.nHTTP
		rep.HTTPS += w.nHTTPS
		rep.DNS += w.nDNS
		rep.Failed += w.nFail
		if rep.Err == nil {
			rep.Err = w.err
		}
		for k, n := range w.errs {
			rep.Errors[k] += n
		}
		for a, c := range w.seen {
			seen[a] = c
		}
		if w.udp != nil {
			w.udp.Close()
		}
	}
	for _, c := range seen {
		rep.UniqueIPs[s.countries[c]]++
	}
	s.log.Info("live beacons stopped", "http", rep.HTTP, "https", rep.HTTPS, "dns", rep.DNS, "failed", rep.Failed,
		"duration", rep.Duration.Round(time.Millisecond))
	return rep, nil
}

// live is one RunLive's shared, read-only state and its beacon budget.
type live struct {
	s        *Sim
	t        Targets
	lt       liveTargets
	sn       atomic.Pointer[snapshot] // swapped at midnight
	prefixes [][]byte                 // per domain: request line and headers
	sent     atomic.Int64
}

// worker makes one beacon at a time.
type worker struct {
	r                          *live
	id                         int
	rng                        *rand.Rand
	buf, rbuf                  []byte
	udp                        *net.UDPConn
	seen                       map[uint32]uint16 // answered sources → country
	nHTTP, nHTTPS, nDNS, nFail int64
	err                        error // the first failure
	errs                       map[string]int64
}

func (w *worker) failed(err error) {
	w.nFail++
	if w.err == nil {
		w.err = err
	}
	w.errs[errorKind(err)]++
}

func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "ports"
	}
	return "other"
}

func (w *worker) run(ctx context.Context, conc int) {
	r := w.r
	var next time.Time
	per := 0.0
	if r.t.Rate > 0 {
		per = float64(conc) / r.t.Rate // mean seconds between this worker's beacons
		next = time.Now()
	}
	w.rbuf = make([]byte, 512)
	for ctx.Err() == nil {
		if r.t.Beacons > 0 && r.sent.Add(1) > r.t.Beacons {
			return
		}
		if per > 0 {
			// Poisson arrivals: exponential gaps, so beacons are jittered
			// and the run keeps its mean rate when a beacon is slow.
			gap := time.Duration(-math.Log(1-w.rng.Float64()) * per * float64(time.Second))
			next = next.Add(gap)
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		w.beacon(ctx)
	}
}

// beacon makes one beacon of a random infected host (or resolver).
func (w *worker) beacon(ctx context.Context) {
	r := w.r
	lt := r.lt
	web := lt.http.IsValid() || lt.https.IsValid()
	if lt.dns.IsValid() && (!web || w.rng.Float64() < r.t.DNSShare) {
		if err := w.dns(); err != nil {
			w.failed(err)
		} else {
			w.nDNS++
		}
		return
	}
	https := lt.https.IsValid() && (!lt.http.IsValid() || w.rng.Float64() < r.s.opts.HTTPSShare)
	sn := r.sn.Load()
	i := sn.alive[w.rng.IntN(len(sn.alive))]
	h := &r.s.hosts[i]
	src := sn.addr[h.holder]
	var err error
	if https {
		err = w.web(ctx, sn, lt.https, i, src, 443, true)
	} else {
		err = w.web(ctx, sn, lt.http, i, src, 80, false)
	}
	if err != nil {
		if ctx.Err() == nil { // a beacon cut short by the end of the run did not fail
			w.failed(err)
		}
		return
	}
	if https {
		w.nHTTPS++
	} else {
		w.nHTTP++
	}
	w.seen[src] = h.country
}

func (w *worker) proxyHeader(dst []byte, src uint32, dport uint16, transport byte) []byte {
	sport := uint16(1024 + w.rng.IntN(64512))
	return proxyproto.AppendV2(dst, proxyproto.Header{
		Version: 2, Command: proxyproto.CmdProxy, Transport: transport,
		Src: netip.AddrPortFrom(addr4(src), sport),
		Dst: netip.AddrPortFrom(w.r.s.opts.SinkholeIP, dport),
	})
}

// web makes one HTTP or HTTPS beacon and waits for the sinkhole's answer
// and close.
func (w *worker) web(ctx context.Context, sn *snapshot, target netip.AddrPort, i int32, src uint32, dport uint16, https bool) error {
	r := w.r
	d := net.Dialer{Timeout: r.t.Timeout}
	c, err := d.DialContext(ctx, "tcp", target.String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.t.Timeout))
	h := &r.s.hosts[i]
	name, prefix := r.s.opts.Domains[h.domain], r.prefixes[h.domain]
	if h.dga && len(sn.gen) > 0 {
		g := int(h.gen) % len(sn.gen)
		name, prefix = sn.gen[g], sn.genPrefixes[g]
	}
	w.buf = w.proxyHeader(w.buf[:0], src, dport, proxyproto.TransportTCP)
	var conn io.ReadWriter = c
	if https {
		if _, err := c.Write(w.buf); err != nil {
			return err
		}
		// Bots do not check the certificate: the sinkhole's is minted for
		// the seized name by its own CA.
		tc := tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true}) //nolint:gosec // a simulated bot
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
		w.buf = w.buf[:0]
	}
	w.buf = append(w.buf, prefix...)
	w.buf = r.s.payload(w.buf, int(i))
	if _, err := conn.Write(w.buf); err != nil {
		return err
	}
	// The sinkhole answers and closes: read to the end so that it closes
	// first (its side keeps the TIME_WAIT, not the simulator's ports).
	n, err := io.ReadFull(conn, w.rbuf[:12])
	if n < 12 || string(w.rbuf[:5]) != "HTTP/" {
		if err == nil {
			err = errors.New("not an HTTP response")
		}
		return fmt.Errorf("simulate: beacon answer: %w", err)
	}
	for {
		if _, err := conn.Read(w.rbuf); err != nil {
			return nil
		}
	}
}

// dns sends one query for a seized name from a resolver, over this
// worker's UDP socket; answers are read and dropped by a reader goroutine.
func (w *worker) dns() error {
	r := w.r
	if w.udp == nil {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.lt.dns))
		if err != nil {
			return err
		}
		w.udp = c
		go drain(c)
	}
	sn := r.sn.Load()
	rs := r.s.resolvers[sn.res[w.rng.IntN(len(sn.res))]]
	dom := r.s.opts.Domains[w.rng.IntN(len(r.s.opts.Domains))]
	w.buf = w.proxyHeader(w.buf[:0], rs.addr, 53, proxyproto.TransportUDP)
	w.buf = appendQuery(w.buf, uint16(w.rng.Uint32()), dom)
	_, err := w.udp.Write(w.buf)
	return err
}

func drain(c *net.UDPConn) {
	b := make([]byte, 4096)
	for {
		if _, err := c.Read(b); err != nil {
			return
		}
	}
}

// appendQuery appends a DNS query (RFC 1035) for name, type A, class IN,
// recursion not desired: what a recursive resolver sends an authoritative
// server.
func appendQuery(dst []byte, id uint16, name string) []byte {
	dst = append(dst, byte(id>>8), byte(id), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	for l := range strings.SplitSeq(name, ".") {
		dst = append(dst, byte(len(l)))
		dst = append(dst, l...)
	}
	return append(dst, 0, 0, 1, 0, 1)
}

// beaconPrefix is the request line and headers of a beacon POSTed to path
// on host.
func beaconPrefix(path, host string) []byte {
	return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		path, host, UserAgent, PayloadSize)
}
