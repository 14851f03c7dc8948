package dnssink

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/proxyproto"
)

func TestEvents(t *testing.T) {
	s := startSink(t, testSource(), Options{Sensor: "dns-1"})
	tests := []struct {
		name, network, qname string
		qtype                uint16
		rcode, matched, cse  string
	}{
		{"seized udp", "udp", "WWW.c2.example.", dns.TypeA, "NOERROR", "c2.example", "case-a"},
		{"seized tcp", "tcp", "mail.other.test.", dns.TypeMX, "NOERROR", "other.test", "case-b"},
		{"outside", "udp", "example.org.", dns.TypeAAAA, "REFUSED", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.drainEvents()
			query, _ := question(tt.qname, tt.qtype).Pack()
			var wire []byte
			if tt.network == "udp" {
				wire = s.raw(t, query)
			} else {
				wire = s.rawTCP(t, query)
			}
			var r dns.Msg
			if err := r.Unpack(wire); err != nil {
				t.Fatalf("answer: %v", err)
			}
			e := s.nextEvent(t)
			if e.Protocol != "dns" || e.Transport != tt.network || e.Sensor != "dns-1" || e.ID != "" {
				t.Errorf("protocol %q transport %q sensor %q id %q", e.Protocol, e.Transport, e.Sensor, e.ID)
			}
			if e.QName != tt.qname[:len(tt.qname)-1] || e.QType != dns.TypeToString[tt.qtype] || e.RCode != tt.rcode {
				t.Errorf("qname %q qtype %q rcode %q; want %q %q %q", e.QName, e.QType, e.RCode, tt.qname, dns.TypeToString[tt.qtype], tt.rcode)
			}
			if e.Matched != tt.matched || e.Case != tt.cse {
				t.Errorf("matched %q case %q; want %q %q", e.Matched, e.Case, tt.matched, tt.cse)
			}
			if tt.matched != "" && e.Family != "rustock" {
				t.Errorf("family %q", e.Family)
			}
			if e.SrcIP != netip.MustParseAddr("127.0.0.1") || e.SrcPort == 0 || e.DstPort != s.Addr().Port() {
				t.Errorf("src %s:%d dst port %d", e.SrcIP, e.SrcPort, e.DstPort)
			}
			if e.ResponseSize != len(wire) {
				t.Errorf("response size %d, want %d", e.ResponseSize, len(wire))
			}
			if time.Since(e.Timestamp) > time.Minute || e.Timestamp.Location() != time.UTC {
				t.Errorf("timestamp %v", e.Timestamp)
			}
		})
	}
}

func TestEventsDroppedWhenQueueFull(t *testing.T) {
	s := startSink(t, testSource(), Options{RRL: RRL{Disabled: true}})
	// Fill the queue, then ask: the answer still comes, the event is counted.
	for s.events.Len() < s.events.Cap() {
		s.events.Offer(&eventFiller)
	}
	for range 3 {
		if r := s.exchange(t, "udp", question("c2.example.", dns.TypeA)); len(r.Answer) != 1 {
			t.Fatalf("no answer while the event queue is full")
		}
	}
	if got := s.counter(t, "takedown_dns_events_dropped_total"); got != 3 {
		t.Errorf("events_dropped_total = %v, want 3", got)
	}
}

func TestProxyProtocol(t *testing.T) {
	trust, err := proxyproto.ParseTrust([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	trusted := startSink(t, testSource(), Options{TrustedProxies: trust})
	untrusted := startSink(t, testSource(), Options{})
	orig := netip.MustParseAddrPort("203.0.113.77:40000")
	query, _ := question("www.c2.example.", dns.TypeA).Pack()
	hdr := func(tr byte) []byte {
		return proxyproto.AppendV2(nil, proxyproto.Header{Version: 2, Command: proxyproto.CmdProxy, Transport: tr, Src: orig, Dst: netip.MustParseAddrPort("127.0.0.1:53")})
	}

	t.Run("udp from trusted", func(t *testing.T) {
		trusted.drainEvents()
		resp := trusted.raw(t, append(hdr(proxyproto.TransportUDP), query...))
		var m dns.Msg
		if resp == nil || m.Unpack(resp) != nil || len(m.Answer) != 1 {
			t.Fatalf("no answer to a PROXY v2 datagram: %x", resp)
		}
		if e := trusted.nextEvent(t); netip.AddrPortFrom(e.SrcIP, e.SrcPort) != orig {
			t.Errorf("event source %s:%d, want %s", e.SrcIP, e.SrcPort, orig)
		}
	})
	t.Run("udp from trusted without header", func(t *testing.T) {
		trusted.drainEvents()
		if resp := trusted.raw(t, query); resp == nil {
			t.Fatal("no answer")
		}
		if e := trusted.nextEvent(t); e.SrcIP != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("event source %s", e.SrcIP)
		}
	})
	t.Run("udp from untrusted is not believed", func(t *testing.T) {
		untrusted.drainEvents()
		resp := untrusted.raw(t, append(hdr(proxyproto.TransportUDP), query...))
		var m dns.Msg
		if resp != nil && m.Unpack(resp) == nil && len(m.Answer) > 0 {
			t.Fatalf("answered a PROXY datagram from an untrusted peer: %v", m.Answer)
		}
		if resp != nil {
			if e := untrusted.nextEvent(t); e.SrcIP == orig.Addr() {
				t.Errorf("event took the untrusted PROXY source")
			}
		}
	})
	t.Run("tcp from trusted", func(t *testing.T) {
		trusted.drainEvents()
		c, err := net.Dial("tcp", trusted.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := append(hdr(proxyproto.TransportTCP), binary.BigEndian.AppendUint16(nil, uint16(len(query)))...)
		if _, err := c.Write(append(msg, query...)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		var l [2]byte
		if _, err := r.Read(l[:]); err != nil {
			t.Fatalf("no answer over TCP after a PROXY header: %v", err)
		}
		if e := trusted.nextEvent(t); netip.AddrPortFrom(e.SrcIP, e.SrcPort) != orig || e.Transport != "tcp" {
			t.Errorf("event source %s:%d over %s, want %s over tcp", e.SrcIP, e.SrcPort, e.Transport, orig)
		}
	})
}

func TestIPv6Listener(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	s := startSink(t, testSource(), Options{Listen: []string{"[::1]:0"}})
	for _, network := range []string{"udp", "tcp"} {
		s.drainEvents()
		r := s.exchange(t, network, question("www.c2.example.", dns.TypeAAAA))
		if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::1" {
			t.Errorf("%s: answer %v", network, r.Answer)
		}
		if e := s.nextEvent(t); e.SrcIP != netip.IPv6Loopback() || e.DstIP != netip.IPv6Loopback() || e.Transport != network {
			t.Errorf("%s: event src %s dst %s transport %s", network, e.SrcIP, e.DstIP, e.Transport)
		}
	}
}
