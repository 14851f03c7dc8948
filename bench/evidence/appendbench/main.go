// Command appendbench measures the evidence log's append rate with
// checkpointing on: batches of real event records appended for a fixed
// time while Log.Run writes a signed checkpoint every -checkpoint-every,
// then a final checkpoint and a full audit. It prints raw figures, one
// "key value" per line; bench/evidence/run.sh turns them into the bench line.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
)

func main() {
	dir := flag.String("dir", "", "log directory (made; must be on the disk under test, not tmpfs)")
	dur := flag.Duration("duration", 5*time.Second, "how long to append")
	batch := flag.Int("batch", 1000, "records per Append (one fsync each)")
	every := flag.Duration("checkpoint-every", time.Second, "checkpoint period")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "appendbench: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *dur, *batch, *every); err != nil {
		fmt.Fprintln(os.Stderr, "appendbench:", err)
		os.Exit(1)
	}
}

func run(dir string, dur time.Duration, batch int, every time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := evidence.Open(ctx, dir, evidence.Options{CheckpointEvery: every})
	if err != nil {
		return err
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	// Realistic records: HTTP sinkhole events as the pipeline passes them.
	recs := make([][]byte, batch)
	ts := time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC)
	ids := event.NewIDGen()
	for i := range recs {
		e := &event.Event{ID: ids.Next(), Timestamp: ts.Add(time.Duration(i) * time.Millisecond), Protocol: event.ProtoHTTP,
			Transport: "tcp", SrcIP: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), SrcPort: uint16(1024 + i),
			SrcASN: 64500, SrcGeo: "US", DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Case: "rustock-2011",
			Family: "rustock", HTTPMethod: "POST", HTTPURL: "/login.php", HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0 (compatible; MSIE 7.0)",
			PayloadSize: 512, PayloadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
		if recs[i], err = event.MarshalJSONL(e); err != nil {
			return err
		}
	}
	var n, bytes int
	start := time.Now()
	for time.Since(start) < dur {
		if _, err := l.Append(ctx, recs); err != nil {
			return err
		}
		n += len(recs)
		for _, r := range recs {
			bytes += len(r)
		}
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		return err
	}
	cps, err := l.Checkpoints()
	if err != nil {
		return err
	}
	astart := time.Now()
	res, err := l.AuditResult(context.Background())
	if err != nil {
		return err
	}
	aelapsed := time.Since(astart)
	fmt.Printf("leaves %d\nseconds %.3f\nleaves_per_s %.0f\nbatch %d\nrecord_bytes_avg %d\ncheckpoints %d\naudit_leaves %d\naudit_seconds %.3f\naudit_leaves_per_s %.0f\n",
		n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), batch, bytes/max(n, 1), len(cps), res.Leaves, aelapsed.Seconds(), float64(res.Leaves)/aelapsed.Seconds())
	return nil
}
