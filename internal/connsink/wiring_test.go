package connsink

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/classify"
)

func TestIndicatorAndRuleReload(t *testing.T) {
	s := startSink(t, KindHTTP, func(o *Options) {
		o.Indicator = func(host string) (string, string, bool) {
			if host == "c2.example" || strings.HasSuffix(host, ".c2.example") {
				return "zeus", "case-42", true
			}
			return "", "", false
		}
	})
	get := func(host string) string {
		return "GET /gate.php HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: Z\r\nConnection: close\r\n\r\n"
	}
	rawExchange(t, s, get("WWW.C2.Example:8080"))
	ev := s.next(t)
	if ev.Family != "zeus" || ev.Tag != "indicator" || ev.Case != "case-42" {
		t.Errorf("seized host: family %q tag %q case %q", ev.Family, ev.Tag, ev.Case)
	}
	rawExchange(t, s, get("elsewhere.example"))
	if ev := s.next(t); ev.Family != "unknown" || ev.Case != "" {
		t.Errorf("other host: family %q case %q", ev.Family, ev.Case)
	}

	rules, err := classify.Parse("new.yaml", []byte("rules:\n  - name: zeus-gate\n    family: zeus\n    tag: gate\n    confidence: 1\n    match:\n      indicator_family: zeus\n      uri: '^/gate\\.php$'\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.SetRules(rules)
	s.SetRules(nil) // ignored
	rawExchange(t, s, get("c2.example"))
	if ev := s.next(t); ev.Tag != "gate" || ev.Confidence != 1 {
		t.Errorf("after reload: tag %q confidence %v", ev.Tag, ev.Confidence)
	}
}

func TestIPv6AndMetricNames(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	ln.Close()
	s := startSink(t, KindHTTP, func(o *Options) { o.Addr = "[::1]:0"; o.Name = "v6" })
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
	if got, _ := io.ReadAll(c); !strings.HasPrefix(string(got), "HTTP/1.1 200") {
		t.Fatalf("response %q", got)
	}
	ev := s.next(t)
	if ev.SrcIP.String() != "::1" || ev.DstIP.String() != "::1" {
		t.Errorf("src %v dst %v", ev.SrcIP, ev.DstIP)
	}
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 0 || l[0].GetValue() != "v6" {
				t.Errorf("%s has labels %v, want listener=v6", mf.GetName(), l)
			}
		}
	}
	for _, want := range []string{"takedown_conn_accepted_total", "takedown_conn_events_total", "takedown_conn_active_connections"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
}

func TestTwoListenersShareOneRegistry(t *testing.T) {
	a := startSink(t, KindHTTP, func(o *Options) { o.Name = "a" })
	b := startSink(t, KindTCP, func(o *Options) { o.Name = "b"; o.Registerer = a.reg })
	rawExchange(t, a, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
	a.next(t)
	c := dialFrom(t, "127.0.0.1", b.Addr().String())
	c.Write([]byte("x"))
	c.(*net.TCPConn).CloseWrite()
	io.ReadAll(c)
	b.next(t)
	if a.counter(t, "events") != 1 || b.counter(t, "events") != 1 {
		t.Errorf("events a=%v b=%v, want 1 each", a.counter(t, "events"), b.counter(t, "events"))
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no handoff", Options{Kind: KindHTTP, Addr: "127.0.0.1:0"}},
		{"bad kind", Options{Kind: "ftp", Addr: "127.0.0.1:0"}},
		{"https without data dir", Options{Kind: KindHTTPS, Addr: "127.0.0.1:0"}},
		{"redirect response", Options{Kind: KindHTTP, Addr: "127.0.0.1:0", Response: Response{Status: 302}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no handoff" {
				tt.opts.Handoff = startSink(t, KindUDP, nil).q
			}
			if l, err := New(tt.opts); err == nil {
				l.ln.Close()
				t.Error("New accepted")
			}
		})
	}
}

func BenchmarkHTTPKeepAlive(b *testing.B) {
	s := startSink(b, KindHTTP, func(o *Options) { o.Limits.MaxRequestsPerConn = 1 << 30 })
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-s.q.C():
			case <-done:
				return
			}
		}
	}()
	c := dialFrom(b, "127.0.0.1", s.Addr().String())
	req := []byte("GET /login.php HTTP/1.1\r\nHost: c2.example\r\nUser-Agent: Mozilla/4.0\r\nAccept: */*\r\n\r\n")
	resp := make([]byte, len(s.resp.keep))
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
}
