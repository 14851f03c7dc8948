package dnssink

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hdr builds a 12-byte header.
func hdr(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 0, 12)
	for _, v := range []uint16{id, flags, qd, an, ns, ar} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func TestBadInputUDP(t *testing.T) {
	s := startSink(t, testSource(), Options{RRL: RRL{Disabled: true}})
	good, _ := question("c2.example.", dns.TypeA).Pack()
	qsec := append([]byte("\x02c2\x07example\x00"), 0, 1, 0, 1)
	long := bytes.Repeat([]byte("\x3f"+strings.Repeat("a", 63)), 5)
	tests := []struct {
		name  string
		in    []byte
		rcode int // -1: no answer at all
	}{
		{"empty", nil, -1},
		{"truncated header", []byte{1, 2, 3, 4, 5}, -1},
		{"header only, no question", hdr(1, 0, 0, 0, 0, 0), dns.RcodeFormatError},
		{"a response", append(hdr(1, 0x8000, 1, 0, 0, 0), qsec...), -1},
		{"two questions", append(append(hdr(1, 0, 2, 0, 0, 0), qsec...), qsec...), dns.RcodeFormatError},
		{"question count 1, none present", hdr(1, 0, 1, 0, 0, 0), dns.RcodeFormatError},
		{"label longer than the message", append(hdr(1, 0, 1, 0, 0, 0), "\x3fabc"...), dns.RcodeFormatError},
		{"label length 64 (extended type)", append(append(hdr(1, 0, 1, 0, 0, 0), 0x40), qsec...), dns.RcodeFormatError},
		{"name over 255 bytes", append(append(append(hdr(1, 0, 1, 0, 0, 0), long...), 0), 0, 1, 0, 1), dns.RcodeFormatError},
		{"compression loop", append(hdr(1, 0, 1, 0, 0, 0), 0xC0, 12, 0, 1, 0, 1), dns.RcodeFormatError},
		{"pointer forward out of range", append(hdr(1, 0, 1, 0, 0, 0), 0xC0, 200, 0, 1, 0, 1), dns.RcodeFormatError},
		{"no type and class", append(hdr(1, 0, 1, 0, 0, 0), "\x02c2\x07example\x00"...), dns.RcodeFormatError},
		{"opcode NOTIFY", append(hdr(1, 4<<11, 1, 0, 0, 0), qsec...), dns.RcodeNotImplemented},
		{"opcode UPDATE", append(hdr(1, 5<<11, 1, 0, 0, 0), qsec...), dns.RcodeNotImplemented},
		{"opcode 15", append(hdr(1, 15<<11, 1, 0, 0, 0), qsec...), dns.RcodeNotImplemented},
		{"answer count set, garbage", append(hdr(1, 0, 1, 5, 0, 0), qsec...), dns.RcodeFormatError},
		{"two OPT records", append(append(append(hdr(1, 0, 1, 0, 0, 2), qsec...), 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0), 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0), dns.RcodeFormatError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.counter(t, "takedown_dns_malformed_total")
			resp := s.raw(t, tt.in)
			if tt.rcode < 0 {
				if resp != nil {
					t.Errorf("answered %x", resp)
				}
				if after := s.counter(t, "takedown_dns_malformed_total"); after != before+1 {
					t.Errorf("malformed_total %v → %v, want +1", before, after)
				}
			} else {
				if len(resp) < 12 {
					t.Fatalf("no answer, want %s", dns.RcodeToString[tt.rcode])
				}
				var m dns.Msg
				if err := m.Unpack(resp); err != nil {
					t.Fatalf("answer does not parse: %v", err)
				}
				if m.Rcode != tt.rcode || !m.Response || m.Id != 1 {
					t.Errorf("rcode %s response %v id %d, want %s", dns.RcodeToString[m.Rcode], m.Response, m.Id, dns.RcodeToString[tt.rcode])
				}
			}
			// Other clients keep being answered.
			var m dns.Msg
			if err := m.Unpack(s.raw(t, good)); err != nil || len(m.Answer) != 1 {
				t.Fatalf("good query after bad input: %v %v", err, m.Answer)
			}
		})
	}
}

// TestGeneralPath: a query the fast parser leaves to miekg/dns (an EDNS
// option) gets the same answer, in the question's case.
func TestGeneralPath(t *testing.T) {
	s := startSink(t, testSource(), Options{})
	m := question("WWW.c2.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	r := s.exchange(t, "udp", m)
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "WWW.c2.example." {
		t.Errorf("general path answer %v", r.Answer)
	}
}

func TestTCP(t *testing.T) {
	s := startSink(t, testSource(), Options{TCPIdleTimeout: 300 * time.Millisecond})
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }

	t.Run("pipelined", func(t *testing.T) {
		c := dial(t)
		var all []byte
		names := []string{"a.c2.example.", "b.c2.example.", "example.org."}
		for i, n := range names {
			m := question(n, dns.TypeA)
			m.Id = uint16(100 + i)
			b, _ := m.Pack()
			all = append(all, frame(b)...)
		}
		if _, err := c.Write(all); err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			var m dns.Msg
			if err := m.Unpack(readFramed(c)); err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			if m.Id != uint16(100+i) || m.Question[0].Name != n {
				t.Errorf("answer %d: id %d %s, want %d %s", i, m.Id, m.Question[0].Name, 100+i, n)
			}
		}
	})
	t.Run("oversized length prefix closes", func(t *testing.T) {
		c := dial(t)
		before := s.counter(t, "takedown_dns_tcp_oversized_total")
		if _, err := c.Write(append([]byte{0xFF, 0xFF}, bytes.Repeat([]byte{0}, 100)...)); err != nil {
			t.Fatal(err)
		}
		if b := readFramed(c); b != nil {
			t.Errorf("answered an oversized message")
		}
		if after := s.counter(t, "takedown_dns_tcp_oversized_total"); after != before+1 {
			t.Errorf("tcp_oversized_total %v → %v", before, after)
		}
	})
	t.Run("length below a header closes", func(t *testing.T) {
		c := dial(t)
		if _, err := c.Write([]byte{0, 3, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if b := readFramed(c); b != nil {
			t.Errorf("answered a 3-byte message")
		}
	})
	t.Run("idle connection is closed", func(t *testing.T) {
		c := dial(t)
		before := s.counter(t, "takedown_dns_tcp_idle_closed_total")
		if b := readFramed(c); b != nil {
			t.Errorf("got data on an idle connection")
		}
		if after := s.counter(t, "takedown_dns_tcp_idle_closed_total"); after != before+1 {
			t.Errorf("tcp_idle_closed_total %v → %v", before, after)
		}
	})
	t.Run("half a message then silence is closed", func(t *testing.T) {
		c := dial(t)
		if _, err := c.Write([]byte{0, 40, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if b := readFramed(c); b != nil {
			t.Errorf("answered half a message")
		}
	})
}

// TestManyIdleTCP opens 10,000 idle connections: the server keeps at most
// TCPMaxConns of them (goroutines and memory stay bounded), UDP keeps being
// answered, and TCP answers again once they go away.
func TestManyIdleTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	const clients, maxConns = 10000, 200
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < clients+maxConns+500 {
		lim.Cur = min(lim.Max, clients+maxConns+2000)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		if lim.Cur < clients+maxConns+500 {
			t.Skipf("file descriptor limit %d is too low for %d connections", lim.Cur, clients)
		}
	}
	s := startSink(t, testSource(), Options{TCPMaxConns: maxConns, TCPPerSource: clients, TCPIdleTimeout: time.Minute, RRL: RRL{Disabled: true}})
	goroutinesBefore := runtime.NumGoroutine()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	d := net.Dialer{Timeout: 10 * time.Second}
	for i := range clients {
		c, err := d.DialContext(t.Context(), "tcp", s.addr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue // refused at the cap before the dial returned
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Wait until the server has seen every connection (accepted or refused).
	deadline := time.Now().Add(30 * time.Second)
	for s.counter(t, "takedown_dns_tcp_rejected_total")+s.counter(t, "takedown_dns_tcp_connections") < clients && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if open := s.counter(t, "takedown_dns_tcp_connections"); open > maxConns {
		t.Errorf("%v connections open, cap %d", open, maxConns)
	}
	if rej := s.counter(t, "takedown_dns_tcp_rejected_total"); rej < clients-maxConns {
		t.Errorf("%v connections rejected, want at least %d", rej, clients-maxConns)
	}
	if g := runtime.NumGoroutine(); g > goroutinesBefore+maxConns+50 {
		t.Errorf("%d goroutines with %d idle clients (was %d): not bounded by the cap", g, clients, goroutinesBefore)
	}
	// UDP is answered meanwhile.
	if r := s.exchange(t, "udp", question("c2.example.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("UDP answer %v while TCP is full", r.Answer)
	}
	// Once the idle clients go away, TCP answers again.
	for _, c := range conns {
		c.Close()
	}
	var ok bool
	for end := time.Now().Add(60 * time.Second); !ok && time.Now().Before(end); {
		c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(question("c2.example.", dns.TypeA), s.addr)
		if ok = err == nil && len(r.Answer) == 1; !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Error("TCP never answered again after the idle clients left")
	}
}

func TestRRL(t *testing.T) {
	const n = 20
	send := func(t *testing.T, s *sink) (answered, truncated int) {
		t.Helper()
		c, err := net.Dial("udp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range n {
			m := question("c2.example.", dns.TypeA)
			m.Id = uint16(i)
			b, _ := m.Pack()
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		// Every query is an event, limited or not: wait for all of them,
		// then read what came back.
		for range n {
			s.nextEvent(t)
		}
		buf := make([]byte, 4096)
		for {
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:k]) != nil {
				t.Fatalf("bad answer")
			}
			if m.Truncated {
				truncated++
			} else {
				answered++
			}
		}
	}
	t.Run("limited", func(t *testing.T) {
		s := startSink(t, testSource(), Options{RRL: RRL{ResponsesPerSecond: 2, Slip: 2}})
		answered, truncated := send(t, s)
		drop, slip := s.counter(t, "takedown_dns_rrl_limited_total", "action", "drop"), s.counter(t, "takedown_dns_rrl_limited_total", "action", "slip")
		if answered > 6 || answered < 2 {
			t.Errorf("%d full answers to %d queries at 2/s", answered, n)
		}
		if drop+slip != float64(n-answered) || slip < 1 || drop < 1 {
			t.Errorf("rrl drop %v slip %v for %d answered of %d", drop, slip, answered, n)
		}
		if float64(truncated) != slip {
			t.Errorf("%d truncated answers, %v slipped", truncated, slip)
		}
	})
	t.Run("exempt", func(t *testing.T) {
		s := startSink(t, testSource(), Options{RRL: RRL{ResponsesPerSecond: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
		if answered, _ := send(t, s); answered != n {
			t.Errorf("%d of %d answered to an exempt client", answered, n)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		s := startSink(t, testSource(), Options{RRL: RRL{Disabled: true, ResponsesPerSecond: 2}})
		if answered, _ := send(t, s); answered != n {
			t.Errorf("%d of %d answered with RRL off", answered, n)
		}
	})
}

func TestLimiterBlocks(t *testing.T) {
	l := newLimiter(RRL{ResponsesPerSecond: 1, Slip: -1})
	now := time.Now().UnixNano()
	a, b, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("192.0.3.1")
	if l.check(a, 1, now) != rrlPass || l.check(b, 1, now) != rrlDrop {
		t.Error("two addresses of one /24 do not share a bucket")
	}
	if l.check(other, 1, now) != rrlPass {
		t.Error("another /24 is limited")
	}
	if l.check(a, 2, now) != rrlPass {
		t.Error("another response to the same block is limited")
	}
	v6a, v6b := netip.MustParseAddr("2001:db8:0:ff::1"), netip.MustParseAddr("2001:db8:0:1::1")
	if l.check(v6a, 1, now) != rrlPass || l.check(v6b, 1, now) != rrlDrop {
		t.Error("two addresses of one /56 do not share a bucket")
	}
	if l.check(a, 1, now+2e9) != rrlPass {
		t.Error("bucket does not refill")
	}
}

func TestReload(t *testing.T) {
	src := newFakeSource(domain("c2.example", "case-a"))
	s := startSink(t, src, Options{PollInterval: time.Hour})
	if r := s.exchange(t, "udp", question("new.test.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
		t.Fatalf("new.test answered before it was seized")
	}
	src.set(domain("c2.example", "case-a"), domain("new.test", "case-c"))
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := s.exchange(t, "udp", question("www.new.test.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("new.test not answered after Reload: %v", r)
	}
	r := s.exchange(t, "udp", question("c2.example.", dns.TypeSOA))
	if soa, ok := r.Answer[0].(*dns.SOA); !ok || soa.Serial != 2 {
		t.Errorf("SOA %v, want serial 2 after the change", r.Answer)
	}
}

func TestReloadOnSerialPoll(t *testing.T) {
	src := newFakeSource(domain("c2.example", "case-a"))
	s := startSink(t, src, Options{PollInterval: 20 * time.Millisecond})
	src.set(domain("polled.test", "case-a"))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r := s.exchange(t, "udp", question("polled.test.", dns.TypeA)); len(r.Answer) == 1 {
			if r := s.exchange(t, "udp", question("c2.example.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
				t.Errorf("removed c2.example still answered")
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("serial change never picked up")
}

// TestExpiryAtInstant: with the serial unchanged and polling off, an
// expiry and a start take effect at their instants (NextChange), never
// before.
func TestExpiryAtInstant(t *testing.T) {
	now := time.Now()
	expiring := domain("expiring.test", "case-a")
	expiring.Expires = now.Add(1500 * time.Millisecond)
	starting := domain("starting.test", "case-a")
	starting.Effective = now.Add(1500 * time.Millisecond)
	s := startSink(t, newFakeSource(expiring, starting), Options{PollInterval: time.Hour})
	deadline := now.Add(20 * time.Second)
	var expiredSeen, startedSeen bool
	for time.Now().Before(deadline) && !(expiredSeen && startedSeen) {
		r1 := s.exchange(t, "udp", question("expiring.test.", dns.TypeA))
		r2 := s.exchange(t, "udp", question("starting.test.", dns.TypeA))
		after := time.Now()
		if r1.Rcode == dns.RcodeRefused {
			expiredSeen = true
			if after.Before(expiring.Expires) {
				t.Fatalf("expired before its instant")
			}
		}
		if r2.Rcode == dns.RcodeSuccess {
			startedSeen = true
			if after.Before(starting.Effective) {
				t.Fatalf("started before its instant")
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !expiredSeen || !startedSeen {
		t.Fatalf("expiry seen %v, start seen %v", expiredSeen, startedSeen)
	}
}
