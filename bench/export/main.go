// Command export is the export benchmark's generator: it builds a synthetic
// set (100,000 domains and 10,000 prefixes by default), times every format
// with export.Measure, and writes each export into -out for the consumer
// anchors that bench/export/run.sh times. It prints one line per format:
//
//	FORMAT MILLISECONDS BYTES
//
// It is a benchmark tool, not part of the takedown binary.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/export"
)

func main() {
	if err := run(); err != nil {
		slog.Error("export bench failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	domains := flag.Int("domains", 100_000, "seized domains in the set")
	prefixes := flag.Int("prefixes", 10_000, "seized prefixes in the set")
	rounds := flag.Int("rounds", 5, "exports per format to average")
	out := flag.String("out", "", "directory to write one export per format into (none if empty)")
	flag.Parse()

	set := export.SyntheticSet(*domains, *prefixes, time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC))
	opt := export.Options{SinkholeA: netip.MustParseAddr("192.0.2.53"), SinkholeAAAA: netip.MustParseAddr("2001:db8:53::53")}
	for _, name := range export.Names() {
		m, err := export.Measure(name, set, opt, *rounds)
		if err != nil {
			return err
		}
		fmt.Printf("%s %.1f %d\n", name, float64(m.PerExport.Microseconds())/1000, m.Bytes)
		if *out == "" {
			continue
		}
		e, err := export.Lookup(name)
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(*out, name+".export"))
		if err != nil {
			return err
		}
		err = e.Export(f, set, opt)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s export: %w", name, err)
		}
	}
	return nil
}
