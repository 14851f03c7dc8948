// Command stats times the analytics' 7-day, by-country distinct count over
// 1,600,000 distinct addresses a day in the embedded store, against the
// naive COUNT(DISTINCT …) SQL over the same aggregates. It writes the
// aggregates straight into a fresh SQLite store (no events: the query
// reads only aggregates), builds the per-day cache with one cold query,
// then times warm queries. Output, one "key value" a line:
//
//	load_s, cold_s, warm_s, sql_s, unique_ips, days, ips_per_day
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func main() {
	dir := flag.String("dir", "", "data dir for the temporary store (required)")
	days := flag.Int("days", 7, "days")
	perDay := flag.Int("ips", 1_600_000, "distinct addresses a day")
	stay := flag.Float64("stay", 0.7, "share of a day's addresses seen the day before too")
	runs := flag.Int("runs", 5, "warm queries timed (the best is reported)")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the warm queries")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, *dir)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	start := time.Date(2011, 9, 6, 0, 0, 0, 0, time.UTC)
	t0 := time.Now()
	if err := load(ctx, db, start, *days, *perDay, *stay); err != nil {
		log.Fatal(err)
	}
	loadS := time.Since(t0).Seconds()

	es, err := sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer es.Close()
	ss := sqlite.NewStatsStore(db)
	eng := stats.New(stats.Options{Source: es, Raw: ss, Cache: ss, Now: func() time.Time { return start.AddDate(0, 0, *days+1) }})
	q := stats.Query{From: start, To: start.AddDate(0, 0, *days), By: stats.ByCountry}
	t0 = time.Now()
	cold, err := eng.Stats(ctx, q)
	if err != nil {
		log.Fatal(err)
	}
	coldS := time.Since(t0).Seconds()
	warmS := 1e9
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
	for range *runs {
		t0 = time.Now()
		r, err := eng.Stats(ctx, q)
		if err != nil {
			log.Fatal(err)
		}
		warmS = min(warmS, time.Since(t0).Seconds())
		if r.UniqueIPs != cold.UniqueIPs {
			log.Fatalf("warm query counted %d, cold %d", r.UniqueIPs, cold.UniqueIPs)
		}
	}

	// A 24-hour window that cuts two days at noon, as the dashboard's
	// "last 24 hours" does: decided from the aggregates' first and last
	// sightings (raw events only for the undecided).
	end := start.AddDate(0, 0, *days).Add(-12 * time.Hour)
	q24 := stats.Query{From: end.Add(-24 * time.Hour), To: end, By: stats.ByCountry}
	cutS := 1e9
	for range 3 {
		t0 = time.Now()
		if _, err := eng.Stats(ctx, q24); err != nil {
			log.Fatal(err)
		}
		cutS = min(cutS, time.Since(t0).Seconds())
	}

	// The dashboard's overview asks for one window in several dimensions
	// at once: four concurrent queries of the cut 24 hours.
	t0 = time.Now()
	var wg sync.WaitGroup
	for _, by := range []stats.Dim{"", stats.ByCountry, stats.ByASN, stats.ByFamily} {
		wg.Go(func() {
			q := q24
			q.By = by
			if _, err := eng.Stats(ctx, q); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	overviewS := time.Since(t0).Seconds()

	t0 = time.Now()
	total, perCountry, err := naive(ctx, db, q.From, q.To)
	if err != nil {
		log.Fatal(err)
	}
	sqlS := time.Since(t0).Seconds()
	if total != cold.UniqueIPs {
		log.Fatalf("COUNT(DISTINCT) says %d, stats %d", total, cold.UniqueIPs)
	}
	for _, row := range cold.Rows {
		if perCountry[row.Key] != row.UniqueIPs {
			log.Fatalf("%s: COUNT(DISTINCT) says %d, stats %d", row.Key, perCountry[row.Key], row.UniqueIPs)
		}
	}
	fmt.Printf("load_s %.3f\ncold_s %.3f\nwarm_s %.4f\ncut24h_s %.4f\noverview4_s %.4f\nsql_s %.3f\nunique_ips %d\nrows %d\ndays %d\nips_per_day %d\n",
		loadS, coldS, warmS, cutS, overviewS, sqlS, cold.UniqueIPs, len(cold.Rows), *days, *perDay)
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

func load(ctx context.Context, db *sqlite.DB, start time.Time, days, perDay int, stay float64) error {
	sqldb := db.SQL()
	// Bulk load without the secondary indexes, then rebuild them.
	for _, ix := range []string{"event_day_ip_country", "event_day_ip_asn", "event_day_ip_addr"} {
		if _, err := sqldb.ExecContext(ctx, "DROP INDEX IF EXISTS "+ix); err != nil {
			return err
		}
	}
	cc, cum := countries()
	rng := rand.New(rand.NewPCG(7, 11))
	var of16 [65536]uint8
	for i := range of16 {
		c, _ := slices.BinarySearch(cum, rng.Float64())
		of16[i] = uint8(min(c, len(cc)-1))
	}
	country := func(ip uint32) int { return int(of16[ip>>16]) }
	var prev []uint32
	const rowsPer = 250
	const cols = 12
	ph := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	stmt := "INSERT INTO event_day_ip (day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, bot_ids) VALUES " +
		strings.TrimSuffix(strings.Repeat(ph+",", rowsPer), ",")
	for d := range days {
		day := start.AddDate(0, 0, d)
		seen := make(map[uint32]struct{}, perDay)
		var ips []uint32
		if len(prev) > 0 {
			for _, ip := range prev {
				if rng.Float64() < stay {
					seen[ip] = struct{}{}
					ips = append(ips, ip)
				}
			}
		}
		for len(ips) < perDay {
			ip := rng.Uint32()
			if _, ok := seen[ip]; ok || ip>>24 == 0 || ip>>24 >= 224 {
				continue
			}
			seen[ip] = struct{}{}
			ips = append(ips, ip)
		}
		slices.Sort(ips)
		prev = ips
		tx, err := sqldb.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, stmt)
		if err != nil {
			return err
		}
		hits := make(map[int]int64)
		args := make([]any, 0, rowsPer*cols)
		ts := day.Add(time.Hour).UnixNano()
		for i := 0; i+rowsPer <= len(ips); i += rowsPer {
			args = args[:0]
			for _, ip := range ips[i : i+rowsPer] {
				c := country(ip)
				hits[c] += 3
				args = append(args, day.Unix(), []byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}, "rustock", "bench",
					cc[c], 64500+c, "", ts, ts+3600e9, 3, int64(store.ProtoHTTP), "")
			}
			if _, err := ins.ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		if len(ips)%rowsPer != 0 {
			return fmt.Errorf("-ips must be a multiple of %d", rowsPer)
		}
		for c, h := range hits {
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_rollups (day, country, asn, family, case_id, ips, resolver_ips, hits) VALUES (?, ?, ?, 'rustock', 'bench', 0, 0, ?)`,
				day.Unix(), cc[c], 64500+c, h); err != nil {
				return err
			}
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "loaded %s\n", day.Format(time.DateOnly))
	}
	for _, ix := range []string{
		"CREATE INDEX event_day_ip_country ON event_day_ip (day, country, ip)",
		"CREATE INDEX event_day_ip_asn ON event_day_ip (day, asn, ip)",
		"CREATE INDEX event_day_ip_addr ON event_day_ip (ip, day)",
	} {
		if _, err := sqldb.ExecContext(ctx, ix); err != nil {
			return err
		}
	}
	_, err := sqldb.ExecContext(ctx, "ANALYZE")
	return err
}

// naive is the COUNT(DISTINCT …) baseline: the total and per country.
func naive(ctx context.Context, db *sqlite.DB, from, to time.Time) (uint64, map[string]uint64, error) {
	var total uint64
	direct := int64(store.Direct)
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(DISTINCT ip) FROM event_day_ip WHERE day >= ? AND day < ? AND protocols & ? != 0`,
		from.Unix(), to.Unix(), direct).Scan(&total); err != nil {
		return 0, nil, err
	}
	rows, err := db.SQL().QueryContext(ctx, `SELECT country, COUNT(DISTINCT ip) FROM event_day_ip WHERE day >= ? AND day < ? AND protocols & ? != 0 GROUP BY country`,
		from.Unix(), to.Unix(), direct)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	out := make(map[string]uint64)
	for rows.Next() {
		var c string
		var n uint64
		if err := rows.Scan(&c, &n); err != nil {
			return 0, nil, err
		}
		out[c] = n
	}
	return total, out, rows.Err()
}
