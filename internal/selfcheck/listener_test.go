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

// PROXY trust and X-Forwarded-For trust are separate lists: a peer trusted
// for one is not trusted for the other.
func TestTrustSplit(t *testing.T) {
	xff := "X-Forwarded-For: " + infected + "\r\n"
	tests := []struct {
		name         string
		proxies, fwd []string
		local        string
		prefix       []byte
		header       string
		status       int
		want         string // address looked up, "" for none
	}{
		{name: "proxy-trusted peer, XFF", proxies: []string{"127.0.0.1"}, local: "127.0.0.1", header: xff, status: 200, want: "127.0.0.1"},
		{name: "proxy-trusted peer, PROXY and XFF", proxies: []string{"127.0.0.1"}, local: "127.0.0.1", prefix: proxyV2(clean), header: xff, status: 200, want: clean},
		{name: "proxy-trusted loopback /8, XFF", proxies: []string{"127.0.0.0/8", "::1"}, local: "127.0.0.3", header: xff, status: 200, want: "127.0.0.3"},
		{name: "forwarder, XFF", fwd: []string{"127.0.0.1"}, local: "127.0.0.1", header: xff, status: 200, want: infected},
		{name: "forwarder, PROXY", fwd: []string{"127.0.0.1"}, local: "127.0.0.1", prefix: proxyV2(infected), status: 400},
		{name: "forwarder behind a trusted proxy", proxies: []string{"127.0.0.1"}, fwd: []string{clean}, local: "127.0.0.1", prefix: proxyV2(clean), header: xff, status: 200, want: infected},
		{name: "untrusted proxy source, XFF", proxies: []string{"127.0.0.1"}, fwd: []string{"10.0.0.0/8"}, local: "127.0.0.1", prefix: proxyV2(clean), header: xff, status: 200, want: clean},
		{name: "nothing trusted", local: "127.0.0.1", header: xff, status: 200, want: "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fixtureStore()
			s := startServer(t, st, func(o *Options) {
				o.TrustedProxies, o.TrustedForwarders = nil, nil
				if tc.proxies != nil {
					o.TrustedProxies = trust(t, tc.proxies...)
				}
				if tc.fwd != nil {
					o.TrustedForwarders = trust(t, tc.fwd...)
				}
			})
			resp, body := rawRequest(t, s.Addr().String(), tc.local, tc.prefix, APIPath, tc.header)
			if resp == nil || resp.StatusCode != tc.status {
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
		})
	}
}

// Through a trusted proxy, the PROXY source is the rate-limited client:
// the addresses of one IPv6 /64 share a budget, other /64s and IPv4
// clients have their own, and the proxy's own address is not charged.
func TestRateLimitBehindProxy(t *testing.T) {
	const burst = 4
	s := startServer(t, fixtureStore(), func(o *Options) { o.RateLimit = RateLimit{Rate: 0.001, Burst: burst} })
	addr := s.Addr().String()
	code := func(prefix []byte) int {
		resp, body := rawRequest(t, addr, "127.0.0.1", prefix, APIPath, "X-Forwarded-For: 192.0.2.1\r\n")
		if resp == nil {
			t.Fatalf("no response: %s", body)
		}
		return resp.StatusCode
	}
	answered := 0
	for i := range 3 * burst {
		if c := code(proxyV2(fmt.Sprintf("2001:db8:aa:bb:%x::1", i+1))); c == 200 {
			answered++
		} else if c != 429 {
			t.Fatalf("status %d", c)
		}
	}
	if answered != burst {
		t.Fatalf("%d checks answered from one /64 through the proxy; want %d", answered, burst)
	}
	for _, other := range []string{"2001:db8:aa:bc::1", "198.51.100.1", "198.51.100.2"} {
		if c := code(proxyV2(other)); c != 200 {
			t.Errorf("%s, a client of its own, got %d", other, c)
		}
	}
	// The proxy's own health checks (no header) have their own bucket.
	if c := code(nil); c != 200 {
		t.Errorf("the proxy itself got %d", c)
	}
}

// SetTrust (a reload) changes whom the page believes for the requests and
// connections that follow: a forwarder removed from the list is no longer
// believed, a proxy added is.
func TestSetTrust(t *testing.T) {
	st := fixtureStore()
	s := startServer(t, st, func(o *Options) { o.TrustedProxies, o.TrustedForwarders = nil, trust(t, "127.0.0.1") })
	addr := s.Addr().String()
	steps := []struct {
		name                string
		proxies, forwarders []string
		prefix              []byte
		status              int
		want                string
	}{
		{name: "forwarder listed", status: 200, want: infected},
		{name: "forwarder removed", proxies: nil, forwarders: []string{}, status: 200, want: "127.0.0.1"},
		{name: "PROXY from an unlisted peer", prefix: proxyV2(clean), status: 400},
		{name: "proxy added", proxies: []string{"127.0.0.1"}, forwarders: []string{}, prefix: proxyV2(clean), status: 200, want: clean},
	}
	for _, step := range steps {
		if step.forwarders != nil {
			var p, f *proxyproto.Trust
			if len(step.proxies) > 0 {
				p = trust(t, step.proxies...)
			}
			if len(step.forwarders) > 0 {
				f = trust(t, step.forwarders...)
			}
			s.SetTrust(p, f)
		}
		st.mu.Lock()
		st.asked = nil
		st.mu.Unlock()
		resp, body := rawRequest(t, addr, "127.0.0.1", step.prefix, APIPath, "X-Forwarded-For: "+infected+"\r\n")
		if resp == nil || resp.StatusCode != step.status {
			t.Fatalf("%s: response %v: %s", step.name, resp, body)
		}
		if asked := st.Asked(); step.want != "" && (len(asked) != 1 || asked[0] != netip.MustParseAddr(step.want)) {
			t.Fatalf("%s: looked up %v, want %s", step.name, asked, step.want)
		}
	}
}
