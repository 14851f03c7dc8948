// Command load is bench/scale's data maker and load generator. It is not
// for use outside bench/.
//
//	load csv  -ips N -rows R -day YYYY-MM-DD -o FILE
//	    writes one UTC day of Shadowserver event4_sinkhole_http rows: every
//	    one of the N addresses at least once (R ≥ N), the rest drawn from
//	    them, timestamps spread evenly over the day.
//	load send -ips N -events E -rate R -udp A -http A -https A -api URL -token T
//	    sends E events at a fixed R events/s to the sinkhole's listeners over
//	    loopback, each with a PROXY v2 header naming the simulated source:
//	    UDP beacons (one source each; see udpMagic), HTTP and HTTPS requests over
//	    keep-alive connections (one source per connection, -per-conn
//	    requests each). Today's sources are the same N addresses shifted by
//	    a tenth, so that yesterday's and today's sets overlap but differ.
//	    With -api it also measures accept-to-visible latency: once a second
//	    it sends an HTTP beacon from a marker address seen nowhere else and
//	    polls GET /api/v1/events?cidr=MARKER/32 until it is listed.
//
// Both draw the addresses the same way, from the seed: uniformly within the
// bundled country database's IPv4 ranges of the simulator's Rustock
// countries, weighted as the simulator weights them, never a .0 or .255.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"golang.org/x/net/ipv4"

	geodata "github.com/takedown/takedown/data/geo"
	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/simulate"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load csv|send [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "csv":
		err = runCSV(os.Args[2:])
	case "send":
		err = runSend(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// span is one IPv4 network, [lo, lo+size).
type span struct{ lo, size uint32 }

// addresses draws n distinct addresses (plus extra markers after them)
// from the Rustock countries' ranges of the bundled country database.
func addresses(n int, seed uint64) ([]uint32, error) {
	r, err := maxminddb.OpenBytes(geodata.Country())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	weights := simulate.DefaultCountries()
	type rec struct {
		Flat    string `maxminddb:"country_code"`
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
	}
	spans := map[string][]span{}
	codes := map[uintptr]string{}
	for res := range r.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		if err := res.Err(); err != nil {
			return nil, err
		}
		cc, ok := codes[res.Offset()]
		if !ok {
			var v rec
			if err := res.Decode(&v); err != nil {
				return nil, err
			}
			cc = cmpOr(v.Flat, v.Country.ISOCode)
			codes[res.Offset()] = cc
		}
		p := res.Prefix()
		if weights[cc] == 0 || !p.Addr().Is4() || p.Bits() < 8 {
			continue
		}
		a := p.Addr().As4()
		spans[cc] = append(spans[cc], span{lo: uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]), size: 1 << (32 - p.Bits())})
	}
	ccs := slices.Sorted(func(yield func(string) bool) {
		for cc := range spans {
			if !yield(cc) {
				return
			}
		}
	})
	var wsum float64
	cumW := make([]float64, len(ccs))
	cum := make([][]uint64, len(ccs))
	for i, cc := range ccs {
		wsum += weights[cc]
		cumW[i] = wsum
		var t uint64
		for _, s := range spans[cc] {
			t += uint64(s.size)
			cum[i] = append(cum[i], t)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x5ca1e))
	seen := make(map[uint32]struct{}, n)
	out := make([]uint32, 0, n)
	for len(out) < n {
		c := sort.SearchFloat64s(cumW, rng.Float64()*wsum)
		c = min(c, len(ccs)-1)
		k := rng.Uint64N(cum[c][len(cum[c])-1])
		j := sort.Search(len(cum[c]), func(j int) bool { return cum[c][j] > k })
		start := uint64(0)
		if j > 0 {
			start = cum[c][j-1]
		}
		a := spans[ccs[c]][j].lo + uint32(k-start)
		if b := a & 0xff; b == 0 || b == 255 {
			continue
		}
		if _, dup := seen[a]; dup {
			continue
		}
		seen[a] = struct{}{}
		out = append(out, a)
	}
	return out, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func addr4(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

func appendAddr(dst []byte, a uint32) []byte {
	dst = strconv.AppendUint(dst, uint64(a>>24), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(a>>16&0xff), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(a>>8&0xff), 10)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, uint64(a&0xff), 10)
}

const (
	domain    = "rustock-c2.bench-scale.example"
	sinkholeA = "192.0.2.1"
)

func runCSV(args []string) error {
	fs := flag.NewFlagSet("csv", flag.ExitOnError)
	n := fs.Int("ips", 1600000, "distinct addresses of the day")
	rows := fs.Int("rows", 0, "rows (default: -ips)")
	day := fs.String("day", "", "UTC day YYYY-MM-DD")
	out := fs.String("o", "", "output file")
	seed := fs.Uint64("seed", 16, "address seed")
	fs.Parse(args)
	if *rows < *n {
		*rows = *n
	}
	d, err := time.Parse(time.DateOnly, *day)
	if err != nil {
		return fmt.Errorf("-day: %w", err)
	}
	addrs, err := addresses(*n+*n/10+4096, *seed)
	if err != nil {
		return err
	}
	addrs = addrs[:*n] // yesterday: the first n; today is shifted by n/10
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("timestamp,protocol,src_ip,src_port,dst_ip,dst_port,http_url,http_host,http_agent,infection,tag,public_source\n")
	step := float64(24*time.Hour) / float64(*rows)
	rng := rand.New(rand.NewPCG(*seed, 1))
	var b []byte
	for i := range *rows {
		a := addrs[i%*n]
		if i >= *n {
			a = addrs[rng.IntN(*n)]
		}
		ts := d.Add(time.Duration(float64(i) * step))
		b = ts.AppendFormat(b[:0], time.DateTime)
		b = append(b, ",tcp,"...)
		b = appendAddr(b, a)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(1024+i%64000), 10)
		b = append(b, ","+sinkholeA+",80,/login.php,"+domain+",\""+simulate.UserAgent+"\",rustock,spam,bench\n"...)
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// counters are what send did, by kind.
type counters struct {
	udp, http, https, failed atomic.Int64
}

func runSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	n := fs.Int("ips", 1600000, "distinct addresses of the day")
	events := fs.Int64("events", 20000000, "events to send")
	rate := fs.Float64("rate", 50000, "events per second, all kinds together")
	udpAddr := fs.String("udp", "", "UDP listener")
	httpAddr := fs.String("http", "", "HTTP listener")
	httpsAddr := fs.String("https", "", "HTTPS listener")
	httpShare := fs.Float64("http-share", 0.15, "share of events sent as HTTP requests")
	httpsShare := fs.Float64("https-share", 0.05, "share of events sent as HTTPS requests")
	perConn := fs.Int("per-conn", 20, "requests per keep-alive connection (one source each)")
	webWorkers := fs.Int("web-workers", 64, "HTTP and HTTPS connections at once")
	api := fs.String("api", "", "base URL of the dashboard (http://127.0.0.1:P) for the visibility probe")
	token := fs.String("token", "", "API bearer token")
	seed := fs.Uint64("seed", 16, "address seed")
	grace := fs.Float64("grace", 1.25, "stop sending at this multiple of events/rate: the load is offered at a fixed rate, and what the server did not take by then is reported as unsent")
	fs.Parse(args)
	for _, a := range []string{*udpAddr, *httpAddr, *httpsAddr} {
		if a == "" {
			continue
		}
		if _, err := simulate.CheckLoopback("target", a); err != nil {
			return err
		}
	}
	all, err := addresses(*n+*n/10+4096, *seed)
	if err != nil {
		return err
	}
	today := all[*n/10 : *n+*n/10]
	markers := all[*n+*n/10:]

	nWeb := int64(float64(*events) * (*httpShare + *httpsShare))
	if *httpAddr == "" && *httpsAddr == "" {
		nWeb = 0
	}
	nUDP := *events - nWeb
	if *udpAddr == "" {
		nUDP, nWeb = 0, *events
	}
	var c counters
	var next atomic.Int64 // index into today, shared so that every address comes up
	pick := func() uint32 { return today[(next.Add(1)-1)%int64(len(today))] }
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// HTTP and HTTPS requests wait for the server's answer: when it falls
	// behind they go out late, not at the offered rate. The deadline keeps
	// the run at the offered pace's length (plus grace).
	sendCtx, stopSending := context.WithTimeout(ctx, time.Duration(float64(*events) / *rate * *grace * float64(time.Second)))
	defer stopSending()
	var wg sync.WaitGroup
	if nUDP > 0 {
		wg.Go(func() { sendUDP(sendCtx, *udpAddr, nUDP, *rate*float64(nUDP)/float64(*events), start, pick, &c) })
	}
	if nWeb > 0 {
		webRate := *rate * float64(nWeb) / float64(*events)
		var httpsEvery int // every k-th connection is HTTPS
		if *httpsAddr != "" && *httpShare+*httpsShare > 0 {
			httpsEvery = max(1, int((*httpShare+*httpsShare) / *httpsShare + 0.5))
		}
		var budget atomic.Int64
		budget.Store(nWeb)
		var conns atomic.Int64
		for w := range *webWorkers {
			wg.Go(func() {
				sendWeb(sendCtx, w, *webWorkers, webRate, start, &budget, &conns, httpsEvery, *httpAddr, *httpsAddr, *perConn, pick, &c)
			})
		}
	}
	var lat []time.Duration
	var probeErr error
	probeDone := make(chan struct{})
	if *api != "" && *httpAddr != "" {
		go func() {
			defer close(probeDone)
			lat, probeErr = probe(ctx, *httpAddr, *api, *token, markers)
		}()
	} else {
		close(probeDone)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	cancel()
	<-probeDone
	sent := c.udp.Load() + c.http.Load() + c.https.Load()
	res := map[string]any{"offered": *events, "unsent": *events - sent, "sent": sent, "udp": c.udp.Load(), "http": c.http.Load(), "https": c.https.Load(),
		"failed": c.failed.Load(), "seconds": secs, "rate": float64(sent) / secs, "probes": len(lat)}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))].Seconds() }
		res["visible_p50"], res["visible_p99"], res["visible_max"] = q(0.5), q(0.99), lat[len(lat)-1].Seconds()
	}
	if probeErr != nil {
		res["probe_error"] = probeErr.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// pace sleeps until the sent-th event is due at rate per second from start.
func pace(start time.Time, sent int64, rate float64) {
	due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

func proxyV2(dst []byte, src uint32, dport uint16, transport byte, sport uint16) []byte {
	return proxyproto.AppendV2(dst, proxyproto.Header{
		Version: 2, Command: proxyproto.CmdProxy, Transport: transport,
		Src: netip.AddrPortFrom(addr4(src), sport),
		Dst: netip.AddrPortFrom(netip.MustParseAddr(sinkholeA), dport),
	})
}

// udpMagic starts every UDP beacon: bench/scale/run.sh adds a rule with
// verifies_source for it, as an operator does for a family's own protocol
// bytes, so that UDP sources count as infected hosts (a DNS query or an
// unknown payload would be an unverified source, stored but not counted).
const udpMagic = "RKUD\x01"

// udpBeacon is a 64-byte UDP check-in: the magic, a counter, padding.
func udpBeacon(dst []byte, n uint64) []byte {
	dst = append(dst, udpMagic...)
	dst = binary.BigEndian.AppendUint64(dst, n)
	for len(dst)%64 != 0 {
		dst = append(dst, 0x5a)
	}
	return dst
}

// sendUDP sends n datagrams at rate, 32 at a time through sendmmsg
// (ipv4.PacketConn.WriteBatch), so that the generator's own system calls
// leave the cores to the server; 32 datagrams are well under a
// millisecond's worth at the rates measured here, so the pace stays even
// at the scale of the socket buffers.
func sendUDP(ctx context.Context, addr string, n int64, rate float64, start time.Time, pick func() uint32, c *counters) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		c.failed.Add(n)
		return
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn.(*net.UDPConn))
	const batch = 32
	msgs := make([]ipv4.Message, batch)
	bufs := make([][]byte, batch)
	for i := int64(0); i < n && ctx.Err() == nil; i += batch {
		pace(start, i, rate)
		k := int(min(batch, n-i))
		for j := range k {
			b := proxyV2(bufs[j][:0], pick(), 53, proxyproto.TransportUDP, uint16(1024+(i+int64(j))%64000))
			bufs[j] = udpBeacon(b, uint64(i)+uint64(j))
			msgs[j] = ipv4.Message{Buffers: [][]byte{bufs[j]}}
		}
		for sent := 0; sent < k; {
			m, err := pc.WriteBatch(msgs[sent:k], 0)
			if err != nil {
				c.failed.Add(int64(k - sent))
				break
			}
			sent += m
			c.udp.Add(int64(m))
		}
	}
}

// sendWeb is one of workers web senders; each takes requests from the
// shared budget at its share of rate, one keep-alive connection (one source)
// at a time.
func sendWeb(ctx context.Context, id, workers int, rate float64, start time.Time, budget, conns *atomic.Int64, httpsEvery int,
	httpAddr, httpsAddr string, perConn int, pick func() uint32, c *counters) {
	my := rate / float64(workers)
	var mine int64
	var wbuf []byte
	for ctx.Err() == nil {
		k := conns.Add(1)
		https := httpsAddr != "" && (httpAddr == "" || (httpsEvery > 0 && k%int64(httpsEvery) == 0))
		addr, dport, ctr := httpAddr, uint16(80), &c.http
		if https {
			addr, dport, ctr = httpsAddr, 443, &c.https
		}
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			c.failed.Add(1)
			time.Sleep(10 * time.Millisecond)
			if budget.Add(-1) < 0 {
				return
			}
			continue
		}
		src := pick()
		wbuf = proxyV2(wbuf[:0], src, dport, proxyproto.TransportTCP, uint16(1024+k%64000))
		var rw io.ReadWriter = raw
		if _, err = raw.Write(wbuf); err == nil && https {
			tc := tls.Client(raw, &tls.Config{ServerName: domain, InsecureSkipVerify: true}) //nolint:gosec // a simulated bot
			err = tc.Handshake()
			rw = tc
		}
		if err != nil {
			c.failed.Add(1)
			raw.Close()
			continue
		}
		br := bufio.NewReader(rw)
		for range perConn {
			if ctx.Err() != nil || budget.Add(-1) < 0 {
				raw.Close()
				return
			}
			pace(start, mine, my)
			mine++
			// Rustock's beacon: a 96-byte blob POSTed to /login.php (the
			// shipped rule rustock-login-beacon).
			wbuf = append(wbuf[:0], "POST /login.php HTTP/1.1\r\nHost: "+domain+"\r\nUser-Agent: "+simulate.UserAgent+
				"\r\nContent-Type: application/octet-stream\r\nContent-Length: 96\r\n\r\n"...)
			wbuf = fmt.Appendf(wbuf, "%016x%080x", uint64(k)<<20|uint64(mine&0xfffff), 0)
			if _, err = rw.Write(wbuf); err == nil {
				err = readResponse(br)
			}
			if err != nil {
				c.failed.Add(1)
				break
			}
			ctr.Add(1)
		}
		raw.Close()
	}
}

// readResponse reads one HTTP response with a Content-Length body.
func readResponse(br *bufio.Reader) error {
	cl := 0
	status := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if status {
			if !strings.HasPrefix(string(line), "HTTP/1.1 ") {
				return fmt.Errorf("bad status line %q", line)
			}
			status = false
			continue
		}
		s := strings.TrimSpace(string(line))
		if s == "" {
			break
		}
		if k, v, ok := strings.Cut(s, ":"); ok && strings.EqualFold(k, "Content-Length") {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	_, err := br.Discard(cl)
	return err
}

// probe measures accept-to-visible latency once a second until ctx ends:
// an HTTP beacon from a marker address seen nowhere else, on its own
// connection (TCP, so that a full socket buffer delays it rather than
// losing it), timed from the sinkhole's answer (the accept has happened by
// then), then the events API polled every 100 ms until the marker is listed
// (or 30 s pass, counted as 30 s). Probes overlap: a slow one does not
// delay the next. (Polled every 20 ms, the up to 30 probes waiting at once
// while events were being dropped made 1,500 API queries a second, a fifth
// of serve's CPU, taken from the writer they were waiting for.)
func probe(ctx context.Context, httpAddr, api, token string, markers []uint32) ([]time.Duration, error) {
	cl := &http.Client{Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		out      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i, m := range markers {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			c, err := net.Dial("tcp", httpAddr)
			if err != nil {
				fail(err)
				return
			}
			b := proxyV2(nil, m, 80, proxyproto.TransportTCP, uint16(40000+i%20000))
			b = append(b, "GET /probe HTTP/1.1\r\nHost: "+domain+"\r\nConnection: close\r\n\r\n"...)
			if _, err = c.Write(b); err == nil {
				err = readResponse(bufio.NewReader(c))
			}
			c.Close()
			if err != nil {
				fail(fmt.Errorf("probe beacon: %w", err))
				return
			}
			sent := time.Now()
			url := fmt.Sprintf("%s/api/v1/events?cidr=%s/32&window=48h&format=jsonl", api, addr4(m))
			for {
				seen, err := listed(cl, url, token)
				if err != nil {
					fail(err)
				}
				d := time.Since(sent)
				if seen || d > 30*time.Second {
					mu.Lock()
					out = append(out, min(d, 30*time.Second))
					mu.Unlock()
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

func listed(cl *http.Client, url, token string) (bool, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := cl.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, errors.New(resp.Status + ": " + strings.TrimSpace(string(b)))
	}
	return strings.Contains(string(b), "\"src_ip\""), nil
}
