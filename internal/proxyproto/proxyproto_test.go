package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a v2 header by hand (not with AppendV2, which it checks).
func v2(verCmd, famTr byte, body ...byte) []byte {
	b := append([]byte{}, sigV2[:]...)
	b = append(b, verCmd, famTr, byte(len(body)>>8), byte(len(body)))
	return append(b, body...)
}

var (
	inet4Body = []byte{192, 0, 2, 7, 198, 51, 100, 1, 0x30, 0x39, 0, 53} // 192.0.2.7:12345 -> 198.51.100.1:53
	inet6Body = append(append(append(
		netip.MustParseAddr("2001:db8::7").AsSlice(),
		netip.MustParseAddr("2001:db8::53").AsSlice()...), 0x30, 0x39), 0, 53)
)

func TestParse(t *testing.T) {
	ap := netip.MustParseAddrPort
	tlv := append(append([]byte{}, inet4Body...), 0x04, 0x00, 0x02, 'h', 'i') // PP2_TYPE_NOOP TLV
	tests := []struct {
		name    string
		in      []byte
		want    Header
		wantN   int
		wantErr error
	}{
		{"v2 tcp4", v2(0x21, 0x11, inet4Body...), Header{2, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:53")}, 28, nil},
		{"v2 udp4 with payload after", append(v2(0x21, 0x12, inet4Body...), "dns"...), Header{2, CmdProxy, TransportUDP, ap("192.0.2.7:12345"), ap("198.51.100.1:53")}, 28, nil},
		{"v2 udp6", v2(0x21, 0x22, inet6Body...), Header{2, CmdProxy, TransportUDP, ap("[2001:db8::7]:12345"), ap("[2001:db8::53]:53")}, 52, nil},
		{"v2 with TLV", v2(0x21, 0x11, tlv...), Header{2, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:53")}, 16 + len(tlv), nil},
		{"v2 local ignores addresses", v2(0x20, 0x11, inet4Body...), Header{Version: 2, Command: CmdLocal, Transport: TransportTCP}, 28, nil},
		{"v2 local unspec", v2(0x20, 0x00), Header{Version: 2, Command: CmdLocal}, 16, nil},
		{"v2 unix", v2(0x21, 0x31, make([]byte, 216)...), Header{Version: 2, Command: CmdProxy, Transport: TransportTCP}, 232, nil},
		{"v2 version 1 nibble", v2(0x11, 0x11, inet4Body...), Header{}, 0, ErrMalformed},
		{"v2 unknown command", v2(0x22, 0x11, inet4Body...), Header{}, 0, ErrMalformed},
		{"v2 unknown family", v2(0x21, 0x41, inet4Body...), Header{}, 0, ErrMalformed},
		{"v2 unknown transport", v2(0x21, 0x13, inet4Body...), Header{}, 0, ErrMalformed},
		{"v2 inet too short", v2(0x21, 0x11, inet4Body[:11]...), Header{}, 0, ErrMalformed},
		{"v2 inet6 too short", v2(0x21, 0x21, inet4Body...), Header{}, 0, ErrMalformed},
		{"v2 cut in body", v2(0x21, 0x11, inet4Body...)[:20], Header{}, 0, ErrIncomplete},
		{"v2 cut in fixed part", v2(0x21, 0x11, inet4Body...)[:14], Header{}, 0, ErrIncomplete},
		{"v2 signature prefix", sigV2[:5], Header{}, 0, ErrIncomplete},
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 12345 80\r\nGET /"), Header{1, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:80")}, 44, nil},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::53 12345 53\r\n"), Header{1, CmdProxy, TransportTCP, ap("[2001:db8::7]:12345"), ap("[2001:db8::53]:53")}, 46, nil},
		{"v1 unknown", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), Header{Version: 1, Command: CmdLocal, Transport: TransportTCP}, 35, nil},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::7 2001:db8::53 1 2\r\n"), Header{}, 0, ErrMalformed},
		{"v1 bad port", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 65536 80\r\n"), Header{}, 0, ErrMalformed},
		{"v1 leading zero port", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 080 80\r\n"), Header{}, 0, ErrMalformed},
		{"v1 missing CR", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 1 80\n"), Header{}, 0, ErrMalformed},
		{"v1 too few fields", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n"), Header{}, 0, ErrMalformed},
		{"v1 too many fields", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n"), Header{}, 0, ErrMalformed},
		{"v1 bad protocol", []byte("PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n"), Header{}, 0, ErrMalformed},
		{"v1 no end within 107 bytes", []byte("PROXY TCP4 " + strings.Repeat("1", 120)), Header{}, 0, ErrMalformed},
		{"v1 incomplete", []byte("PROXY TCP4 192.0.2.7"), Header{}, 0, ErrIncomplete},
		{"v1 signature prefix", []byte("PRO"), Header{}, 0, ErrIncomplete},
		{"not a header: dns", []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}, Header{}, 0, ErrNoHeader},
		{"not a header: http", []byte("GET / HTTP/1.1\r\n"), Header{}, 0, ErrNoHeader},
		{"not a header: POST", []byte("POST / HTTP/1.1\r\n"), Header{}, 0, ErrNoHeader},
		{"empty", nil, Header{}, 0, ErrNoHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
			}
			if h != tt.want || n != tt.wantN {
				t.Errorf("Parse = %+v, %d; want %+v, %d", h, n, tt.want, tt.wantN)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	ap := netip.MustParseAddrPort
	headers := []Header{
		{Version: 2, Command: CmdProxy, Transport: TransportUDP, Src: ap("203.0.113.9:5353"), Dst: ap("127.0.0.1:53")},
		{Version: 2, Command: CmdProxy, Transport: TransportTCP, Src: ap("[2001:db8::1]:1"), Dst: ap("[::1]:80")},
		{Version: 2, Command: CmdLocal},
	}
	for _, h := range headers {
		got, n, err := ParseV2(AppendV2(nil, h))
		if err != nil || got != h || n != len(AppendV2(nil, h)) {
			t.Errorf("v2 round trip of %+v = %+v, %d, %v", h, got, n, err)
		}
		if h.Transport == TransportUDP {
			continue // v1 is TCP only
		}
		h.Version = 1
		if h.Command == CmdLocal {
			h.Transport = TransportTCP
		}
		got, _, err = Parse(AppendV1(nil, h))
		if err != nil || got != h {
			t.Errorf("v1 round trip of %+v = %+v, %v (%q)", h, got, err, AppendV1(nil, h))
		}
	}
}

func TestParseV2DoesNotAllocate(t *testing.T) {
	good := v2(0x21, 0x22, inet6Body...)
	bad := v2(0x21, 0x41, inet4Body...)
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = ParseV2(good)
		_, _, _ = ParseV2(bad)
		_, _, _ = ParseV2(good[:20])
	})
	if allocs != 0 {
		t.Errorf("ParseV2 allocates %v times per run", allocs)
	}
}

// blockingReader returns its bytes, then blocks for ever, as a client that
// sent a header and waits for an answer.
type blockingReader struct {
	b []byte
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		select {} // a test that reaches here times out: Read over-read
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestRead(t *testing.T) {
	ap := netip.MustParseAddrPort
	big := v2(0x21, 0x11, append(append([]byte{}, inet4Body...), make([]byte, 8000)...)...)
	tests := []struct {
		name     string
		in       []byte
		want     Header
		wantErr  error
		wantRest string
	}{
		{"v1 then payload", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 12345 80\r\nGET /"), Header{1, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:80")}, nil, "GET /"},
		{"v1 alone, client waits", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 12345 80\r\n"), Header{1, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:80")}, nil, ""},
		{"v2 then payload", append(v2(0x21, 0x11, inet4Body...), "x"...), Header{2, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:53")}, nil, "x"},
		{"v2 larger than buffer", append(big, "y"...), Header{2, CmdProxy, TransportTCP, ap("192.0.2.7:12345"), ap("198.51.100.1:53")}, nil, "y"},
		{"no header, nothing consumed", []byte("GET / HTTP/1.0\r\n\r\n"), Header{}, ErrNoHeader, "GET / HTTP/1.0\r\n\r\n"},
		{"v1 overlong", []byte("PROXY TCP4 " + strings.Repeat("9", 200) + "\r\n"), Header{}, ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src io.Reader = &blockingReader{b: tt.in}
			if tt.wantRest != "" || tt.wantErr != nil {
				src = bytes.NewReader(tt.in) // EOF after the rest
			}
			r := bufio.NewReaderSize(src, 4096)
			h, err := Read(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Read error = %v, want %v", err, tt.wantErr)
			}
			if h != tt.want {
				t.Errorf("Read = %+v, want %+v", h, tt.want)
			}
			if _, blocking := src.(*blockingReader); blocking {
				if r.Buffered() != 0 {
					t.Errorf("%d bytes left buffered after the header", r.Buffered())
				}
				return
			}
			if tt.wantErr == nil || errors.Is(tt.wantErr, ErrNoHeader) {
				rest, _ := io.ReadAll(r)
				if string(rest) != tt.wantRest {
					t.Errorf("rest of stream = %q, want %q", rest, tt.wantRest)
				}
			}
		})
	}
}

func TestReadTruncated(t *testing.T) {
	full := v2(0x21, 0x11, inet4Body...)
	for _, cut := range []int{3, 15, 20} {
		_, err := Read(bufio.NewReader(bytes.NewReader(full[:cut])))
		if err == nil {
			t.Errorf("Read of %d of %d bytes: no error", cut, len(full))
		}
	}
}

func TestTrust(t *testing.T) {
	tr, err := ParseTrust([]string{"127.0.0.1", "10.0.0.0/8", "2001:db8::/32", " ::1 "})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"10.200.3.4", true},
		{"::ffff:10.1.1.1", true},
		{"11.0.0.1", false},
		{"2001:db8:1::5", true},
		{"2001:db9::5", false},
		{"::1", true},
	}
	for _, tt := range tests {
		if got := tr.Trusted(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Trusted(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	var none *Trust
	if none.Trusted(netip.MustParseAddr("127.0.0.1")) {
		t.Error("nil Trust trusts 127.0.0.1")
	}
	if _, err := ParseTrust([]string{"10.0.0.0/33", "nonsense", "1.2.3.4"}); err == nil ||
		!strings.Contains(err.Error(), "10.0.0.0/33") || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("ParseTrust of bad input: error %v, want both bad entries named", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(v2(0x21, 0x11, inet4Body...))
	f.Add(v2(0x21, 0x22, inet6Body...))
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 12345 80\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte{0x12, 0x34})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			if n != 0 || h != (Header{}) {
				t.Fatalf("error %v with header %+v, n %d", err, h, n)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		// Read must agree with Parse on the same bytes.
		rh, rerr := Read(bufio.NewReader(bytes.NewReader(b)))
		if rerr != nil || rh != h {
			t.Fatalf("Read = %+v, %v; Parse = %+v", rh, rerr, h)
		}
		// A proxied header re-encodes to one that parses the same.
		if h.Proxied() && h.Version == 2 {
			h2, _, err := ParseV2(AppendV2(nil, h))
			if err != nil || h2 != h {
				t.Fatalf("re-encode of %+v = %+v, %v", h, h2, err)
			}
		}
	})
}
