// Command takedown runs a court-ordered botnet takedown end to end. See
// README.md and `takedown --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/takedown/takedown/internal/cli"
)

func main() {
	restrictUmask()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
