// Command dnsdga runs takedown's DNS sinkhole for bench/dga/run.sh (the
// dns_dga benchmark): an SQLite registry in -dir with -domains fixed names
// (d00000.test …) and, with -dga, two generator orders covering two years
// (Necurs and newGOZ under .test: thousands of names in force, millions over
// the orders' lives), served on -addr with rate limiting off and every query
// handed as an event to a drained queue, as bench/dns/sinkd does. With
// -names FILE it writes the generated names in force now and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/takedown/takedown/bench/internal/drain"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5353", "listen address (UDP and TCP)")
	dir := flag.String("dir", "", "data directory (required)")
	domains := flag.Int("domains", 10000, "number of seized domains d00000.test …")
	withDGA := flag.Bool("dga", false, "add two generator orders covering two years")
	names := flag.String("names", "", "write the generated names in force now to this file and exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *dir, *domains, *withDGA, *names); err != nil {
		fmt.Fprintln(os.Stderr, "dnsdga:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, dir string, domains int, withDGA bool, names string) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	db, err := sqlite.OpenDir(ctx, filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer db.Close()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if n, _ := db.Serial(ctx); n == 0 {
		var inds []registry.Indicator
		for i := range domains {
			inds = append(inds, registry.Indicator{Kind: registry.KindDomain, Value: fmt.Sprintf("d%05d.test", i)})
		}
		o := registry.Order{Case: "bench", Court: "bench", Family: "rustock", Effective: today.AddDate(-1, 0, 0), Expires: today.AddDate(2, 0, 0)}
		if _, err := db.Import(ctx, o, inds, "bench", false); err != nil {
			return err
		}
		if withDGA {
			for i, spec := range []string{"dga:necurs?tlds=test", "dga:newgoz?tlds=test"} {
				ind, err := registry.Parse(spec, "")
				if err != nil {
					return err
				}
				sp, _ := registry.DGASpec(ind)
				sp.Resolve(0)
				ind.Value = sp.String()
				o := registry.Order{Case: fmt.Sprintf("dga-%d", i), Court: "bench", Effective: today.AddDate(0, -1, 0), Expires: today.AddDate(0, 23, 0)}
				if _, err := db.Import(ctx, o, []registry.Indicator{ind}, "bench", false); err != nil {
					return err
				}
			}
		}
	}
	if names != "" {
		set, err := db.Active(ctx, time.Now(), "")
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, e := range set.Entries {
			if strings.HasPrefix(e.Case, "dga-") {
				b.WriteString(e.Value + "\n")
			}
		}
		return os.WriteFile(names, []byte(b.String()), 0o644)
	}
	q := event.NewQueue(65536)
	s, err := dnssink.New(ctx, dnssink.Options{
		Listen:   []string{addr},
		Source:   db,
		Events:   q,
		Sensor:   "bench",
		Sinkhole: dnssink.Addrs{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		RRL:      dnssink.RRL{Disabled: true},
	})
	if err != nil {
		return err
	}
	count := drain.Start(ctx, q)
	if err := s.Run(ctx); err != nil {
		return err
	}
	count.Wait()
	count.Report(os.Stderr)
	return nil
}
