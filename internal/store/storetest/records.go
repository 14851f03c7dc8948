package storetest

import (
	"net/netip"
	"time"

	"github.com/takedown/takedown/internal/event"
)

// RecordCases are raw events of every protocol, as the sinkhole makes
// them and as the importers do, plus one the compact encoding cannot carry
// (a timestamp with an offset, kept as its JSON-lines record): what a
// backend's round-trip test stores and reads back.
func RecordCases() []event.Event {
	ts := time.Date(2011, 3, 16, 10, 0, 1, 123456789, time.UTC)
	src := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	return []event.Event{
		{ID: "3f9c0d6a1b2e4c58-0000000000000001", Timestamp: ts, Sensor: "sink-1", Listener: "http:127.0.0.1:8080", Protocol: "http", Transport: "tcp",
			SrcIP: src("198.51.100.1"), SrcPort: 49152, SrcASN: 64500, SrcOrg: "Example Net", SrcGeo: "DE", DstIP: src("192.0.2.1"), DstPort: 80,
			Case: "MS-2011-03", Family: "rustock", Tag: "c2", Confidence: 0.9, BotID: "00FF00FF00FF00FF", HTTPMethod: "POST", HTTPURL: "/login.php",
			HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0", HeaderNames: "Host,User-Agent", HeaderHash: "0a1b2c3d4e5f", ContentLength: 16, PayloadSize: 16,
			PayloadPrefix: []byte("0123456789abcdef"), PayloadSHA256: "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f"},
		{ID: "3f9c0d6a1b2e4c58-0000000000000002", Timestamp: ts, Sensor: "sink-1", Listener: "https:127.0.0.1:8443", Protocol: "https", Transport: "tcp",
			SrcIP: src("2001:db8::7"), DstIP: src("2001:db8::1"), DstPort: 443, SSLServerName: "c2.example", SSLCipher: "TLS_AES_128_GCM_SHA256", JA4: "t13d", Family: "rustock"},
		{ID: "3f9c0d6a1b2e4c58-0000000000000003", Timestamp: ts, Listener: "dns", Protocol: "dns", Transport: "udp", SrcIP: src("::ffff:198.51.100.2"),
			QName: "A.Example", QType: "A", RCode: "NOERROR", Matched: "a.example", ResponseSize: 60},
		{ID: "3f9c0d6a1b2e4c58-0000000000000004", Timestamp: ts, Listener: "tcp:127.0.0.1:25", Protocol: "tcp", Transport: "tcp", SrcIP: src("198.51.100.3"), DstPort: 25,
			PayloadSize: 1000, PayloadPrefix: []byte("EHLO"), PayloadSHA256: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
		{ID: "3f9c0d6a1b2e4c58-0000000000000005", Timestamp: ts, Listener: "udp:127.0.0.1:53", Protocol: "udp", Transport: "udp", SrcIP: src("198.51.100.4"), Unverified: true},
		{ID: "3f9c0d6a1b2e4c58-0000000000000006", Timestamp: ts, Protocol: "http", SrcIP: src("198.51.100.5"), Count: 99, Tag: "summary:over-source-budget"},
		{ID: "ss-0123456789abcdef0123456789abcdef", Timestamp: ts.Truncate(time.Second), Sensor: "Microsoft", Listener: "import:shadowserver",
			Protocol: "http", SrcIP: src("203.0.113.9"), SrcPort: 1024, SrcASN: 4134, SrcGeo: "cn", Family: "rustock", HTTPURL: "/", Tag: "Rustock"},
		{ID: "jl-0123456789abcdef0123456789abcdef", Timestamp: ts, Listener: "import:jsonl", Protocol: "tcp", SrcIP: src("203.0.113.10"), Confidence: 1e-9},
		{ID: "other id", Timestamp: ts.In(time.FixedZone("CET", 3600)), Protocol: "http", SrcIP: src("203.0.113.11")},
	}
}
