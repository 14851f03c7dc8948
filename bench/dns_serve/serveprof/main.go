// Command serveprof is `takedown` with a CPU profile around it, for
// bench/dns_serve: serve has no profiling listener, so the benchmark runs
// the same CLI entry point under runtime/pprof and writes the profile of
// the whole run (go tool pprof -top it). Usage: serveprof PROFILE ARGS…
// It is not for use outside bench/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/takedown/takedown/internal/cli"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: serveprof PROFILE takedown-args…")
		os.Exit(2)
	}
	f, err := os.Create(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	f.Close()
	os.Exit(code)
}
