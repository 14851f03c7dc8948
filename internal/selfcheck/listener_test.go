package selfcheck

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/proxyproto"
)

// startServer runs a Server on a loopback port that trusts PROXY headers
// from 127.0.0.1 only.
func startServer(tb testing.TB, st Store, mod func(*Options)) *Server {
	tb.Helper()
	o := Options{Listen: "127.0.0.1:0", Lookup: st, Now: func() time.Time { return now },
		TrustedProxies: trust(tb, "127.0.0.1"), RateLimit: RateLimit{Burst: 1000}, ProxyHeaderTimeout: time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("run: %v", err)
		}
	})
	return s
}

// rawRequest dials addr from local (an address on lo, "" for any), writes
// prefix then an HTTP request for path, and returns the response.
func rawRequest(tb testing.TB, addr, local string, prefix []byte, path string, header string) (*http.Response, string) {
	tb.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.DialContext(tb.Context(), "tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: selfcheck.test\r\nConnection: close\r\n%s\r\n", path, header)
	if _, err := c.Write(append(prefix, req...)); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func proxyV2(src string) []byte {
	return proxyproto.AppendV2(nil, proxyproto.Header{Version: 2, Command: proxyproto.CmdProxy, Transport: proxyproto.TransportTCP,
		Src: netip.AddrPortFrom(netip.MustParseAddr(src), 40000), Dst: netip.MustParseAddrPort("127.0.0.1:8082")})
}

func TestListenerProxyProtocol(t *testing.T) {
	st := fixtureStore()
	s := startServer(t, st, nil)
	addr := s.Addr().String()
	tests := []struct {
		name, local string
		prefix      []byte
		header      string
		status      int    // 0: no HTTP response at all
		want        string // address looked up, "" for none
	}{
		{name: "v2 from trusted", local: "127.0.0.1", prefix: proxyV2(infected), status: 200, want: infected},
		{name: "v2 ipv6 from trusted", local: "127.0.0.1", prefix: proxyV2(second), status: 200, want: second},
		{name: "v1 from trusted", local: "127.0.0.1", prefix: []byte("PROXY TCP4 " + resolver + " 127.0.0.1 4000 8082\r\n"), status: 200, want: resolver},
		{name: "local command from trusted", local: "127.0.0.1", prefix: proxyproto.AppendV2(nil, proxyproto.Header{Version: 2, Command: proxyproto.CmdLocal}), status: 200, want: "127.0.0.1"},
		{name: "no header from trusted", local: "127.0.0.1", status: 200, want: "127.0.0.1"},
		{name: "v2 from untrusted", local: "127.0.0.2", prefix: proxyV2(infected), status: 400},
		{name: "v1 from untrusted", local: "127.0.0.2", prefix: []byte("PROXY TCP4 " + infected + " 127.0.0.1 4000 8082\r\n"), status: 400},
		{name: "xff from untrusted", local: "127.0.0.2", header: "X-Forwarded-For: " + infected + "\r\nX-Real-IP: " + infected + "\r\n", status: 200, want: "127.0.0.2"},
		{name: "malformed v1 from trusted", local: "127.0.0.1", prefix: []byte("PROXY TCP4 999.1.1.1 127.0.0.1 4000 8082\r\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st.mu.Lock()
			st.asked = nil
			st.mu.Unlock()
			resp, body := rawRequest(t, addr, tc.local, tc.prefix, APIPath, tc.header)
			if tc.status == 0 {
				if resp != nil {
					t.Fatalf("got a response %d: %s", resp.StatusCode, body)
				}
			} else if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v: %s", resp, body)
			}
			asked := st.Asked()
			if tc.want == "" {
				if len(asked) > 0 {
					t.Fatalf("looked up %v", asked)
				}
				return
			}
			if len(asked) != 1 || asked[0] != netip.MustParseAddr(tc.want) {
				t.Fatalf("looked up %v, want %s", asked, tc.want)
			}
			if a := decodeAnswer(t, body); a.Address != tc.want {
				t.Fatalf("answer for %s", a.Address)
			}
		})
	}
	if n := counterValue(t, s.m.refused.WithLabelValues(reasonProxy)); n != 1 {
		t.Errorf("bad PROXY headers counted %v, want 1", n)
	}
}

// A trusted peer that sends nothing does not hold up other connections,
// and is cut off after the header timeout.
func TestListenerSlowProxy(t *testing.T) {
	st := fixtureStore()
	s := startServer(t, st, nil)
	slow, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	resp, body := rawRequest(t, s.Addr().String(), "127.0.0.1", proxyV2(infected), APIPath, "")
	if resp == nil || resp.StatusCode != 200 || !strings.Contains(body, infected) {
		t.Fatalf("a silent connection held up another: %v %s", resp, body)
	}
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := slow.Read(make([]byte, 1)); err == nil {
		t.Fatal("the silent connection got data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the silent connection was never closed")
	}
}

func TestRunCancelled(t *testing.T) {
	s, err := New(Options{Listen: "127.0.0.1:0", Lookup: fixtureStore()})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still listening after Run with a cancelled context")
	}
}
