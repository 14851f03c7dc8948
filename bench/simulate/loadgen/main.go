// Command loadgen sends simulated beacons as fast as a sinkhole takes them,
// for bench/simulate/run.sh, and prints "beacons=N failed=F seconds=S" on
// stdout.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/takedown/takedown/internal/simulate"
)

func main() {
	httpAddr := flag.String("http", "", "HTTP sinkhole")
	dnsAddr := flag.String("dns", "", "DNS (UDP) sinkhole")
	dnsShare := flag.Float64("dns-share", 0.1, "fraction of DNS beacons when both are set")
	dur := flag.Duration("duration", 10*time.Second, "how long")
	conc := flag.Int("concurrency", 64, "beacons in flight")
	bots := flag.Int("bots", 20000, "population")
	rate := flag.Float64("rate", 0, "beacons per second (0: as fast as possible)")
	flag.Parse()
	o := simulate.DefaultOptions(time.Now())
	o.Bots = *bots
	o.Seed = 1
	o.HTTPSShare = -1
	o.Domains = []string{"aactsxgiv.example", "aeebkbghps.example", "afijykyn.example", "agpflegfiugm.example"}
	sim, err := simulate.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	rep, err := sim.RunLive(ctx, simulate.Targets{HTTP: *httpAddr, DNS: *dnsAddr, DNSShare: *dnsShare, Concurrency: *conc, Rate: *rate})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	fmt.Printf("beacons=%d http=%d dns=%d failed=%d seconds=%.3f\n", rep.Beacons(), rep.HTTP, rep.DNS, rep.Failed, rep.Duration.Seconds())
	if rep.Err != nil {
		fmt.Printf("first_error=%q errors=%v\n", rep.Err.Error(), rep.Errors)
	}
}
