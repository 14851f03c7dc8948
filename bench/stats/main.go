// Command stats times the analytics' windows over 1,600,000 distinct IPv4
// addresses a day (plus IPv6 /64s and DNS resolvers) in the embedded
// SQLite store or in PostgreSQL. The events of the last -days days (the
// last one open, until 15:20:07) go through the store's writer
// (WriteBatch), which keeps the aggregates and the hourly sets the queries
// read; the other days of a year are then synthesised by copying the
// closed days' whole-day sets and rollups to earlier days (a query still decodes and
// reads each day's 1.6 million values: reused sets cost what distinct ones
// would, though their union is smaller). Output,
// one "key value" a line:
//
//	load_s, blocks_build_s, events, aligned_7d_s, cut_24h_s, open_day_s, year_first_s, year_s,
//	overview4_s, trend_180d_first_s, trend_180d_s, first_after_restart_s, sql_s (SQLite: COUNT(DISTINCT)
//	over the same aggregates), unique_ips_7d, days, ips_per_day
//
// Each window is queried three times by country; the slowest counts. The
// year is queried twice, after the blocks of closed days were built ahead
// as serve builds them (blocks_build_s, every core): the first reads them
// from the store (year_first_s), the second again (year_s).
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// backend is one store under the benchmark.
type backend struct {
	es    store.EventStore
	eng   func() *stats.Engine
	copy  func(ctx context.Context, from, to int64) error // copies whole-day sets
	naive func(ctx context.Context, from, to time.Time) (uint64, error)
	close func()
}

func main() {
	kind := flag.String("store", "sqlite", "sqlite or postgres")
	dir := flag.String("dir", "", "data dir for the temporary store (required)")
	dsn := flag.String("pg", "", "PostgreSQL DSN (default: start a loopback server in -dir)")
	days := flag.Int("days", 2, "days written through the store (the last one open); the earlier days of the windows are copies of the closed ones")
	perDay := flag.Int("ips", 1_600_000, "distinct IPv4 addresses a day")
	v6 := flag.Int("v6", 80_000, "distinct IPv6 /64s a day")
	stay := flag.Float64("stay", 0.7, "share of a day's addresses seen the day before too")
	procs := flag.Int("query-procs", 1, "GOMAXPROCS while querying")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the queries")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	ctx := context.Background()
	start := time.Date(2011, 9, 6, 0, 0, 0, 0, time.UTC)
	today := start.AddDate(0, 0, *days-1)
	now := today.Add(15*time.Hour + 20*time.Minute + 7*time.Second)
	clock := func() time.Time { return now }

	var open func() *backend
	switch *kind {
	case "sqlite":
		open = func() *backend { return openSQLite(ctx, *dir, clock) }
	case "postgres":
		if *dsn == "" {
			var stop func()
			*dsn, stop = startPostgres()
			defer stop()
		}
		open = func() *backend { return openPostgres(ctx, *dsn, clock) }
	default:
		log.Fatalf("unknown -store %q", *kind)
	}
	b := open()
	t0 := time.Now()
	n, err := load(ctx, b.es, start, *days, *perDay, *v6, *stay, now, *kind == "postgres")
	if err != nil {
		log.Fatal(err)
	}
	loadS := time.Since(t0).Seconds()
	// A year: the closed days' whole-day sets copied to the days before
	// the first written, and one event on the first so that the store's
	// history starts there.
	yearFrom := today.AddDate(0, 0, -365)
	for d := yearFrom; d.Before(start); d = d.AddDate(0, 0, 1) {
		src := start.AddDate(0, 0, int(d.Sub(yearFrom).Hours()/24)%(*days-1))
		if err := b.copy(ctx, src.Unix(), d.Unix()); err != nil {
			log.Fatal(err)
		}
	}
	first := event.Event{ID: "year-start", Timestamp: yearFrom.Add(time.Hour), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("192.0.2.1"), Family: "rustock"}
	if _, err := b.es.WriteBatch(ctx, &store.Batch{Events: []event.Event{first}}); err != nil {
		log.Fatal(err)
	}
	if err := b.es.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	// serve builds the blocks of closed days ahead, at start and after
	// every midnight (Engine.Warm, BuildBlocks): timed here, with every
	// core, and not part of any query.
	t0 = time.Now()
	nb, err := b.eng().BuildBlocks(ctx)
	if err != nil {
		log.Fatal(err)
	}
	blocksS := time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "built %d blocks of closed days ahead in %.1fs\n", nb, blocksS)

	runtime.GOMAXPROCS(*procs)
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	eng := b.eng()
	windows := []struct {
		name     string
		from, to time.Time
		runs     int
	}{
		{"aligned_7d", today.AddDate(0, 0, -7), today, 3},
		{"cut_24h", now.Add(-24 * time.Hour), now, 3},
		{"open_day", today, now, 3},
		{"year", yearFrom, today, 2},
	}
	out := map[string]string{"blocks_build_s": fmt.Sprintf("%.1f", blocksS), "load_s": fmt.Sprintf("%.1f", loadS), "events": strconv.Itoa(n), "days": strconv.Itoa(*days), "ips_per_day": strconv.Itoa(*perDay)}
	results := map[string]*stats.Result{}
	for _, w := range windows {
		worst := 0.0
		for i := range w.runs {
			t0 := time.Now()
			r, err := eng.Stats(ctx, stats.Query{From: w.from, To: w.to, By: stats.ByCountry})
			if err != nil {
				log.Fatalf("%s: %v", w.name, err)
			}
			took := time.Since(t0).Seconds()
			if w.name == "year" && i == 0 {
				// The first year query reads the blocks of closed days
				// built ahead (internal/stats/blocks.go) for the first
				// time; the next ones find them in the page cache.
				out["year_first_s"] = fmt.Sprintf("%.4f", took)
				continue
			}
			worst = max(worst, took)
			if r.Work.Rows != 0 {
				log.Fatalf("%s read %d aggregate rows", w.name, r.Work.Rows)
			}
			results[w.name] = r
		}
		out[w.name+"_s"] = fmt.Sprintf("%.4f", worst)
		fmt.Fprintf(os.Stderr, "%s: %d addresses, %d rows, %.3fs\n", w.name, results[w.name].UniqueIPs, len(results[w.name].Rows), worst)
	}
	out["unique_ips_7d"] = strconv.FormatUint(results["aligned_7d"].UniqueIPs, 10)

	// The dashboard's trend: a daily series of 180 days to now. The first
	// computes the closed days' points and caches them (serve's Warm does
	// this ahead); the next reads them and computes the open day.
	for i, k := range []string{"trend_180d_first_s", "trend_180d_s"} {
		t0 := time.Now()
		sr, err := eng.Series(ctx, stats.Query{From: today.AddDate(0, 0, -179), To: now}, stats.Daily)
		if err != nil {
			log.Fatal(err)
		}
		out[k] = fmt.Sprintf("%.4f", time.Since(t0).Seconds())
		if i == 1 {
			fmt.Fprintf(os.Stderr, "trend: %d points, %ss\n", len(sr.Points), out[k])
		}
	}

	// The dashboard's overview asks for one window in several dimensions
	// at once: four concurrent queries of the cut 24 hours.
	t0 = time.Now()
	var wg sync.WaitGroup
	for _, by := range []stats.Dim{"", stats.ByCountry, stats.ByASN, stats.ByFamily} {
		wg.Go(func() {
			if _, err := eng.Stats(ctx, stats.Query{From: now.Add(-24 * time.Hour), To: now, By: by}); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	out["overview4_s"] = fmt.Sprintf("%.4f", time.Since(t0).Seconds())

	// The anchor: COUNT(DISTINCT) over the aggregates of the closed days
	// written (the copied days have none; IPv6 per /64, as counted here),
	// against the same window here.
	if b.naive != nil {
		t0 = time.Now()
		total, err := b.naive(ctx, start, today)
		if err != nil {
			log.Fatal(err)
		}
		out["sql_s"] = fmt.Sprintf("%.3f", time.Since(t0).Seconds())
		t0 = time.Now()
		r, err := eng.Stats(ctx, stats.Query{From: start, To: today})
		if err != nil {
			log.Fatal(err)
		}
		out["written_closed_s"] = fmt.Sprintf("%.4f", time.Since(t0).Seconds())
		if total != r.UniqueIPs {
			log.Fatalf("COUNT(DISTINCT) says %d, stats %d", total, r.UniqueIPs)
		}
	}

	// A restart: the store closed and opened again, a new engine, and the
	// dashboard's default window.
	b.close()
	runtime.GOMAXPROCS(0)
	b = open()
	defer b.close()
	runtime.GOMAXPROCS(*procs)
	t0 = time.Now()
	r, err := b.eng().Stats(ctx, stats.Query{From: now.Add(-24 * time.Hour), To: now, By: stats.ByCountry})
	if err != nil {
		log.Fatal(err)
	}
	out["first_after_restart_s"] = fmt.Sprintf("%.4f", time.Since(t0).Seconds())
	if r.UniqueIPs != results["cut_24h"].UniqueIPs {
		log.Fatalf("after a restart %d, before %d", r.UniqueIPs, results["cut_24h"].UniqueIPs)
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range out {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Printf("%s %s\n", k, out[k])
	}
}

func openSQLite(ctx context.Context, dir string, now func() time.Time) *backend {
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	es, err := sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ss := sqlite.NewStatsStore(db)
	return &backend{
		es: es,
		eng: func() *stats.Engine {
			return stats.New(stats.Options{Source: ss, Raw: ss, Cache: ss, Sets: ss, Now: now})
		},
		copy: func(ctx context.Context, from, to int64) error {
			if _, err := db.SQL().ExecContext(ctx, `INSERT INTO stats_sets (day, part, data) SELECT ?, part, data FROM stats_sets WHERE day = ? AND (part = 'day' OR part LIKE 'k:%')`, to, from); err != nil {
				return err
			}
			// The rollups too: a day's fingerprint (what blocks of days
			// are valid for) is the sum of its rollups' hits.
			_, err := db.SQL().ExecContext(ctx, `INSERT INTO event_rollups (day, country, asn, family, case_id, ips, resolver_ips, hits)
				SELECT ?, country, asn, family, case_id, ips, resolver_ips, hits FROM event_rollups WHERE day = ?`, to, from)
			return err
		},
		naive: func(ctx context.Context, from, to time.Time) (uint64, error) {
			var n uint64
			err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(DISTINCT CASE WHEN length(ip) = 16 THEN substr(ip, 1, 8) ELSE ip END) FROM event_day_ip WHERE day >= ? AND day < ? AND protocols & ? != 0`,
				from.Unix(), to.Unix(), int64(store.Direct)).Scan(&n)
			return n, err
		},
		close: func() {
			es.Close()
			db.Close()
		},
	}
}

func openPostgres(ctx context.Context, dsn string, now func() time.Time) *backend {
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	es := db.Events()
	return &backend{
		es: es,
		eng: func() *stats.Engine {
			return stats.New(stats.Options{Source: es, Raw: es, Cache: es, Sets: es, Now: now})
		},
		copy: func(ctx context.Context, from, to int64) error {
			if _, err := es.Pool().Exec(ctx, `INSERT INTO stats_sets (day, part, data) SELECT $1, part, data FROM stats_sets WHERE day = $2 AND (part = 'day' OR part LIKE 'k:%')`, to, from); err != nil {
				return err
			}
			_, err := es.Pool().Exec(ctx, `INSERT INTO event_rollups (day, country, asn, family, case_id, ips, resolver_ips, hits)
				SELECT $1, country, asn, family, case_id, ips, resolver_ips, hits FROM event_rollups WHERE day = $2`, to, from)
			return err
		},
		naive: func(ctx context.Context, from, to time.Time) (uint64, error) {
			var n uint64
			err := es.Pool().QueryRow(ctx, `SELECT COUNT(DISTINCT CASE WHEN length(ip) = 16 THEN substring(ip from 1 for 8) ELSE ip END) FROM event_day_ip WHERE day >= $1 AND day < $2 AND protocols & $3 != 0`,
				from.Unix(), to.Unix(), int64(store.Direct)).Scan(&n)
			return n, err
		},
		close: func() { es.Close() },
	}
}

// startPostgres starts a throw-away server on a loopback port, as the
// tests' pgtest does (as the user nobody when run as root), and returns
// its DSN and how to stop it (which removes its data).
func startPostgres() (string, func()) {
	bin := "/usr/lib/postgresql/15/bin"
	// A directory of its own that the user nobody can use (-dir may sit
	// in a private temporary directory).
	dir, err := os.MkdirTemp("", "takedown-statsbench-pg-")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	pg := filepath.Join(dir, "pg")
	cmd := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "nobody", "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			log.Fatal(err)
		}
	}
	if out, err := cmd("initdb", "-D", pg, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		log.Fatalf("initdb: %v\n%s", err, out)
	}
	port := 20000 + os.Getpid()%20000
	srv := cmd("postgres", "-D", pg, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
		"-c", "shared_buffers=512MB", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_wal_size=4GB")
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		log.Fatal(err)
	}
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	stop := func() {
		syscall.Kill(-srv.Process.Pid, syscall.SIGINT)
		srv.Wait()
		os.RemoveAll(dir)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	for i := 0; ; i++ {
		c, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			c.Close(context.Background())
			return dsn, stop
		}
		if i > 600 {
			stop()
			log.Fatalf("postgres did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countries are 200 two-letter codes. Each /16 belongs to one country, as
// address blocks do in the geolocation databases, drawn with weight
// 1/(rank+1): infections concentrate in a few countries.
func countries() ([]string, []float64) {
	var cc []string
	var cum []float64
	sum := 0.0
	for i := range 200 {
		cc = append(cc, string([]byte{'A' + byte(i/26), 'A' + byte(i%26)}))
		sum += 1 / float64(i+1)
		cum = append(cum, sum)
	}
	for i := range cum {
		cum[i] /= sum
	}
	return cc, cum
}

// load writes days of contacts through the store's writer: per day
// perDay distinct IPv4 sources (a share stay of them seen the day
// before), v6 IPv6 /64s and 20,000 resolvers, each with one contact at a
// random time of the day (of the open day: before now). It returns the
// number of events written.
func load(ctx context.Context, es store.EventStore, start time.Time, days, perDay, v6 int, stay float64, now time.Time, parallel bool) (int, error) {
	cc, cum := countries()
	rng := rand.New(rand.NewPCG(7, 11))
	var of16 [65536]uint8
	for i := range of16 {
		c, _ := slices.BinarySearch(cum, rng.Float64())
		of16[i] = uint8(min(c, len(cc)-1))
	}
	resolvers := make([]netip.Addr, 20_000)
	for i := range resolvers {
		resolvers[i] = netip.AddrFrom4([4]byte{203, byte(i >> 8), byte(i), 53})
	}
	writers := 1
	if parallel {
		writers = 2
	}
	batches := make(chan []event.Event, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for b := range batches {
				if _, err := es.WriteBatch(ctx, &store.Batch{Events: b, Received: uint64(len(b))}); err != nil {
					errs <- err
					for range batches {
					}
					return
				}
			}
		})
	}
	total := 0
	var prev []uint32
	for d := range days {
		day := start.AddDate(0, 0, d)
		span := int64(24 * time.Hour)
		if end := now.Sub(day); end < 24*time.Hour {
			span = int64(end)
		}
		seen := make(map[uint32]struct{}, perDay)
		var ips []uint32
		for _, ip := range prev {
			if rng.Float64() < stay {
				seen[ip] = struct{}{}
				ips = append(ips, ip)
			}
		}
		for len(ips) < perDay {
			ip := rng.Uint32()
			if _, ok := seen[ip]; ok || ip>>24 == 0 || ip>>24 >= 224 || ip>>24 == 203 {
				continue
			}
			seen[ip] = struct{}{}
			ips = append(ips, ip)
		}
		prev = ips
		// The day's contacts, written in time order as a sinkhole stores
		// them.
		dayEvents := make([]event.Event, 0, len(ips)+v6+len(resolvers))
		add := func(e event.Event) {
			e.ID = fmt.Sprintf("%d-%d", d, len(dayEvents))
			e.Timestamp = day.Add(time.Duration(rng.Int64N(span)))
			e.Family, e.Case, e.Listener = "rustock", "bench", "bench"
			dayEvents = append(dayEvents, e)
		}
		for _, ip := range ips {
			c := int(of16[ip>>16])
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], ip)
			add(event.Event{Protocol: event.ProtoHTTP, SrcIP: netip.AddrFrom4(b), SrcGeo: cc[c], SrcASN: uint32(64500 + c)})
		}
		for range v6 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], 0x2001_0db8_0000_0000|rng.Uint64()&0xffff_ffff)
			binary.BigEndian.PutUint64(b[8:], rng.Uint64())
			add(event.Event{Protocol: event.ProtoHTTPS, SrcIP: netip.AddrFrom16(b), SrcGeo: "ZZ", SrcASN: 64499})
		}
		for _, r := range resolvers {
			add(event.Event{Protocol: event.ProtoDNS, SrcIP: r, SrcGeo: "ZZ", SrcASN: 64498})
		}
		slices.SortFunc(dayEvents, func(a, b event.Event) int { return a.Timestamp.Compare(b.Timestamp) })
		for lo := 0; lo < len(dayEvents); lo += 20_000 {
			batches <- dayEvents[lo:min(lo+20_000, len(dayEvents))]
		}
		total += len(dayEvents)
		fmt.Fprintf(os.Stderr, "queued %s (%d events)\n", day.Format(time.DateOnly), total)
	}
	close(batches)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return total, es.Flush(ctx)
}
