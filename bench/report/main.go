// Command report builds a store with a Rustock day through the store's
// real write path (sqlite.EventStore.WriteBatch, batches of 8,192 as the
// pipeline commits them) and prints what it costs on disk. Two stores:
// the sinkhole's own events (HTTP and HTTPS check-ins, filled as the
// listeners, the enrichment and the classifier fill them) and imported
// Shadowserver event4_sinkhole_http rows (filled as `events import` fills
// them: ss- IDs, public_source as sensor, enrichment of what the row
// lacks). Output, one "key value" a line:
//
//	sinkhole_events, sinkhole_bytes, shadowserver_events, shadowserver_bytes,
//	day, day_unix, cidr, cidr_lo, cidr_hi, asn, sinkhole_dir, shadowserver_dir
//
// The store sizes are the database file after a WAL checkpoint, indexes,
// aggregates and every other table included. run.sh times the report
// commands against sqlite3 on the sinkhole store.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// networks are the /16s the addresses come from, each one AS of one
// country; nets of them.
const nets = 400

var (
	countries = []string{"IN", "TR", "RU", "BR", "VN", "UA", "KR", "US", "PK", "TH", "ID", "IR", "PH", "MX", "AR", "IT", "PL", "RO", "SA", "CN"}
	agents    = []string{"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
		"Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)", "Microsoft-CryptoAPI/5.131.2600.5512"}
	domains = []string{"gfhfpgfhvhhrshhrw.com", "aotuaxwcdnvcfmaf.com", "zwdxfjsiyzxmkweyb.com", "c2.rustock.example"}
	paths   = []string{"/login.php", "/index.php", "/gate.php", "/"}
)

type network struct {
	base    [2]byte
	asn     uint32
	org     string
	country string
}

func networks() []network {
	out := make([]network, nets)
	for k := range out {
		out[k] = network{base: [2]byte{byte(20 + k/256), byte(k % 256)}, asn: uint32(9000 + 37*k),
			org: fmt.Sprintf("Network %d Telecommunication Company Ltd.", k), country: countries[k%len(countries)]}
	}
	return out
}

// addrOf is address i: network i%nets, a distinct host of it.
func addrOf(ns []network, i int) (netip.Addr, *network) {
	n := &ns[i%nets]
	h := (i / nets * 13) % 65536
	return netip.AddrFrom4([4]byte{n.base[0], n.base[1], byte(h >> 8), byte(h)}), n
}

func main() {
	dir := flag.String("dir", "", "where the two data dirs go (required)")
	addrs := flag.Int("addrs", 1_600_000, "distinct infected addresses of the day")
	per := flag.Int("per", 3, "sinkhole check-ins per address")
	ssPer := flag.Int("ss-per", 1, "Shadowserver rows per address")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	ctx := context.Background()
	day := time.Date(2011, 3, 16, 0, 0, 0, 0, time.UTC)
	ns := networks()
	sinkDir, ssDir := filepath.Join(*dir, "sinkhole"), filepath.Join(*dir, "shadowserver")

	ids := event.NewIDGen()
	rng := rand.New(rand.NewPCG(1, 2))
	n, b, err := build(ctx, sinkDir, *addrs**per, func(j int, e *event.Event) {
		i := j % *addrs
		a, nw := addrOf(ns, i)
		bot := uint64(i)*0x9e3779b97f4a7c15 ^ 0xdeadbeef
		dom := domains[i%len(domains)]
		// A 16-byte body, as bench/scale's load posts: the listener keeps
		// it whole as the payload prefix, with its SHA-256.
		body := fmt.Appendf(nil, "%016x", uint64(j)*0x9e3779b97f4a7c15)
		sum := sha256.Sum256(body)
		*e = event.Event{ID: ids.Next(), Timestamp: day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))), Sensor: "sink-1",
			Listener: "http:0.0.0.0:80", Protocol: event.ProtoHTTP, Transport: "tcp", SrcIP: a, SrcPort: uint16(1024 + rng.IntN(60000)),
			SrcASN: nw.asn, SrcOrg: nw.org, SrcGeo: nw.country, DstIP: netip.MustParseAddr("199.2.137.1"), DstPort: 80,
			Case: "MS-2011-03", Family: "rustock", Tag: "rustock-http", Confidence: 0.9, BotID: fmt.Sprintf("%016X", bot),
			HTTPMethod: "POST", HTTPURL: paths[i%len(paths)], HTTPHost: dom, HTTPAgent: agents[i%len(agents)],
			HeaderNames: "Host,User-Agent,Content-Length,Connection", HeaderHash: "5c2e1d7a9b04", ContentLength: 16,
			PayloadSize: 16, PayloadSHA256: hex.EncodeToString(sum[:]), PayloadPrefix: body}
		if i%5 == 0 {
			e.Protocol, e.Listener, e.DstPort, e.SSLServerName = event.ProtoHTTPS, "https:0.0.0.0:443", 443, dom
			e.SSLVersion, e.SSLCipher, e.JA4 = "TLS1.0", "TLS_RSA_WITH_RC4_128_SHA", "t10d0507h1_1d9a054bac1e_2b5f5b3b1a2d"
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sinkhole_events %d\nsinkhole_bytes %d\n", n, b)

	n, b, err = build(ctx, ssDir, *addrs**ssPer, func(j int, e *event.Event) {
		i := j % *addrs
		a, nw := addrOf(ns, i)
		ts := day.Add(time.Duration(rng.Int64N(86400)) * time.Second)
		sport := uint16(1024 + rng.IntN(60000))
		h := sha256.Sum256([]byte(fmt.Sprint(ts.Unix(), a, sport)))
		*e = event.Event{ID: "ss-" + hex.EncodeToString(h[:16]), Timestamp: ts, Sensor: "Microsoft-DCU", Listener: "import:shadowserver",
			Protocol: event.ProtoHTTP, SrcIP: a, SrcPort: sport, SrcASN: nw.asn, SrcOrg: nw.org, SrcGeo: nw.country,
			DstIP: netip.MustParseAddr("199.2.137.1"), DstPort: 80, Family: "rustock", Tag: "rustock",
			HTTPURL: paths[i%len(paths)], HTTPHost: domains[i%len(domains)], HTTPAgent: agents[i%len(agents)]}
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("shadowserver_events %d\nshadowserver_bytes %d\n", n, b)
	a, nw := addrOf(ns, 0)
	p := netip.PrefixFrom(a, 16).Masked()
	lo, hi := store.PrefixRange(p)
	fmt.Printf("day %s\nday_unix %d\ncidr %s\ncidr_lo %X\ncidr_hi %X\nasn %d\nsinkhole_dir %s\nshadowserver_dir %s\n", day.Format(time.DateOnly),
		day.Unix(), p, lo, hi, nw.asn, sinkDir, ssDir)
}

// build writes n events made by fill into a new store in dir and returns
// the events stored and the store's size.
func build(ctx context.Context, dir string, n int, fill func(j int, e *event.Event)) (int64, int64, error) {
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		return 0, 0, err
	}
	es, err := sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{})
	if err != nil {
		return 0, 0, err
	}
	batch := make([]event.Event, 8192)
	var stored int64
	t0 := time.Now()
	for lo := 0; lo < n; lo += len(batch) {
		m := min(len(batch), n-lo)
		for k := range m {
			fill(lo+k, &batch[k])
		}
		r, err := es.WriteBatch(ctx, &store.Batch{Events: batch[:m], Received: uint64(m)})
		if err != nil {
			return 0, 0, err
		}
		stored += int64(r.Inserted)
	}
	if err := es.Close(); err != nil {
		return 0, 0, err
	}
	log.Printf("%s: %d events in %v", dir, stored, time.Since(t0).Round(time.Millisecond))
	if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, 0, err
	}
	if err := db.Close(); err != nil {
		return 0, 0, err
	}
	var size int64
	for _, f := range []string{sqlite.FileName, sqlite.FileName + "-wal"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			size += st.Size()
		}
	}
	return stored, size, nil
}
