package simulate

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/connsink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
)

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.5.6.7:53", true},
		{"[::1]:5353", true},
		{"localhost:8443", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"10.0.0.1:80", false},
		{"192.0.2.1:53", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{":8080", false},
		{"example.com:80", false},
		{"[fe80::1%lo]:80", false},
		{"127.0.0.1", false},
		{"127.0.0.1:0", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			ap, err := CheckLoopback("--http", tc.addr)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckLoopback(%q) = %v, %v; want ok=%v", tc.addr, ap, err, tc.ok)
			}
			if err == nil && !ap.Addr().IsLoopback() {
				t.Fatalf("accepted %s", ap)
			}
		})
	}
}

func TestRunLiveRefusesNonLoopback(t *testing.T) {
	s := newSim(t, testOptions(t))
	for _, tg := range []Targets{
		{HTTP: "10.1.2.3:80"},
		{HTTP: "127.0.0.1:8080", DNS: "8.8.8.8:53"},
		{HTTPS: "example.com:443"},
		{},
	} {
		_, err := s.RunLive(t.Context(), tg)
		if err == nil {
			t.Fatalf("RunLive(%+v) sent beacons", tg)
		}
	}
}

// fakeSink records the PROXY headers of what arrives, answering HTTP like
// the sinkhole does.
type fakeSink struct {
	mu   sync.Mutex
	tcp  []proxyproto.Header
	dns  []proxyproto.Header
	qs   []string
	reqs []string // request heads of the HTTP beacons
	errs []error
}

func (f *fakeSink) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func startFakeSink(tb testing.TB) (*fakeSink, string, string) {
	tb.Helper()
	f := &fakeSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				b, err := br.Peek(28)
				if err != nil {
					f.fail(err)
					return
				}
				h, n, err := proxyproto.ParseV2(b)
				if err != nil {
					f.fail(err)
					return
				}
				br.Discard(n)
				req, err := readRequest(br)
				if err != nil {
					f.fail(err)
					return
				}
				if !(strings.HasPrefix(req, "POST /login.php HTTP/1.1\r\n") || strings.HasPrefix(req, "POST "+DGABeaconPath+" HTTP/1.1\r\n")) ||
					!strings.Contains(req, "Connection: close\r\n") {
					f.fail(errors.New("unexpected request " + req))
				}
				body := make([]byte, PayloadSize)
				if _, err := io.ReadFull(br, body); err != nil {
					f.fail(err)
					return
				}
				f.mu.Lock()
				f.tcp = append(f.tcp, h)
				f.reqs = append(f.reqs, req)
				f.mu.Unlock()
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}()
		}
	}()
	go func() {
		b := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			h, hn, err := proxyproto.ParseV2(b[:n])
			if err != nil {
				f.fail(err)
				continue
			}
			var m dns.Msg
			if err := m.Unpack(b[hn:n]); err != nil || len(m.Question) != 1 {
				f.fail(errors.New("bad DNS query"))
				continue
			}
			f.mu.Lock()
			f.dns = append(f.dns, h)
			f.qs = append(f.qs, m.Question[0].Name)
			f.mu.Unlock()
		}
	}()
	return f, ln.Addr().String(), pc.LocalAddr().String()
}

func readRequest(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(line)
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

// liveAddrs are the addresses and resolvers of the hosts infected on the
// live day.
func liveAddrs(s *Sim) (hosts, resolvers map[netip.Addr]bool) {
	sn := s.snapshot(s.liveDay(s.now()))
	hosts, resolvers = map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, i := range sn.alive {
		hosts[addr4(sn.addr[s.hosts[i].holder])] = true
	}
	for _, r := range sn.res {
		resolvers[addr4(s.resolvers[r].addr)] = true
	}
	return hosts, resolvers
}

func TestRunLiveProxyHeaders(t *testing.T) {
	s := newSim(t, testOptions(t))
	f, httpAddr, dnsAddr := startFakeSink(t)
	rep, err := s.RunLive(t.Context(), Targets{HTTP: httpAddr, DNS: dnsAddr, Beacons: 400, Concurrency: 8, DNSShare: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.Beacons() != 400 || rep.HTTP == 0 || rep.DNS == 0 {
		t.Fatalf("report %+v", rep)
	}
	hosts, resolvers := liveAddrs(s)
	// UDP is unacknowledged: wait for the last datagrams, without a clock.
	for {
		f.mu.Lock()
		n := len(f.dns)
		f.mu.Unlock()
		if int64(n) >= rep.DNS {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Fatal(f.errs)
	}
	if int64(len(f.tcp)) != rep.HTTP {
		t.Fatalf("%d HTTP beacons arrived, report says %d", len(f.tcp), rep.HTTP)
	}
	for _, h := range f.tcp {
		if !h.Proxied() || h.Transport != proxyproto.TransportTCP || !hosts[h.Src.Addr()] || h.Dst.Port() != 80 {
			t.Fatalf("HTTP beacon header %+v: not from an infected host's address", h)
		}
	}
	for i, h := range f.dns {
		if !h.Proxied() || h.Transport != proxyproto.TransportUDP || !resolvers[h.Src.Addr()] || h.Dst.Port() != 53 {
			t.Fatalf("DNS query header %+v: not from a resolver", h)
		}
		if q := strings.TrimSuffix(f.qs[i], "."); !strings.HasSuffix(q, ".example") {
			t.Fatalf("query for %q", q)
		}
	}
	var total int
	for _, n := range rep.UniqueIPs {
		total += n
	}
	if total == 0 || total > len(f.tcp) {
		t.Fatalf("report: %d unique IPs for %d beacons", total, len(f.tcp))
	}
}

// TestRunLiveConnsink sends beacons to the real connection sinkhole, which
// trusts PROXY headers from loopback, and checks what it recorded.
func TestRunLiveConnsink(t *testing.T) {
	s := newSim(t, testOptions(t))
	trust, err := proxyproto.ParseTrust([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	q := event.NewQueue(10000)
	start := func(kind connsink.Kind) string {
		l, err := connsink.New(connsink.Options{Kind: kind, Addr: "127.0.0.1:0", TrustedProxies: trust, Handoff: q, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(t.Context())
		go func() { done <- l.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return l.Addr().String()
	}
	httpAddr, httpsAddr := start(connsink.KindHTTP), start(connsink.KindHTTPS)
	rep, err := s.RunLive(t.Context(), Targets{HTTP: httpAddr, HTTPS: httpsAddr, Beacons: 300, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.HTTP+rep.HTTPS != 300 || rep.HTTPS == 0 {
		t.Fatalf("report %+v", rep)
	}
	hosts, _ := liveAddrs(s)
	payloads := map[string]bool{}
	for i := range s.hosts {
		sum := sha256.Sum256(s.payload(nil, i))
		payloads[hex.EncodeToString(sum[:])] = true
	}
	got := map[string]int{}
	for range 300 {
		ev := <-q.C()
		got[ev.Protocol]++
		if !hosts[ev.SrcIP] || ev.DstPort != 80 && ev.DstPort != 443 {
			t.Fatalf("event from %s to port %d: not an infected host's beacon", ev.SrcIP, ev.DstPort)
		}
		if ev.Family != "rustock" || ev.PayloadSize != PayloadSize || !payloads[ev.PayloadSHA256] {
			t.Fatalf("event %+v: not classified as a Rustock beacon of a known bot", ev)
		}
		if ev.Protocol == event.ProtoHTTPS && !strings.HasSuffix(ev.SSLServerName, ".example") {
			t.Fatalf("https event with SNI %q", ev.SSLServerName)
		}
	}
	if got[event.ProtoHTTP] != int(rep.HTTP) || got[event.ProtoHTTPS] != int(rep.HTTPS) {
		t.Fatalf("events %v, report %+v", got, rep)
	}
}
