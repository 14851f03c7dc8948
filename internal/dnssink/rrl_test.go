package dnssink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/proxyproto"
)

// TestRRLKeying: what a client block gets per second from one zone does
// not grow with the query types or names it sprays (BIND and NSD keying:
// answers by zone and type, NODATA by zone, errors by block alone).
func TestRRLKeying(t *testing.T) {
	const rate, n = 3, 40
	sprayTypes := []uint16{dns.TypeMX, dns.TypeTXT, dns.TypeSRV, dns.TypeCAA, dns.TypeHINFO, dns.TypeNAPTR, dns.TypeDS, dns.TypeTLSA, 1000, 4000}
	tests := []struct {
		name string
		q    func(i int) *dns.Msg
		want int // answers that are not truncated, at most
	}{
		{"nodata, one type", func(int) *dns.Msg { return question("c2.example.", dns.TypeMX) }, rate},
		{"nodata, sprayed types", func(i int) *dns.Msg { return question("c2.example.", sprayTypes[i%len(sprayTypes)]) }, rate},
		{"nodata, sprayed types and names", func(i int) *dns.Msg {
			return question(fmt.Sprintf("n%d.c2.example.", i), sprayTypes[i%len(sprayTypes)])
		}, rate},
		{"answers, random subdomains", func(i int) *dns.Msg { return question(fmt.Sprintf("r%d.c2.example.", i), dns.TypeA) }, rate},
		{"answers, A and AAAA", func(i int) *dns.Msg {
			return question("c2.example.", []uint16{dns.TypeA, dns.TypeAAAA}[i%2])
		}, 2 * rate},
		{"refused, random names", func(i int) *dns.Msg {
			return question(fmt.Sprintf("x%d.not-seized.test.", i), sprayTypes[i%len(sprayTypes)])
		}, rate},
	}
	local := netip.MustParseAddrPort("127.0.0.1:53")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := rrlWorker(t, RRL{ResponsesPerSecond: rate, Slip: -1})
			w.now = time.Unix(1e9, 0)
			answered := 0
			for i := range n {
				b, err := tt.q(i).Pack()
				if err != nil {
					t.Fatal(err)
				}
				// Clients of one /24, as a spoofer would pick them.
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 5353)
				if resp := w.handle(b, src, local, trUDP, w.out); resp != nil {
					answered++
				}
			}
			if answered != tt.want {
				t.Errorf("%d of %d queries answered; want %d", answered, n, tt.want)
			}
		})
	}
	// Another zone, another block: budgets of their own.
	w, _ := rrlWorker(t, RRL{ResponsesPerSecond: 1, Slip: -1})
	w.now = time.Unix(1e9, 0)
	for _, c := range []struct {
		src, name string
	}{{"198.51.100.1", "c2.example."}, {"198.51.100.1", "other.test."}, {"203.0.113.1", "c2.example."}} {
		b, _ := question(c.name, dns.TypeMX).Pack()
		if w.handle(b, netip.AddrPortFrom(netip.MustParseAddr(c.src), 53), local, trUDP, w.out) == nil {
			t.Errorf("%s from %s limited: it has a budget of its own", c.name, c.src)
		}
	}
}

// TestLimiterFloodKeepsLimitedBucket: a flood of distinct keys, far more
// than the table holds, neither grows the table nor frees a client that is
// being limited.
func TestLimiterFloodKeepsLimitedBucket(t *testing.T) {
	const table = 256
	l := newLimiter(RRL{ResponsesPerSecond: 2, Window: time.Minute, Slip: -1, TableSize: table})
	now := int64(1e18)
	victim := netip.MustParseAddr("192.0.2.1")
	for range 40 {
		l.check(victim, rrlEmpty<<56|1<<16, now)
	}
	for i := range 100 * table {
		// A microsecond apart (0.1 s in all), each from a /24 of its own.
		now += 1000
		src := netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1})
		l.check(src, rrlError<<56, now)
	}
	for i := range 10 {
		if v := l.check(victim, rrlEmpty<<56|1<<16, now); v != rrlDrop {
			t.Fatalf("after the flood, the victim's response %d is %v, not dropped: its limit was forgotten", i, v)
		}
	}
	held := 0
	for i := range l.shards {
		held += len(l.shards[i].b)
		if len(l.shards[i].index) != len(l.shards[i].b) {
			t.Errorf("shard %d: %d keys indexed, %d buckets", i, len(l.shards[i].index), len(l.shards[i].b))
		}
	}
	if held > table {
		t.Errorf("%d buckets held; the table holds %d", held, table)
	}
	if l.evicted.Load() < 99*table {
		t.Errorf("%d evictions for a flood of %d keys into %d", l.evicted.Load(), 100*table, table)
	}
}

// TestLimiterSlip: every Slip-th limited response slips; a negative Slip
// (configuration's slip: 0) never does.
func TestLimiterSlip(t *testing.T) {
	for _, tt := range []struct {
		slip, wantSlips int
	}{{-1, 0}, {1, 10}, {2, 5}, {0, 5}} {
		t.Run(fmt.Sprint(tt.slip), func(t *testing.T) {
			l := newLimiter(RRL{ResponsesPerSecond: 1, Slip: tt.slip})
			a := netip.MustParseAddr("192.0.2.1")
			l.check(a, 1, 0)
			slips := 0
			for range 10 {
				if l.check(a, 1, 0) == rrlSlip {
					slips++
				}
			}
			if slips != tt.wantSlips {
				t.Errorf("%d of 10 limited responses slipped; want %d", slips, tt.wantSlips)
			}
		})
	}
}

// TestTCPPerSource: one source gets TCPPerSource connections; the rest are
// closed at once and counted, another source is not affected, and a slot
// is free again once its connection closes.
func TestTCPPerSource(t *testing.T) {
	const perSource, tries = 3, 8
	s := startSink(t, testSource(), Options{TCPPerSource: perSource, TCPIdleTimeout: time.Minute, RRL: RRL{Disabled: true}})
	query, _ := question("c2.example.", dns.TypeA).Pack()
	framed := append([]byte{byte(len(query) >> 8), byte(len(query))}, query...)
	// dial returns nil for a connection reset before the dial returned
	// (closed at once by the cap).
	dial := func(local string) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", s.addr)
		if errors.Is(err, syscall.ECONNRESET) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	answers := func(c net.Conn) bool {
		if c == nil {
			return false
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(framed); err != nil {
			return false
		}
		return len(readFramed(c)) > 0
	}
	var conns []net.Conn
	for range tries {
		conns = append(conns, dial("127.0.0.1"))
	}
	answered, closed := 0, 0
	var held []net.Conn
	for _, c := range conns {
		if answers(c) {
			answered++
			held = append(held, c)
			continue
		}
		// A closed connection reads EOF or a reset, never a timeout.
		var buf [1]byte
		if c != nil {
			if _, err := c.Read(buf[:]); err == nil || isTimeout(err) {
				t.Errorf("a connection beyond the cap is neither answered nor closed: %v", err)
			}
		}
		closed++
	}
	if answered != perSource || closed != tries-perSource {
		t.Errorf("%d connections answered, %d closed; want %d and %d", answered, closed, perSource, tries-perSource)
	}
	if got := s.counter(t, "takedown_dns_tcp_per_source_rejected_total"); got != tries-perSource {
		t.Errorf("takedown_dns_tcp_per_source_rejected_total %v; want %d", got, tries-perSource)
	}
	if !answers(dial("127.0.0.2")) {
		t.Error("another source is refused: the cap is not per source")
	}
	held[0].Close()
	ok := false
	for end := time.Now().Add(10 * time.Second); !ok && time.Now().Before(end); {
		if ok = answers(dial("127.0.0.1")); !ok {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !ok {
		t.Error("the slot of a closed connection is never given back")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestTCPSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
	} {
		if got := tcpSource(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("tcpSource(%s) = %s; want %s", in, got, want)
		}
	}
}

// TestTCPPerSourceBehindProxy: behind a trusted proxy the cap counts the
// source the PROXY header names, not the proxy (which carries everyone).
func TestTCPPerSourceBehindProxy(t *testing.T) {
	trust, err := proxyproto.ParseTrust([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s := startSink(t, testSource(), Options{TCPPerSource: 2, TCPIdleTimeout: time.Minute, TrustedProxies: trust, RRL: RRL{Disabled: true}})
	query, _ := question("c2.example.", dns.TypeA).Pack()
	framed := append([]byte{byte(len(query) >> 8), byte(len(query))}, query...)
	answered := func(client string) bool {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			return false
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		hdr := fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 53\r\n", client)
		if _, err := c.Write(append([]byte(hdr), framed...)); err != nil {
			return false
		}
		return len(readFramed(c)) > 0
	}
	got := 0
	for range 5 {
		if answered("198.51.100.7") {
			got++
		}
	}
	if got != 2 {
		t.Errorf("%d of 5 proxied connections of one client answered; want 2", got)
	}
	if !answered("198.51.100.8") {
		t.Error("another client behind the same proxy is refused: the cap counts the proxy")
	}
}
