// Command appendbench measures the evidence log. It prints raw figures, one
// "key value" per line; bench/evidence/run.sh turns them into bench lines.
//
//	-mode append  batches of real event records appended for -duration to a
//	              fresh log while Log.Run writes a signed checkpoint every
//	              -checkpoint-every, then a final checkpoint and a full audit.
//	-mode build   appends synthetic records of -record-bytes to the log in
//	              -dir until it holds -leaves (resuming a log already there),
//	              then checkpoints: the large log the open benchmark reuses.
//	-mode open    times Open of the log in -dir, then -proofs inclusion
//	              proofs of random entries (each checked with tlog), then
//	              -duration of appends of real event records at that size.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
)

func main() {
	mode := flag.String("mode", "append", "append, build or open")
	dir := flag.String("dir", "", "log directory (made; must be on the disk under test, not tmpfs)")
	dur := flag.Duration("duration", 5*time.Second, "how long to append")
	batch := flag.Int("batch", 8192, "records per Append (one fsync each; the pipeline's largest batch)")
	every := flag.Duration("checkpoint-every", time.Second, "checkpoint period")
	leaves := flag.Uint64("leaves", 100_000_000, "build: the log's size")
	recBytes := flag.Int("record-bytes", 64, "build: bytes per synthetic record")
	proofs := flag.Int("proofs", 1000, "open: inclusion proofs to make and check")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "appendbench: -dir is required")
		os.Exit(2)
	}
	var err error
	switch *mode {
	case "append":
		err = runAppend(*dir, *dur, *batch, *every)
	case "build":
		err = build(*dir, *leaves, *recBytes, *batch)
	case "open":
		err = openProve(*dir, *proofs, *dur, *batch)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "appendbench:", err)
		os.Exit(1)
	}
}

// eventRecords returns n realistic records: HTTP sinkhole events as the
// pipeline passes them (about 490 bytes each).
func eventRecords(n int) ([][]byte, error) {
	recs := make([][]byte, n)
	ts := time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC)
	ids := event.NewIDGen()
	for i := range recs {
		e := &event.Event{ID: ids.Next(), Timestamp: ts.Add(time.Duration(i) * time.Millisecond), Protocol: event.ProtoHTTP,
			Transport: "tcp", SrcIP: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), SrcPort: uint16(1024 + i),
			SrcASN: 64500, SrcGeo: "US", DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80, Case: "rustock-2011",
			Family: "rustock", HTTPMethod: "POST", HTTPURL: "/login.php", HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0 (compatible; MSIE 7.0)",
			PayloadSize: 512, PayloadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
		var err error
		if recs[i], err = event.MarshalJSONL(e); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// appendFor appends recs repeatedly for dur and returns the leaves
// appended, their bytes and the time taken.
func appendFor(ctx context.Context, l *evidence.Log, recs [][]byte, dur time.Duration) (int, int, time.Duration, error) {
	var n, bytes int
	start := time.Now()
	for time.Since(start) < dur {
		if _, err := l.Append(ctx, recs); err != nil {
			return n, bytes, time.Since(start), err
		}
		n += len(recs)
		for _, r := range recs {
			bytes += len(r)
		}
	}
	return n, bytes, time.Since(start), nil
}

func runAppend(dir string, dur time.Duration, batch int, every time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := evidence.Open(ctx, dir, evidence.Options{CheckpointEvery: every})
	if err != nil {
		return err
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	recs, err := eventRecords(batch)
	if err != nil {
		return err
	}
	n, bytes, elapsed, err := appendFor(ctx, l, recs, dur)
	if err != nil {
		return err
	}
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

func build(dir string, leaves uint64, recBytes, batch int) error {
	ctx := context.Background()
	l, err := evidence.Open(ctx, dir, evidence.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	recs := make([][]byte, batch)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range recs {
		b := make([]byte, recBytes)
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		recs[i] = b
	}
	from := l.Size()
	start := time.Now()
	last := start
	for n := l.Size(); n < leaves; n = l.Size() {
		k := min(uint64(batch), leaves-n)
		if _, err := l.Append(ctx, recs[:k]); err != nil {
			return err
		}
		if time.Since(last) > 30*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "appendbench: %d of %d leaves, %.0f leaves/s\n", n+k, leaves, float64(n+k-from)/time.Since(start).Seconds())
		}
	}
	elapsed := time.Since(start)
	if _, err := l.Checkpoint(ctx); err != nil {
		return err
	}
	fmt.Printf("build_leaves %d\nbuild_appended %d\nbuild_seconds %.3f\nbuild_leaves_per_s %.0f\nbuild_record_bytes %d\n",
		l.Size(), l.Size()-from, elapsed.Seconds(), float64(l.Size()-from)/max(elapsed.Seconds(), 1e-9), recBytes)
	return nil
}

func openProve(dir string, proofs int, dur time.Duration, batch int) error {
	ctx := context.Background()
	start := time.Now()
	l, err := evidence.Open(ctx, dir, evidence.Options{})
	if err != nil {
		return err
	}
	openSec := time.Since(start).Seconds()
	defer l.Close()
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pstart := time.Now()
	for range proofs {
		i := rng.Uint64N(cp.Size)
		p, rec, err := l.ProveEntry(cp, i)
		if err != nil {
			return err
		}
		leaf := evidence.LeafHash(p.Extra, rec)
		if err := tlog.CheckRecord(p.Proof, int64(cp.Size), cp.Root, int64(i), leaf); err != nil {
			return fmt.Errorf("proof of entry %d: %w", i, err)
		}
	}
	proveSec := time.Since(pstart).Seconds() / float64(max(proofs, 1))
	recs, err := eventRecords(batch)
	if err != nil {
		return err
	}
	n, _, elapsed, err := appendFor(ctx, l, recs, dur)
	if err != nil {
		return err
	}
	fmt.Printf("open_leaves %d\nopen_seconds %.4f\nprove_seconds %.6f\nappend_leaves %d\nappend_seconds %.3f\nappend_leaves_per_s %.0f\nappend_batch %d\n",
		cp.Size, openSec, proveSec, n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), batch)
	return nil
}
