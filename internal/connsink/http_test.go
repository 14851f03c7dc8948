package connsink

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/testtool"
)

func TestHTTPWithCurl(t *testing.T) {
	curl := testtool.Need(t, "curl", "curl")
	s := startSink(t, KindHTTP, nil)
	url := fmt.Sprintf("http://c2.example:%d/login.php", s.port())
	resolve := fmt.Sprintf("c2.example:%d:127.0.0.1", s.port())
	body := bytes.Repeat([]byte{0x5a}, 96)
	bodySum := sha256.Sum256(body)

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, ev event.Event)
	}{
		{"GET", []string{"-A", "Bot/1.0"}, func(t *testing.T, ev event.Event) {
			if ev.HTTPMethod != "GET" || ev.HTTPURL != "/login.php" || ev.HTTPAgent != "Bot/1.0" {
				t.Errorf("method/url/agent = %q %q %q", ev.HTTPMethod, ev.HTTPURL, ev.HTTPAgent)
			}
			if ev.Family != "unknown" || ev.PayloadSize != 0 || ev.PayloadSHA256 != "" {
				t.Errorf("family %q payload %d %q", ev.Family, ev.PayloadSize, ev.PayloadSHA256)
			}
		}},
		{"Rustock POST", []string{"-A", "Mozilla/4.0", "-H", "Content-Type: application/octet-stream", "--data-binary", "@-"}, func(t *testing.T, ev event.Event) {
			if ev.HTTPMethod != "POST" || ev.ContentLength != 96 || ev.PayloadSize != 96 {
				t.Errorf("method %q content length %d payload %d", ev.HTTPMethod, ev.ContentLength, ev.PayloadSize)
			}
			if ev.PayloadSHA256 != hex.EncodeToString(bodySum[:]) || !bytes.Equal(ev.PayloadPrefix, body) {
				t.Errorf("payload hash %s prefix %x", ev.PayloadSHA256, ev.PayloadPrefix)
			}
			if ev.Family != "rustock" || ev.Tag != "rustock-http-beacon" || ev.Confidence != 0.9 {
				t.Errorf("classified %q/%q/%v, want rustock", ev.Family, ev.Tag, ev.Confidence)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-sS", "-o", "/dev/stderr", "-w", "%{http_code} %{size_download}", "--resolve", resolve}, tt.args...)
			cmd := exec.CommandContext(t.Context(), curl, append(args, url)...)
			cmd.Stdin = bytes.NewReader(body)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, stderr.String())
			}
			if string(out) != "200 0" {
				t.Errorf("curl got %q, want 200 with an empty body", out)
			}
			ev := s.next(t)
			if ev.Protocol != "http" || ev.Transport != "tcp" || ev.SrcIP.String() != "127.0.0.1" || ev.SrcPort == 0 {
				t.Errorf("protocol %q transport %q src %v:%d", ev.Protocol, ev.Transport, ev.SrcIP, ev.SrcPort)
			}
			if ev.DstPort != uint16(s.port()) || ev.Sensor != "test" || ev.ID != "" || ev.Timestamp.IsZero() {
				t.Errorf("dst port %d sensor %q id %q ts %v", ev.DstPort, ev.Sensor, ev.ID, ev.Timestamp)
			}
			if ev.HTTPHost != fmt.Sprintf("c2.example:%d", s.port()) {
				t.Errorf("host %q", ev.HTTPHost)
			}
			if !strings.HasPrefix(ev.HeaderNames, "Host,User-Agent,Accept") {
				t.Errorf("header names %q", ev.HeaderNames)
			}
			if ev.HeaderHash != HeaderHash([]byte(ev.HeaderNames)) || len(ev.HeaderHash) != 12 {
				t.Errorf("header hash %q of %q", ev.HeaderHash, ev.HeaderNames)
			}
			tt.check(t, ev)
		})
	}
}

// rawExchange writes req on a fresh connection and reads until the server
// closes it.
func rawExchange(t *testing.T, s *sink, req string) string {
	t.Helper()
	c := dialFrom(t, "127.0.0.1", s.Addr().String())
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestHTTPKeepAliveAndPipelining(t *testing.T) {
	s := startSink(t, KindHTTP, nil)
	c := dialFrom(t, "127.0.0.1", s.Addr().String())
	br := bufio.NewReader(c)
	// Three requests in one write, the middle one with a chunked body,
	// then a fourth after reading the answers.
	pipelined := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: y\r\n\r\n" +
		"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(c, pipelined); err != nil {
		t.Fatal(err)
	}
	for i, method := range []string{"GET", "POST", "HEAD"} {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Errorf("response %d: status %d close %v", i, resp.StatusCode, resp.Close)
		}
	}
	io.WriteString(c, "GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Close {
		t.Error("response to Connection: close does not close")
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("bytes after the last response: %q", rest)
	}
	want := []struct{ method, url, payload string }{{"GET", "/a", ""}, {"POST", "/b", "hello world"}, {"HEAD", "/c", ""}, {"GET", "/d", ""}}
	for _, w := range want {
		ev := s.next(t)
		if ev.HTTPMethod != w.method || ev.HTTPURL != w.url || string(ev.PayloadPrefix) != w.payload {
			t.Errorf("event %s %s %q, want %s %s %q", ev.HTTPMethod, ev.HTTPURL, ev.PayloadPrefix, w.method, w.url, w.payload)
		}
	}
}

func TestHTTPBadInput(t *testing.T) {
	s := startSink(t, KindHTTP, func(o *Options) { o.Limits.MaxHeaderBytes = 1024; o.Limits.MaxBodyBytes = 100 })
	tests := []struct {
		name, req, status string
		check             func(t *testing.T, ev event.Event)
	}{
		{"not http", "\x16\x03\x01garbage\n\n", "HTTP/1.1 400 ", func(t *testing.T, ev event.Event) {
			if !bytes.HasPrefix(ev.PayloadPrefix, []byte("\x16\x03\x01garbage")) {
				t.Errorf("raw bytes not kept: %q", ev.PayloadPrefix)
			}
		}},
		{"header too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", "HTTP/1.1 431 ", func(t *testing.T, ev event.Event) {
			if ev.PayloadSize != 1024 {
				t.Errorf("payload size %d, want the 1024 header bytes read", ev.PayloadSize)
			}
		}},
		{"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 400 ", nil},
		{"conflicting lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "HTTP/1.1 400 ", nil},
		{"body over the bound closes", "POST /big HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("b", 1000), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close", func(t *testing.T, ev event.Event) {
			if ev.ContentLength != 1000 || ev.PayloadSize != 100 {
				t.Errorf("content length %d payload %d, want 1000 and 100", ev.ContentLength, ev.PayloadSize)
			}
		}},
		{"http/1.0 closes", "GET /old HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rawExchange(t, s, tt.req)
			if !strings.HasPrefix(got, tt.status) {
				t.Errorf("response %q, want prefix %q", got, tt.status)
			}
			ev := s.next(t)
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}
	if s.counter(t, "bad") != 4 {
		t.Errorf("bad requests counted %v, want 4", s.counter(t, "bad"))
	}
}

func TestHTTPEmptyConnectionIsAnEvent(t *testing.T) {
	s := startSink(t, KindHTTP, nil)
	c := dialFrom(t, "127.0.0.1", s.Addr().String())
	c.(*net.TCPConn).CloseWrite()
	io.ReadAll(c)
	ev := s.next(t)
	if ev.Protocol != "http" || ev.HTTPMethod != "" || ev.Family != "unknown" {
		t.Errorf("event %+v", ev)
	}
}

func TestResponseConfig(t *testing.T) {
	s := startSink(t, KindHTTP, func(o *Options) { o.Response = Response{Status: 404, Body: []byte("gone\n")} })
	got := rawExchange(t, s, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	want := "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\ngone\n"
	if got != want {
		t.Errorf("response %q, want %q", got, want)
	}
	for _, status := range []int{301, 302, 307, 101, 500} {
		if _, err := buildResponses(Response{Status: status}); err == nil {
			t.Errorf("status %d accepted", status)
		}
	}
}

func TestDroppedEventsAreCounted(t *testing.T) {
	q := event.NewQueue(1)
	s := startSink(t, KindHTTP, func(o *Options) { o.Handoff = q })
	for range 3 {
		if got := rawExchange(t, s, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("response %q", got)
		}
	}
	if q.Dropped() != 2 || s.counter(t, "dropped") != 2 || s.counter(t, "events") != 3 {
		t.Errorf("queue dropped %d, metric dropped %v events %v; want 2, 2, 3", q.Dropped(), s.counter(t, "dropped"), s.counter(t, "events"))
	}
}

func TestPerSourceCap(t *testing.T) {
	s := startSink(t, KindHTTP, func(o *Options) { o.Limits.MaxConnsPerSource = 2 })
	a := dialFrom(t, "127.0.0.3", s.Addr().String())
	b := dialFrom(t, "127.0.0.3", s.Addr().String())
	c := dialFrom(t, "127.0.0.3", s.Addr().String())
	// The third is closed unserved; the first two still work.
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("third connection read %d bytes", n)
	}
	for _, conn := range []net.Conn{a, b} {
		io.WriteString(conn, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
		got, _ := io.ReadAll(conn)
		if !strings.HasPrefix(string(got), "HTTP/1.1 200") {
			t.Errorf("capped source's first connections got %q", got)
		}
	}
	other := dialFrom(t, "127.0.0.4", s.Addr().String())
	io.WriteString(other, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
	if got, _ := io.ReadAll(other); !strings.HasPrefix(string(got), "HTTP/1.1 200") {
		t.Errorf("other source got %q", got)
	}
	if got := s.counter(t, "rejected", "source_cap"); got != 1 {
		t.Errorf("source_cap rejections %v, want 1", got)
	}
}
