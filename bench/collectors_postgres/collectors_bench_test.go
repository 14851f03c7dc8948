//go:build bench

// Package collectorsbench measures how many events per second `takedown
// collector` stores into a shared PostgreSQL (issue 15), with one and with
// two collectors consuming one JetStream stream: the real binary, `takedown
// collector --nats URL --db postgres://…`, against a pgtest server with
// fsync on (Options{Durable: true}) and a nats-server with JetStream.
//
// Each run gets a fresh database and a fresh nats-server (so a fresh stream
// and durable consumer). N events (BENCH_COLLECTORS_EVENTS, default
// 400,000) are first published into TAKEDOWN_EVENTS through natsbus's
// Publisher, the code a sensor runs, so the messages are what a sensor
// sends. Every event has its own source address, spread over the IPv4
// /8s; the protocols are a sinkhole's mix (DNS 40%, HTTP 35%, TLS 15%, raw
// TCP 10%), all of one case and family, which the collector finds in the
// shared registry, so enrichment (geo, ASN) and classification run on
// every event. The clock runs from the collectors' start until the store
// holds all N (event_health, polled every 200 ms); the run then checks that
// exactly N rows are stored, each classified, and fails on any loss or
// duplicate. Goal: two collectors store at least 1.7 times what one does.
// Rounds of one then two collectors repeat (BENCH_COLLECTORS_ROUNDS,
// default 3); the figures are medians.
//
// This machine has 2 cores, shared by PostgreSQL, nats-server and the
// collectors: a second collector can only use what the first leaves idle.
// The raw output (bench/results/collectors_postgres.txt) says where the CPU
// went in each run (per process group, from /proc, plus `top` samples) and
// how much was idle or waiting for I/O. Run it with `make bench`, or:
//
//	go test -tags bench -run TestBench -v -timeout 30m ./bench/collectors_postgres/
package collectorsbench

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/natsbus"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/testtool"
)

const (
	benchCase   = "MS-BENCH-15"
	benchFamily = "rustock"
	seizedName  = "rustock.example"
	seizedAddr  = "198.51.100.7"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sources returns n distinct public IPv4 addresses spread over the /8s: a
// multiplicative permutation of the 32-bit space, skipping what is not a
// routable unicast address.
func sources(n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for k := uint32(1); len(out) < n; k++ {
		v := k * 2654435761 // odd: a bijection of uint32, so no repeats
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if o := byte(v >> 24); o == 0 || o == 127 || o >= 224 || !a.IsGlobalUnicast() || a.IsPrivate() {
			continue
		}
		out = append(out, a)
	}
	return out
}

var agents = []string{
	"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
	"Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
	"Microsoft-CryptoAPI/6.1",
	"",
}

// makeEvent is the i-th event, as a sensor's listeners would hand it to
// the publisher: no ID (the publisher assigns it), no case or family (the
// collector classifies it from the registry), no geo (it enriches).
func makeEvent(i int, src netip.Addr, day time.Time, n int) event.Event {
	e := event.Event{
		Timestamp: day.Add(time.Duration(i) * (24 * time.Hour / time.Duration(n))),
		SrcIP:     src, SrcPort: uint16(1024 + (i*7919)%64000),
	}
	switch r := i % 20; {
	case r < 8: // DNS, from resolvers
		q := fmt.Sprintf("%x.c2.%s", i%4096, seizedName)
		e.Listener, e.Protocol, e.Transport = "dns", event.ProtoDNS, "udp"
		e.DstIP, e.DstPort = netip.MustParseAddr("192.0.2.53"), 53
		e.QName, e.QType, e.RCode, e.Matched, e.ResponseSize = q, []string{"A", "A", "AAAA", "TXT"}[i%4], "NOERROR", q, 64+i%32
	case r < 15: // HTTP beacons
		e.Listener, e.Protocol, e.Transport = "http:0.0.0.0:80", event.ProtoHTTP, "tcp"
		e.DstIP, e.DstPort = netip.MustParseAddr("192.0.2.1"), 80
		e.HTTPMethod, e.HTTPURL = []string{"GET", "POST"}[i%2], fmt.Sprintf("/gate.php?id=%08x", uint32(i)*40503)
		e.HTTPHost, e.HTTPAgent = "c2."+seizedName, agents[i%len(agents)]
		e.HeaderNames, e.HeaderHash = "Host,User-Agent,Accept,Connection", "3f2a9c1d"
		e.BotID = fmt.Sprintf("bot-%08x", uint32(i)*2246822519)
		if e.HTTPMethod == "POST" {
			e.ContentLength, e.PayloadSize = 212, 212
		}
	case r < 18: // TLS
		e.Listener, e.Protocol, e.Transport = "tls:0.0.0.0:443", event.ProtoHTTPS, "tcp"
		e.DstIP, e.DstPort = netip.MustParseAddr("192.0.2.1"), 443
		e.SSLServerName, e.SSLVersion, e.SSLCipher, e.ALPN = "update."+seizedName, "TLS1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ""
		e.JA4, e.JA3 = "t12d1209h2_d34a8e72043a_b39be8c56a14", "6734f37431670b3ab4292b8f60f29984"
	default: // raw TCP to the seized C2 address
		e.Listener, e.Protocol, e.Transport = "tcp:0.0.0.0:4444", event.ProtoTCP, "tcp"
		e.DstIP, e.DstPort = netip.MustParseAddr(seizedAddr), 4444
		e.PayloadSize, e.PayloadSHA256 = 64, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		e.PayloadPrefix = []byte{0x16, 0x03, 0x01, 0x00, 0x3c, byte(i), byte(i >> 8), 0x00}
	}
	return e
}

// cpu is a snapshot of CPU time (clock ticks) per process and of the
// machine's /proc/stat totals.
type cpu struct {
	procs map[int]procCPU
	sys   []uint64 // user nice system idle iowait irq softirq steal
}

type procCPU struct {
	comm  string
	ticks uint64
}

func snapshot() cpu {
	s := cpu{procs: map[int]procCPU{}}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		l, r := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		if l < 0 || r < l {
			continue
		}
		f := strings.Fields(string(b[r+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		s.procs[pid] = procCPU{string(b[l+1 : r]), ut + st}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for _, v := range strings.Fields(line)[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			s.sys = append(s.sys, n)
		}
	}
	return s
}

// group names a process for the CPU breakdown.
func group(comm string, self int, pid int) string {
	switch {
	case pid == self:
		return "bench (this test)"
	case comm == "postgres":
		return "postgres"
	case comm == "takedown":
		return "takedown collector(s)"
	case comm == "nats-server":
		return "nats-server"
	}
	return "other processes"
}

// breakdown describes where CPU time went between a and b, over wall.
func breakdown(a, b cpu, wall time.Duration) string {
	const hz = 100 // USER_HZ on Linux
	by, others := map[string]float64{}, map[string]float64{}
	self := os.Getpid()
	for pid, p := range b.procs {
		d := p.ticks
		if q, ok := a.procs[pid]; ok && q.comm == p.comm {
			d -= min(d, q.ticks)
		}
		g := group(p.comm, self, pid)
		by[g] += float64(d) / hz
		if g == "other processes" && d > 0 {
			others[p.comm] += float64(d) / hz
		}
	}
	names := make([]string, 0, len(by))
	for k := range by {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return by[names[i]] > by[names[j]] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "  CPU over %.1fs wall (%d cores = %.1f core-s):", wall.Seconds(), runtime.NumCPU(), wall.Seconds()*float64(runtime.NumCPU()))
	for _, k := range names {
		fmt.Fprintf(&sb, " %s %.1fs (%.0f%% of a core);", k, by[k], 100*by[k]/wall.Seconds())
	}
	if len(others) > 0 {
		top := make([]string, 0, len(others))
		for k := range others {
			top = append(top, k)
		}
		sort.Slice(top, func(i, j int) bool { return others[top[i]] > others[top[j]] })
		sb.WriteString("\n  other processes (not this benchmark's):")
		for _, k := range top[:min(len(top), 5)] {
			fmt.Fprintf(&sb, " %s %.1fs;", k, others[k])
		}
	}
	if len(a.sys) >= 5 && len(b.sys) >= 5 {
		var tot uint64
		for i := range b.sys {
			if i < len(a.sys) {
				tot += b.sys[i] - a.sys[i]
			}
		}
		if tot > 0 {
			pc := func(i int) float64 { return 100 * float64(b.sys[i]-a.sys[i]) / float64(tot) }
			fmt.Fprintf(&sb, "\n  machine: user %.0f%% system %.0f%% idle %.0f%% iowait %.0f%%", pc(0)+pc(1), pc(2), pc(3), pc(4))
		}
	}
	return sb.String()
}

// raw is the benchmark's output: `go test -v` prints it and run.sh keeps
// it in bench/results/collectors_postgres.txt.
type raw struct{}

// sampleWaits counts what the collectors' PostgreSQL sessions are doing
// now: idle (the collector is fetching, decoding, enriching, or between
// statements), running (on CPU, or waiting for a core), or waiting on a
// named event (IO:WalSync is the commit's fsync, Lock:transactionid a row
// another collector's open transaction holds).
func sampleWaits(ctx context.Context, db *postgres.DB, into map[string]int) {
	rows, err := db.Pool().Query(ctx, `SELECT state, COALESCE(wait_event_type, ''), COALESCE(wait_event, ''), left(regexp_replace(query, '\s+', ' ', 'g'), 40) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'bench'`)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var state, typ, ev, query string
		if rows.Scan(&state, &typ, &ev, &query) != nil {
			return
		}
		switch {
		case state != "active" && state != "idle in transaction":
			into[state]++
		case typ == "":
			into[state+": running"]++
		case typ == "Lock": // which statement waits for the other collector
			into[fmt.Sprintf("%s: %s:%s in %q", state, typ, ev, query)]++
		default:
			into[state+": "+typ+":"+ev]++
		}
	}
}

func waitSummary(w map[string]int) string {
	var tot int
	keys := make([]string, 0, len(w))
	for k, v := range w {
		tot += v
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return w[keys[i]] > w[keys[j]] })
	var sb strings.Builder
	sb.WriteString("  collectors' PostgreSQL sessions, sampled every 200 ms:")
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %.0f%%;", k, 100*float64(w[k])/float64(max(tot, 1)))
	}
	return sb.String()
}

func (raw) printf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// publish sends the n events through natsbus's Publisher, as a sensor does,
// and waits until the stream acknowledged every one.
func publish(t *testing.T, natsURL string, addrs []netip.Addr, day time.Time) time.Duration {
	ctx := t.Context()
	nc, js, err := natsbus.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stream, err := natsbus.EnsureStream(ctx, js, natsbus.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q := event.NewQueue(1 << 14)
	p, err := natsbus.NewPublisher(natsbus.PublisherOptions{JS: js, Queue: q, Sensor: "bench-sensor"})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(pctx) }()
	n := len(addrs)
	for i := range n {
		e := makeEvent(i, addrs[i], day, n)
		for q.Len() >= q.Cap() {
			time.Sleep(200 * time.Microsecond)
		}
		if !q.Offer(&e) {
			t.Fatalf("queue refused event %d", i)
		}
	}
	for p.Published()+p.Dropped() < uint64(n) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Dropped() != 0 || p.Published() != uint64(n) {
		t.Fatalf("published %d, dropped %d of %d", p.Published(), p.Dropped(), n)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(n) {
		t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
	return time.Since(start)
}

// run publishes addrs' events into a fresh stream, has k collectors store
// them into a fresh database and returns events per second.
func run(t *testing.T, r raw, bin string, pg *pgtest.Server, k int, addrs []netip.Addr) float64 {
	ctx := t.Context()
	n := len(addrs)
	dir, err := os.MkdirTemp("", "takedown-collectors-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)

	dsn := pg.NewDatabase(t)
	// Dropped afterwards: an earlier run's tables would otherwise be
	// autovacuumed during a later run, on its clock.
	defer func() {
		c, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		u, _ := url.Parse(dsn)
		if _, err := c.Exec(context.Background(), "DROP DATABASE "+strings.TrimPrefix(u.Path, "/")+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	}()
	// The schema before the clock starts; application_name tells this
	// benchmark's own sessions from the collectors'.
	db, err := postgres.Open(ctx, dsn+"&application_name=bench")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	day := now.Truncate(24*time.Hour).AddDate(0, 0, -1) // yesterday: the order is in force all day
	var inds []registry.Indicator
	for _, s := range []string{"*." + seizedName, "ip:" + seizedAddr} {
		ind, err := registry.Parse(s, "")
		if err != nil {
			t.Fatal(err)
		}
		inds = append(inds, ind)
	}
	o := registry.Order{Case: benchCase, Court: "bench", Family: benchFamily,
		Effective: day.AddDate(0, 0, -7), Expires: day.AddDate(1, 0, 0)}
	if _, err := db.Import(ctx, o, inds, "bench", false); err != nil {
		t.Fatal(err)
	}

	natsURL, stopNATS := testtool.StartNATS(t)
	defer stopNATS()
	pubTime := publish(t, natsURL, addrs, day)
	r.printf("# %d collector(s): %d events published in %.1fs (%.0f/s) before the collectors start", k, n, pubTime.Seconds(), float64(n)/pubTime.Seconds())
	// What the setup and the earlier runs wrote (the stream's file, the
	// schema, PostgreSQL's dirty buffers) reaches the disk before the
	// clock starts, not as writeback or checkpoints during the run.
	if _, err := db.Pool().Exec(ctx, `CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	syscall.Sync()

	cpu0 := snapshot()
	start := time.Now()
	type proc struct {
		cmd *exec.Cmd
		log string
	}
	var cols []proc
	stopAll := func() {
		for _, c := range cols {
			if c.cmd.ProcessState == nil {
				c.cmd.Process.Signal(syscall.SIGTERM)
				c.cmd.Wait()
			}
		}
	}
	defer stopAll()
	for i := range k {
		data := filepath.Join(dir, fmt.Sprintf("collector%d", i))
		logPath := data + ".log"
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command(bin, "--data", data, "--db", dsn, "collector", "--nats", natsURL)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, proc{cmd, logPath})
	}
	logs := func() string {
		var sb strings.Builder
		for _, c := range cols {
			b, _ := os.ReadFile(c.log)
			fmt.Fprintf(&sb, "--- %s\n%s", filepath.Base(c.log), b)
		}
		return sb.String()
	}

	es := db.Events()
	var first time.Duration
	var elapsed time.Duration
	waits := map[string]int{}
	lastTop := time.Now()
	var tops []string
	for {
		time.Sleep(200 * time.Millisecond)
		h, err := es.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sampleWaits(ctx, db, waits)
		if h.Stored > 0 && first == 0 {
			first = time.Since(start)
		}
		if h.Stored >= uint64(n) {
			elapsed = time.Since(start)
			break
		}
		for _, c := range cols {
			if c.cmd.ProcessState != nil {
				t.Fatalf("a collector exited:\n%s", logs())
			}
		}
		if time.Since(start) > 20*time.Minute {
			t.Fatalf("after %s the store holds %d of %d events:\n%s", time.Since(start), h.Stored, n, logs())
		}
		// A few `top` samples per run, the first after the collectors
		// warmed up; top's own CPU is small against the run's.
		if time.Since(lastTop) > 4*time.Second && len(tops) < 4 {
			lastTop = time.Now()
			if out, err := exec.Command("top", "-b", "-n", "1", "-w", "160").Output(); err == nil {
				lines := strings.Split(string(out), "\n")
				tops = append(tops, fmt.Sprintf("  top at %.1fs (stored %d):\n    %s", time.Since(start).Seconds(), h.Stored, strings.Join(lines[:min(len(lines), 16)], "\n    ")))
			}
		}
	}
	cpu1 := snapshot()
	eps := float64(n) / elapsed.Seconds()

	// Exactly n: nothing lost, nothing twice, every event classified.
	time.Sleep(500 * time.Millisecond) // any straggling batch would show
	h, err := es.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The events' case and family are in their records and in the per
	// (day, address, family) aggregates, one row per source here; the
	// country there shows the enrichment ran.
	var rows, ips, classified, located, hits int64
	if err := db.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT ip) FROM events`).Scan(&rows, &ips); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE case_id = $1 AND family = $2), count(*) FILTER (WHERE country <> ''), COALESCE(sum(hits), 0) FROM event_day_ip`,
		benchCase, benchFamily).Scan(&classified, &located, &hits); err != nil {
		t.Fatal(err)
	}
	stopAll()
	var stoppedLines []string
	for _, c := range cols {
		f, _ := os.Open(c.log)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "collector stopped") {
				stoppedLines = append(stoppedLines, "  "+filepath.Base(c.log)+": "+sc.Text())
			}
		}
		f.Close()
	}
	r.printf("# %d collector(s): %d stored in %.2fs (first batch after %.2fs): %.0f events/s; health stored=%d received=%d; event rows=%d distinct sources=%d; aggregates: classified %s/%s=%d with a country=%d hits=%d",
		k, n, elapsed.Seconds(), first.Seconds(), eps, h.Stored, h.Received, rows, ips, benchFamily, benchCase, classified, located, hits)
	fmt.Println(breakdown(cpu0, cpu1, elapsed))
	fmt.Println(waitSummary(waits))
	for _, l := range stoppedLines {
		fmt.Println(l)
	}
	for _, s := range tops {
		fmt.Println(s)
	}
	if h.Stored != uint64(n) || rows != int64(n) {
		t.Fatalf("%d collector(s): stored %d, %d rows, want exactly %d (lost or duplicated events)\n%s", k, h.Stored, rows, n, logs())
	}
	if ips != int64(n) || hits != int64(n) || classified != int64(n) {
		t.Fatalf("%d collector(s): %d distinct sources, %d hits, %d of %d sources classified as %s/%s", k, ips, hits, classified, n, benchFamily, benchCase)
	}
	if located < int64(n)/2 {
		t.Fatalf("%d collector(s): only %d of %d sources have a country: enrichment did not run", k, located, n)
	}
	return eps
}

func TestBenchCollectorsPostgres(t *testing.T) {
	n := envInt("BENCH_COLLECTORS_EVENTS", 400_000)
	bin := os.Getenv("TAKEDOWN_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "takedown")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/takedown").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	var r raw
	r.printf("# %s collectors_postgres: %d events per run, NumCPU=%d (PostgreSQL, nats-server and the collectors share them), fsync on", time.Now().UTC().Format(time.RFC3339), n, runtime.NumCPU())

	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	addrs := sources(n)
	// Rounds of one collector then two (BENCH_COLLECTORS_ROUNDS, default
	// 3): the figures are each kind's median, and the scale-out the
	// median of the rounds' ratios, so that one disturbed run (other
	// work on two shared cores) does not decide them. Every round is
	// printed.
	rounds := envInt("BENCH_COLLECTORS_ROUNDS", 3)
	var ones, twos, ratios []float64
	for i := range rounds {
		one := run(t, r, bin, pg, 1, addrs)
		two := run(t, r, bin, pg, 2, addrs)
		r.printf("# round %d: one collector %.0f events/s, two %.0f: %.2fx", i+1, one, two, two/one)
		ones, twos, ratios = append(ones, one), append(twos, two), append(ratios, two/one)
	}
	one, two, ratio := median(ones), median(twos), median(ratios)
	r.printf("collectors_postgres_one project=%.0f anchor=none ratio=n/a", one)
	r.printf("collectors_postgres_two project=%.0f anchor=collectors_postgres_one:%.0f ratio=%.2f", two, one, two/one)
	r.printf("collectors_postgres_scaleout project=%.2fx anchor=goal:1.7x ratio=%.2f", ratio, ratio/1.7)
}

// median of xs (the mean of the middle two when their number is even).
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
