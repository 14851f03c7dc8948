// Command sinkd runs takedown's connection sinkhole alone for
// bench/simulate/run.sh: an HTTP and a UDP listener that trust PROXY headers
// from loopback (as the demo does), every beacon an event on the bounded
// queue, drained and counted by one goroutine as the pipeline would. The UDP
// listener stands in for the DNS sinkhole: both read a PROXY v2 header and
// a datagram and record one event. On SIGINT/SIGTERM it prints
// "events=N dropped=M" on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/takedown/takedown/bench/internal/drain"
	"github.com/takedown/takedown/internal/connsink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8080", "HTTP listen address")
	udpAddr := flag.String("udp", "127.0.0.1:5353", "UDP listen address")
	queue := flag.Int("queue", 1<<16, "event queue size")
	flag.Parse()
	if err := run(*httpAddr, *udpAddr, *queue); err != nil {
		fmt.Fprintln(os.Stderr, "sinkd:", err)
		os.Exit(1)
	}
}

func run(httpAddr, udpAddr string, queue int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	trust, err := proxyproto.ParseTrust([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		return err
	}
	q := event.NewQueue(queue)
	var ls []*connsink.Listener
	for _, o := range []struct {
		kind connsink.Kind
		addr string
	}{{connsink.KindHTTP, httpAddr}, {connsink.KindUDP, udpAddr}} {
		l, err := connsink.New(connsink.Options{Kind: o.kind, Addr: o.addr, Sensor: "bench", TrustedProxies: trust,
			Handoff: q, Limits: connsink.Limits{MaxConns: 60000}})
		if err != nil {
			return err
		}
		ls = append(ls, l)
	}
	count := drain.Start(ctx, q)
	var wg sync.WaitGroup
	errs := make(chan error, len(ls))
	for _, l := range ls {
		wg.Go(func() { errs <- l.Run(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	count.Report(os.Stderr)
	return nil
}
