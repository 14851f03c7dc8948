package event

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// table is a string table for the tests: it takes at most limit strings,
// so that both table references and inline strings are exercised.
type table struct {
	refs  map[string]uint64
	strs  map[uint64]string
	limit int
}

func newTable(limit int) *table {
	return &table{refs: map[string]uint64{}, strs: map[uint64]string{}, limit: limit}
}

func (t *table) intern(s string) (uint64, bool) {
	if r, ok := t.refs[s]; ok {
		return r, true
	}
	if len(t.refs) >= t.limit {
		return 0, false
	}
	r := uint64(len(t.refs) + 1)
	t.refs[s], t.strs[r] = r, s
	return r, true
}

func (t *table) lookup(r uint64) (string, bool) { s, ok := t.strs[r]; return s, ok }

// compactCases are events of every protocol and source, as the sinkhole
// and the importers make them.
func compactCases() map[string]Event {
	ts := time.Date(2011, 3, 16, 10, 0, 1, 123456789, time.UTC)
	return map[string]Event{
		"http": {ID: "3f9c0d6a1b2e4c58-0000000000000001", Timestamp: ts, Sensor: "sink-1", Listener: "http:127.0.0.1:8080",
			Protocol: ProtoHTTP, Transport: "tcp", SrcIP: netip.MustParseAddr("1.0.0.1"), SrcPort: 49152, SrcASN: 13335,
			SrcOrg: "Cloudflare, Inc.", SrcGeo: "AU", DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Case: "MS-2011-03",
			Family: "rustock", Tag: "c2", Confidence: 0.9, BotID: "ABCDEF", HTTPMethod: "POST", HTTPURL: "/login.php?x=1",
			HTTPHost: "c2.rustock.example", HTTPAgent: "Mozilla/4.0 (compatible; MSIE 6.0)", HTTPReferer: "http://a.example/",
			HeaderNames: "Host,User-Agent,Content-Length", HeaderHash: "00ff9a", ContentLength: 1234,
			PayloadSize: 1234, PayloadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", PayloadPrefix: []byte{0, 1, 2, 0xff}},
		"https": {ID: "3f9c0d6a1b2e4c58-00000000000000ff", Timestamp: ts, Sensor: "sink-1", Listener: "https:[::]:443",
			Protocol: ProtoHTTPS, Transport: "tcp", SrcIP: netip.MustParseAddr("2001:db8::1"), SrcPort: 1, DstIP: netip.MustParseAddr("2001:db8::53"),
			DstPort: 443, SSLServerName: "c2.example", SSLVersion: "TLS1.2", SSLCipher: "TLS_RSA_WITH_RC4_128_SHA", ALPN: "http/1.1",
			JA4: "t12d1209h1_4b22cbed5bed_7af1ed941c26", JA3: "e7d705a3286e19ea42f587b344ee6865", HTTPMethod: "GET", HTTPURL: "/"},
		"dns": {ID: "3f9c0d6a1b2e4c58-0000000000000002", Timestamp: ts, Sensor: "sink-1", Listener: "dns", Protocol: ProtoDNS, Transport: "udp",
			SrcIP: netip.MustParseAddr("::ffff:198.51.100.7"), SrcPort: 53000, QName: "XyZ.rustock.Example", QType: "A", RCode: "NOERROR",
			Matched: "rustock.example", ECS: "203.0.113.0/24", ResponseSize: 61, Family: "rustock", Case: "MS-2011-03"},
		"tcp": {ID: "plain-id with spaces", Timestamp: ts.Add(-time.Hour * 24 * 365 * 30), Protocol: ProtoTCP, Transport: "tcp",
			SrcIP: netip.MustParseAddr("203.0.113.9"), DstPort: 25, PayloadSize: 3, PayloadPrefix: []byte("EHL")},
		"udp unverified": {ID: "3f9c0d6a1b2e4c58-0000000000000003", Timestamp: ts, Protocol: ProtoUDP, Transport: "udp", Unverified: true,
			SrcIP: netip.MustParseAddr("203.0.113.10"), SrcPort: 9, DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 1024, PayloadSize: 0},
		"summary": {ID: "3f9c0d6a1b2e4c58-0000000000000004", Timestamp: ts, Protocol: ProtoHTTP, SrcIP: netip.MustParseAddr("203.0.113.11"),
			Count: 1 << 40, Tag: "summary:over-source-budget", Family: "rustock"},
		"shadowserver": {ID: "ss-0123456789abcdef0123456789abcdef", Timestamp: time.Date(2011, 9, 13, 10, 0, 1, 0, time.UTC),
			Sensor: "Microsoft-DCU", Listener: "import:shadowserver", Protocol: ProtoHTTP, SrcIP: netip.MustParseAddr("1.2.3.4"),
			SrcPort: 1024, SrcASN: 4134, SrcGeo: "cn", DstIP: netip.MustParseAddr("199.2.137.1"), DstPort: 80, Family: "rustock",
			HTTPURL: "/", HTTPHost: "", HTTPAgent: "Mozilla/4.0", Tag: "Rustock"},
		"small post": {ID: "3f9c0d6a1b2e4c58-0000000000000005", Timestamp: ts, Protocol: ProtoHTTP, SrcIP: netip.MustParseAddr("10.0.0.2"),
			BotID: "00FF00FF00FF00FF", PayloadSize: 16, PayloadPrefix: []byte("0123456789abcdef"),
			PayloadSHA256: "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f"},
		"sha not of the prefix": {ID: "3f9c0d6a1b2e4c58-0000000000000006", Timestamp: ts, Protocol: ProtoHTTP, SrcIP: netip.MustParseAddr("10.0.0.3"),
			PayloadSize: 16, PayloadPrefix: []byte("0123456789abcdef"), PayloadSHA256: "0000b2c332b1113aae9bfc5e9f7e3b4c91d828cb942c2df1eeb02502eccae9e9"},
		"jsonl": {ID: "jl-ffffffffffffffffffffffffffffffff", Timestamp: ts, Protocol: ProtoTCP, SrcIP: netip.MustParseAddr("10.0.0.1"),
			SrcOrg: "ÜTF-8 Örg \u2028", BotID: "DEADBEEF", Confidence: -1.5e-300, ContentLength: -1},
	}
}

// TestCompactRoundTrip: event → compact record (with the ID packed and the
// timestamp apart) → event gives the byte-identical JSON-lines record,
// with a table that takes every string, and with one that takes only a
// few (the rest inline).
func TestCompactRoundTrip(t *testing.T) {
	for _, limit := range []int{1 << 20, 3} {
		tab := newTable(limit)
		var cache TemplateCache
		for name, e := range compactCases() {
			t.Run(name, func(t *testing.T) {
				want, err := MarshalJSONL(&e)
				if err != nil {
					t.Fatal(err)
				}
				if !CompactLossless(&e) {
					t.Fatal("CompactLossless refused an event it can encode")
				}
				rec := AppendCompact(nil, &e, tab.intern)
				if rec[0] == '{' {
					t.Fatal("a compact record starts like a JSON one")
				}
				id, err := UnpackID(PackID(e.ID))
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecodeCompact(rec, id, time.Unix(0, e.Timestamp.UnixNano()), tab.lookup)
				if err != nil {
					t.Fatal(err)
				}
				gotRec, err := MarshalJSONL(&got)
				if err != nil {
					t.Fatal(err)
				}
				// Through a template cache, the first and a later read.
				for range 2 {
					c, err := DecodeCompactCached(rec, id, time.Unix(0, e.Timestamp.UnixNano()), tab.lookup, &cache)
					if err != nil {
						t.Fatal(err)
					}
					if cr, _ := MarshalJSONL(&c); !bytes.Equal(cr, want) {
						t.Errorf("cached decode changed the record\n got %s\nwant %s", cr, want)
					}
				}
				if !bytes.Equal(gotRec, want) {
					t.Errorf("round trip changed the record\n got %s\nwant %s", gotRec, want)
				}
				if name == "small post" && len(rec) > 40 {
					t.Errorf("a payload hash that the prefix gives was stored (%d bytes)", len(rec))
				}
				if limit > 3 && len(rec) > len(want)/4 {
					t.Errorf("compact record of %d bytes for a JSON record of %d", len(rec), len(want))
				}
				src, err := CompactSource(rec, func(uint64) (string, bool) { return "", false })
				if e.Family != "" && err == nil && limit > 3 {
					t.Errorf("CompactSource decoded family %q without the table", src.Family)
				}
				src, err = CompactSource(rec, tab.lookup)
				if err != nil || src.SrcIP != e.SrcIP || src.Family != e.Family || src.Protocol != e.Protocol || src.Unverified != e.Unverified || src.SrcOrg != "" {
					t.Errorf("CompactSource = %+v, %v", src, err)
				}
			})
		}
	}
}

func TestCompactLossless(t *testing.T) {
	e := compactCases()["http"]
	e.Timestamp = e.Timestamp.In(time.FixedZone("CET", 3600))
	if CompactLossless(&e) {
		t.Error("a timestamp printed with an offset is not lossless")
	}
	e.Timestamp = e.Timestamp.In(time.FixedZone("GMT", 0))
	if !CompactLossless(&e) {
		t.Error("a zero-offset timestamp prints as Z: lossless")
	}
	e.Timestamp = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if CompactLossless(&e) {
		t.Error("a timestamp beyond unix nanoseconds is not lossless")
	}
	e = compactCases()["https"]
	e.SrcIP = netip.MustParseAddr("fe80::1%eth0")
	if CompactLossless(&e) {
		t.Error("an address with a zone is not lossless")
	}
}

func TestPackID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		size int
	}{
		{"3f9c0d6a1b2e4c58-0000000000000001", 10},
		{"3f9c0d6a1b2e4c58-0000000000000000", 9},
		{"3f9c0d6a1b2e4c58-0000000001000000", 13},
		{"3f9c0d6a1b2e4c58-ff00000000000000", 17},
		{"3f9c0d6a1b2e4c58-00ff000000000000", 16},
		{"ss-0123456789abcdef0123456789abcdef", 17},
		{"jl-0123456789abcdef0123456789abcdef", 17},
		{"3F9C0D6A1B2E4C58-0000000000000001", 34}, // upper case: kept as text
		{"ss-0123", 8},
		{"fx-00000001", 12},
		{"", 1},
	} {
		b := PackID(tc.id)
		if len(b) != tc.size {
			t.Errorf("PackID(%q) is %d bytes, want %d", tc.id, len(b), tc.size)
		}
		got, err := UnpackID(b)
		if err != nil || got != tc.id {
			t.Errorf("UnpackID(PackID(%q)) = %q, %v", tc.id, got, err)
		}
	}
	if _, err := UnpackID([]byte{idCounter, 1, 2}); err == nil {
		t.Error("a short counter ID unpacked")
	}
}

// TestCompactCorrupt: a damaged record is an error, never a panic or a
// silently different event.
func TestCompactCorrupt(t *testing.T) {
	tab := newTable(100)
	e := compactCases()["http"]
	rec := AppendCompact(nil, &e, tab.intern)
	for n := 0; n < len(rec); n++ {
		if _, err := DecodeCompact(rec[:n], e.ID, e.Timestamp, tab.lookup); err == nil {
			t.Errorf("a record cut to %d of %d bytes decoded", n, len(rec))
		}
	}
	if _, err := DecodeCompact(append(rec, 0), e.ID, e.Timestamp, tab.lookup); err == nil {
		t.Error("a record with a trailing byte decoded")
	}
}

func FuzzDecodeCompact(f *testing.F) {
	tab := newTable(100)
	for _, e := range compactCases() {
		f.Add(AppendCompact(nil, &e, tab.intern))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		e, err := DecodeCompact(rec, "id", time.Unix(0, 0), tab.lookup)
		if err != nil {
			return
		}
		// What decodes re-encodes to a record that decodes to the same
		// JSON-lines record.
		a, _ := MarshalJSONL(&e)
		e2, err := DecodeCompact(AppendCompact(nil, &e, tab.intern), "id", time.Unix(0, 0), tab.lookup)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := MarshalJSONL(&e2)
		if !bytes.Equal(a, b) {
			t.Fatalf("re-encoding changed the record\n%s\n%s", a, b)
		}
	})
}
