// Command sinkd runs takedown's DNS sinkhole alone, for bench/dns/run.sh:
// it seizes -domains names (d00000.test … in one case) from an in-memory
// registry, answers on -addr (UDP and TCP) with rate limiting off, and
// hands every query as an event to a bounded queue that one goroutine
// drains and counts, as the pipeline would. On SIGINT/SIGTERM it prints
// "events=N dropped=M" on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/takedown/takedown/bench/internal/drain"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
)

// memSource is a fixed in-memory registry.
type memSource struct{ set *registry.ActiveSet }

func (m memSource) Active(_ context.Context, at time.Time, _ string) (*registry.ActiveSet, error) {
	s := *m.set
	s.At = at
	return &s, nil
}

func (m memSource) Serial(context.Context) (uint32, error) { return m.set.Serial, nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:5353", "listen address (UDP and TCP)")
	domains := flag.Int("domains", 10000, "number of seized domains d00000.test …")
	queue := flag.Int("queue", 65536, "event queue size")
	rrl := flag.Bool("rrl", false, "enable response rate limiting")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()

	set := &registry.ActiveSet{Serial: 1}
	eff, exp := time.Date(2011, 3, 16, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range *domains {
		set.Entries = append(set.Entries, registry.Entry{Kind: registry.KindDomain, Value: fmt.Sprintf("d%05d.test", i),
			Case: "bench", Family: "rustock", Effective: eff, Expires: exp})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	q := event.NewQueue(*queue)
	s, err := dnssink.New(ctx, dnssink.Options{
		Listen:   []string{*addr},
		Source:   memSource{set},
		Events:   q,
		Sensor:   "bench",
		Sinkhole: dnssink.Addrs{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		RRL:      dnssink.RRL{Disabled: !*rrl},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	count := drain.Start(ctx, q)
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	count.Wait()
	pprof.StopCPUProfile()
	count.Report(os.Stderr)
}
