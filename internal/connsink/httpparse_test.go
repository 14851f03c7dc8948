package connsink

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseHead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		check   func(t *testing.T, r *request)
	}{
		{"simple", "GET /login.php?a=1 HTTP/1.1\r\nHost: C2.example:80\r\nUser-Agent: Bot\r\nAccept: */*\r\n\r\n", nil, func(t *testing.T, r *request) {
			if string(r.method) != "GET" || string(r.target) != "/login.php?a=1" || string(r.host) != "C2.example:80" || string(r.agent) != "Bot" {
				t.Errorf("%q %q %q %q", r.method, r.target, r.host, r.agent)
			}
			if string(r.names) != "Host,User-Agent,Accept" || r.contentLength != -1 || r.close {
				t.Errorf("names %q cl %d close %v", r.names, r.contentLength, r.close)
			}
		}},
		{"bare LF and leading empty line", "\r\nPOST / HTTP/1.1\nContent-Length: 96\nconnection: Keep-Alive, CLOSE\n\n", nil, func(t *testing.T, r *request) {
			if r.contentLength != 96 || !r.close || string(r.method) != "POST" {
				t.Errorf("cl %d close %v method %q", r.contentLength, r.close, r.method)
			}
		}},
		{"http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", nil, func(t *testing.T, r *request) {
			if !r.http10 || r.close {
				t.Errorf("http10 %v close %v", r.http10, r.close)
			}
		}},
		{"chunked overrides length", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n", nil, func(t *testing.T, r *request) {
			if !r.chunked || r.contentLength != -1 || !r.expect100 {
				t.Errorf("chunked %v cl %d expect %v", r.chunked, r.contentLength, r.expect100)
			}
		}},
		{"same length twice is fine", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", nil, nil},
		{"value whitespace trimmed", "GET / HTTP/1.1\r\nUser-Agent: \t a b \t\r\n\r\n", nil, func(t *testing.T, r *request) {
			if string(r.agent) != "a b" {
				t.Errorf("agent %q", r.agent)
			}
		}},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\n", errBadRequest, nil},
		{"no version", "GET /\r\n\r\n", errBadRequest, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", errBadRequest, nil},
		{"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", errBadRequest, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", errBadRequest, nil},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", errBadRequest, nil},
		{"gzip only", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", errBadRequest, nil},
		{"control char in target", "GET /a\x01b HTTP/1.1\r\n\r\n", errBadRequest, nil},
		{"bad method", "G(T / HTTP/1.1\r\n\r\n", errBadRequest, nil},
		{"too many fields", "GET / HTTP/1.1\r\n" + string(bytes.Repeat([]byte("A: b\r\n"), maxHeaderFields+1)) + "\r\n", errTooManyHdrs, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			n := findHeadEnd(in, 0)
			if n != len(in) {
				t.Fatalf("findHeadEnd = %d, want %d", n, len(in))
			}
			var r request
			err := parseHead(in[:n], &r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && tt.check != nil {
				tt.check(t, &r)
			}
		})
	}
}

func TestFindHeadEndIncremental(t *testing.T) {
	full := []byte("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT")
	want := len(full) - len("NEXT")
	// Feed it one byte at a time, as a slow client would.
	scanned := 0
	for i := 1; i <= len(full); i++ {
		n := findHeadEnd(full[:i], scanned)
		scanned = i
		if n > 0 {
			if n != want || i != want {
				t.Fatalf("found end %d after %d bytes, want %d", n, i, want)
			}
			return
		}
	}
	t.Fatal("end never found")
}

func TestParseChunkSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{{"0", 0, true}, {"1a", 26, true}, {"FF;name=v", 255, true}, {"", 0, false}, {"g", 0, false}, {"1234567890abcdef", 0, false}}
	for _, tt := range tests {
		n, ok := parseChunkSize([]byte(tt.in))
		if n != tt.want || ok != tt.ok {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseHead feeds arbitrary bytes to the request-head parser: no
// panic, and a head it accepts has a method and target inside the input.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /login.php HTTP/1.1\r\nContent-Length: 96\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("\n\nGET / HTTP/1.0\nConnection: keep-alive\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := findHeadEnd(b, 0)
		if n < 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("head end %d beyond input %d", n, len(b))
		}
		var r request
		if parseHead(b[:n], &r) != nil {
			return
		}
		if len(r.method) == 0 || len(r.target) == 0 || !bytes.Contains(b[:n], r.target) {
			t.Fatalf("accepted head with method %q target %q", r.method, r.target)
		}
		if r.chunked && r.contentLength != -1 {
			t.Fatal("chunked with a content length")
		}
	})
}

func BenchmarkParseHead(b *testing.B) {
	in := []byte("GET /login.php HTTP/1.1\r\nHost: c2.example\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 6.0)\r\nAccept: */*\r\nConnection: close\r\n\r\n")
	var r request
	for b.Loop() {
		n := findHeadEnd(in, 0)
		if err := parseHead(in[:n], &r); err != nil {
			b.Fatal(err)
		}
	}
}
