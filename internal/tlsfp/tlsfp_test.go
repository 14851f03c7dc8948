package tlsfp

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectation is one row of testdata/expected.tsv, written by
// testdata/reference.sh from tshark's dissection (see testdata/README.md).
type expectation struct{ file, ja3, ja3md5, ja4, ja4r string }

func loadExpected(tb testing.TB) []expectation {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "expected.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []expectation
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 5 || cols[0] == "file" {
			continue
		}
		out = append(out, expectation{cols[0], cols[1], cols[2], cols[3], cols[4]})
	}
	if len(out) < 5 {
		tb.Fatalf("expected.tsv has %d captures, want at least 5", len(out))
	}
	return out
}

func TestCapturesMatchIndependentReference(t *testing.T) {
	for _, want := range loadExpected(t) {
		t.Run(want.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", want.file))
			if err != nil {
				t.Fatal(err)
			}
			ch, err := ParseRecords(raw)
			if err != nil {
				t.Fatalf("ParseRecords: %v", err)
			}
			s, h := JA3(ch)
			if s != want.ja3 {
				t.Errorf("JA3 string\n got %s\nwant %s", s, want.ja3)
			}
			if h != want.ja3md5 {
				t.Errorf("JA3 = %s, want %s", h, want.ja3md5)
			}
			if got := JA4Raw(ch); got != want.ja4r {
				t.Errorf("JA4_r\n got %s\nwant %s", got, want.ja4r)
			}
			if got := JA4(ch); got != want.ja4 {
				t.Errorf("JA4 = %s, want %s", got, want.ja4)
			}
		})
	}
}

// TestJA4SpecExample checks the worked example of the FoxIO JA4 technical
// details (also the unit test of FoxIO's Rust implementation).
func TestJA4SpecExample(t *testing.T) {
	ch := &ClientHello{
		Version:           0x0303,
		SupportedVersions: []uint16{0x0a0a, 0x0304, 0x0303},
		Ciphers: []uint16{0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
			0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		Extensions: []uint16{0x1a1a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005,
			0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015},
		HasServerName: true,
		ServerName:    "example.com",
		ALPN:          []string{"h2", "http/1.1"},
		SignatureAlgs: []uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601},
	}
	const want = "t13d1516h2_8daaf6152771_e5627efa2ab1"
	if got := JA4(ch); got != want {
		t.Errorf("JA4 = %s, want %s", got, want)
	}
	const wantRaw = "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
	if got := JA4Raw(ch); got != wantRaw {
		t.Errorf("JA4_r\n got %s\nwant %s", got, wantRaw)
	}
}

func TestJA4EdgeCases(t *testing.T) {
	tests := []struct {
		name string
		ch   ClientHello
		want string
	}{
		{"empty hello", ClientHello{Version: 0x0303}, "t12i000000_000000000000_000000000000"},
		{"no sigalgs no underscore", ClientHello{Version: 0x0301, Ciphers: []uint16{0x002f}, Extensions: []uint16{0x000a}},
			"t10i010100_" + hash12("002f") + "_" + hash12("000a")},
		{"non-alnum alpn uses hex", ClientHello{Version: 0x0303, ALPN: []string{"\x00x\xff"}}, "t12i000000_000000000000_000000000000"[:8] + "0f" + "_000000000000_000000000000"},
		{"counts capped at 99", ClientHello{Version: 0x0303, Ciphers: make([]uint16, 150)}, ""},
		{"unknown version", ClientHello{Version: 0x7f00}, "t00i000000_000000000000_000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := JA4(&tt.ch)
			if tt.want == "" {
				if got[4:6] != "99" {
					t.Errorf("JA4 = %s, want cipher count 99", got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("JA4 = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseRecordsErrors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "go-client.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// The same hello split across two records, as a client may send it.
	split := append([]byte{22, 3, 1, 0, 100}, raw[5:105]...)
	split = append(split, 22, 3, 1, byte((len(raw)-105)>>8), byte(len(raw)-105))
	split = append(split, raw[105:]...)
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		wantSNI string
	}{
		{"whole", raw, nil, "beacon.rustock.example"},
		{"split across records", split, nil, "beacon.rustock.example"},
		{"truncated", raw[:len(raw)-1], ErrIncomplete, ""},
		{"header only", raw[:3], ErrIncomplete, ""},
		{"http not tls", []byte("GET / HTTP/1.1\r\n\r\n"), ErrNotTLS, ""},
		{"alert record", []byte{21, 3, 3, 0, 2, 2, 40}, ErrNotTLS, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := ParseRecords(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.ServerName != tt.wantSNI {
				t.Errorf("SNI = %q, want %q", ch.ServerName, tt.wantSNI)
			}
		})
	}
}

func TestIsGREASE(t *testing.T) {
	for _, v := range []uint16{0x0a0a, 0x1a1a, 0xfafa} {
		if !IsGREASE(v) {
			t.Errorf("IsGREASE(%#04x) = false", v)
		}
	}
	for _, v := range []uint16{0x0a1a, 0x1301, 0x0000, 0xaaab} {
		if IsGREASE(v) {
			t.Errorf("IsGREASE(%#04x) = true", v)
		}
	}
}

// FuzzParseRecords feeds arbitrary bytes to the parser and the fingerprint
// functions: they must never panic, and a parsed hello must fingerprint.
func FuzzParseRecords(f *testing.F) {
	for _, name := range []string{"curl-https.bin", "go-client.bin", "openssl-tls12-nosni.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := ParseRecords(b)
		if err != nil {
			return
		}
		if ja4 := JA4(ch); len(ja4) != 36 {
			t.Fatalf("JA4 %q has length %d", ja4, len(ja4))
		}
		JA3(ch)
	})
}

func BenchmarkFingerprint(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "curl-https.bin"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ch, err := ParseRecords(raw)
		if err != nil {
			b.Fatal(err)
		}
		JA4(ch)
		JA3(ch)
	}
}
