package connsink

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/proxyproto"
)

func TestTCPCatchAll(t *testing.T) {
	s := startSink(t, KindTCP, func(o *Options) { o.Limits.MaxFirstBytes = 1000 })
	tests := []struct {
		name    string
		send    []byte
		wantLen int
	}{
		{"short beacon then close", []byte("\x00\x01HELLO-BOT"), 11},
		{"long stream is bounded", bytes.Repeat([]byte("z"), 5000), 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, "127.0.0.1", s.Addr().String())
			c.Write(tt.send)
			c.(*net.TCPConn).CloseWrite()
			if got, _ := io.ReadAll(c); len(got) != 0 {
				t.Errorf("catch-all wrote %q", got)
			}
			ev := s.next(t)
			want := tt.send[:tt.wantLen]
			sum := sha256.Sum256(want)
			if ev.Protocol != "tcp" || ev.PayloadSize != tt.wantLen || ev.PayloadSHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("event %s size %d sha %s", ev.Protocol, ev.PayloadSize, ev.PayloadSHA256)
			}
			if !bytes.Equal(ev.PayloadPrefix, want[:min(len(want), 512)]) {
				t.Errorf("prefix %q", ev.PayloadPrefix)
			}
		})
	}
}

func TestUDPNeverAmplifies(t *testing.T) {
	t.Run("default: no answer", func(t *testing.T) {
		s := startSink(t, KindUDP, nil)
		c, err := net.Dial("udp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("first datagram"))
		c.Write([]byte("second"))
		if ev := s.next(t); string(ev.PayloadPrefix) != "first datagram" || ev.Protocol != "udp" || ev.Transport != "udp" {
			t.Errorf("event %+v", ev)
		}
		s.next(t)
		// Loopback delivery happens inside sendto: had the sinkhole
		// answered the first datagram, the answer would be queued here
		// before it read the second.
		c.SetReadDeadline(time.Now())
		if n, err := c.Read(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("got %d bytes (err %v), want no answer", n, err)
		}
	})
	t.Run("reply only to datagrams at least as long", func(t *testing.T) {
		reply := []byte("0123456789")
		s := startSink(t, KindUDP, func(o *Options) { o.UDPReply = reply })
		c, err := net.Dial("udp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("short"))                // 5 < 10: no answer
		c.Write([]byte("long enough datagram")) // 20 ≥ 10: answer
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], reply) {
			t.Fatalf("read %q %v", buf[:n], err)
		}
		s.next(t)
		s.next(t)
		c.SetReadDeadline(time.Now())
		if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("second answer of %d bytes (err %v): the short datagram was answered", n, err)
		}
	})
}

func TestProxyProtocol(t *testing.T) {
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	dst := netip.MustParseAddrPort("203.0.113.1:80")
	h := proxyproto.Header{Version: 2, Command: proxyproto.CmdProxy, Transport: proxyproto.TransportTCP, Src: src, Dst: dst}
	v1 := string(proxyproto.AppendV1(nil, h))
	v2 := string(proxyproto.AppendV2(nil, h))
	req := "GET /p HTTP/1.1\r\nHost: c2.example\r\nConnection: close\r\n\r\n"

	trusted := startSink(t, KindHTTP, func(o *Options) { o.TrustedProxies = trustLoopback(t) })
	untrusted := startSink(t, KindHTTP, nil)
	tests := []struct {
		name    string
		s       *sink
		payload string
		wantSrc string
		status  string
	}{
		{"v1 from trusted", trusted, v1 + req, "198.51.100.7", "HTTP/1.1 200"},
		{"v2 from trusted", trusted, v2 + req, "198.51.100.7", "HTTP/1.1 200"},
		{"no header from trusted", trusted, req, "127.0.0.1", "HTTP/1.1 200"},
		{"v1 from untrusted is not believed", untrusted, v1 + req, "127.0.0.1", "HTTP/1.1 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rawExchange(t, tt.s, tt.payload)
			if !strings.HasPrefix(got, tt.status) {
				t.Errorf("response %q", got)
			}
			ev := tt.s.next(t)
			if ev.SrcIP.String() != tt.wantSrc {
				t.Errorf("src %v, want %s", ev.SrcIP, tt.wantSrc)
			}
			if tt.wantSrc == "198.51.100.7" && (ev.SrcPort != 40000 || ev.DstIP != dst.Addr() || ev.DstPort != 80) {
				t.Errorf("src port %d dst %v:%d", ev.SrcPort, ev.DstIP, ev.DstPort)
			}
		})
	}
	t.Run("malformed header from trusted is rejected", func(t *testing.T) {
		got := rawExchange(t, trusted, "PROXY TCP4 1.2.3.4 nonsense\r\n"+req)
		if got != "" {
			t.Errorf("response %q", got)
		}
		if trusted.counter(t, "rejected", "proxy_header") != 1 {
			t.Error("not counted")
		}
	})

	t.Run("v2 over udp and https", func(t *testing.T) {
		u := startSink(t, KindUDP, func(o *Options) { o.TrustedProxies = trustLoopback(t) })
		c, err := net.Dial("udp", u.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hu := h
		hu.Transport = proxyproto.TransportUDP
		c.Write(append(proxyproto.AppendV2(nil, hu), "beacon"...))
		ev := u.next(t)
		if ev.SrcIP != src.Addr() || string(ev.PayloadPrefix) != "beacon" {
			t.Errorf("udp event src %v payload %q", ev.SrcIP, ev.PayloadPrefix)
		}
		hs := startSink(t, KindHTTPS, func(o *Options) { o.TrustedProxies = trustLoopback(t) })
		hello, err := os.ReadFile("../tlsfp/testdata/curl-https.bin")
		if err != nil {
			t.Fatal(err)
		}
		tc := dialFrom(t, "127.0.0.1", hs.Addr().String())
		tc.Write(append([]byte(v2), hello...))
		tc.Close()
		ev = hs.next(t)
		if ev.SrcIP != src.Addr() || ev.JA4 != expectedJA4(t)["curl-https.bin"][0] {
			t.Errorf("https event src %v ja4 %s", ev.SrcIP, ev.JA4)
		}
	})
}

// A datagram's source is forgeable: it is recorded as unverified, unless a
// rule whose payload pattern vouches for the source (verifies_source)
// matches it. TCP, with its handshake, is never unverified.
func TestUDPSourcesUnverified(t *testing.T) {
	rules, err := classify.Parse("rules.yaml", []byte(`rules:
  - name: known-udp-beacon
    family: examplebot
    verifies_source: true
    match:
      protocol: udp
      body_prefix_hex: "deadbeef"
  - name: port-only
    family: portbot
    match:
      protocol: udp
      body_length: 5
`))
	if err != nil {
		t.Fatal(err)
	}
	s := startSink(t, KindUDP, func(o *Options) { o.Rules = rules })
	c, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		payload    string
		family     string
		unverified bool
	}{
		{"spoofed anything", classify.Unknown, true},
		{"five!", "portbot", true}, // matched, but the rule does not vouch
		{"\xde\xad\xbe\xefhello", "examplebot", false},
	} {
		if _, err := c.Write([]byte(tc.payload)); err != nil {
			t.Fatal(err)
		}
		ev := s.next(t)
		if ev.Family != tc.family || ev.Unverified != tc.unverified {
			t.Errorf("datagram %q: family %q unverified %v; want %q, %v", tc.payload, ev.Family, ev.Unverified, tc.family, tc.unverified)
		}
	}
	tcp := startSink(t, KindTCP, nil)
	tc, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc.Write([]byte("hello"))
	tc.Close()
	if ev := tcp.next(t); ev.Unverified {
		t.Error("a TCP connection was recorded as unverified")
	}
}
