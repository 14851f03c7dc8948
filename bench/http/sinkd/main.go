// Command sinkd runs takedown's plain-HTTP sinkhole listener alone, for
// bench/http/run.sh: every request becomes an event on the bounded queue,
// and one goroutine drains and counts them as the pipeline would. On
// SIGINT/SIGTERM it prints "events=N dropped=M" on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/takedown/takedown/bench/internal/drain"
	"github.com/takedown/takedown/internal/connsink"
	"github.com/takedown/takedown/internal/event"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	queue := flag.Int("queue", 65536, "event queue size")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	q := event.NewQueue(*queue)
	l, err := connsink.New(connsink.Options{Kind: connsink.KindHTTP, Addr: *addr, Sensor: "bench", Handoff: q})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	count := drain.Start(ctx, q)
	if err := l.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	count.Wait()
	pprof.StopCPUProfile()
	count.Report(os.Stderr)
}
