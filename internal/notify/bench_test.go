//go:build bench

package notify_test

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// TestBenchReportNetwork measures one network's daily report (aggregates
// scanned, the day's raw events decoded for the details, the Shadowserver
// CSV written) against the anchor: sqlite3 exporting the same network's
// aggregate rows as CSV from the same database, with no details. It prints
// one line: NAME project=SECONDS anchor=SECONDS ratio=PROJECT/ANCHOR.
//
//	go test -tags bench -run TestBenchReportNetwork -v ./internal/notify/
func TestBenchReportNetwork(t *testing.T) {
	sqlite3 := testtool.Need(t, "sqlite3", "sqlite3")
	const addrs, asns = 200_000, 10
	db, ns := newStore(t)
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]event.Event, 0, 10_000)
	for i := range addrs {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e := event.Event{ID: fmt.Sprintf("b%d", i), Timestamp: day.Add(time.Duration(i) * 400 * time.Millisecond), Protocol: "http",
			SrcIP: a, SrcPort: uint16(1024 + i%60000), SrcASN: uint32(64500 + i%asns), SrcGeo: "US", DstIP: netip.MustParseAddr("192.0.2.1"),
			DstPort: 80, Family: "rustock", HTTPMethod: "POST", HTTPURL: "/gate.php", HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0"}
		evs = append(evs, e)
		if len(evs) == cap(evs) {
			if _, err := es.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
				t.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	if err := es.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	es.Close()
	nets, _ := netscope.ParseNetworks("AS64500")
	var rows int
	project := best(3, func() {
		r, err := notify.Collect(t.Context(), ns, day, []netscope.Networks{nets})
		if err != nil {
			t.Fatal(err)
		}
		rows = len(r[0])
		for typ, rs := range notify.SplitByType(r[0]) {
			if err := notify.WriteCSV(io.Discard, typ, rs, notify.ReportOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})
	q := fmt.Sprintf(`SELECT day, hex(ip), family, asn, country, first_seen, last_seen, hits FROM event_day_ip WHERE day = %d AND asn = 64500 AND protocols & 30 != 0`, day.Unix())
	var out []byte
	anchor := best(3, func() {
		if out, err = exec.Command(sqlite3, "-csv", db.Path(), q).Output(); err != nil {
			t.Fatal(err)
		}
	})
	if rows != addrs/asns {
		t.Fatalf("%d rows, want %d", rows, addrs/asns)
	}
	line := fmt.Sprintf("notify_report_network project=%.4f anchor=%.4f ratio=%.2f", project.Seconds(), anchor.Seconds(), project.Seconds()/anchor.Seconds())
	fmt.Println(line)
	if dir := os.Getenv("BENCH_RESULTS"); dir != "" {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "notify.txt"), []byte(fmt.Sprintf("%s\nrows=%d events=%d anchor_output_bytes=%d\n", line, rows, addrs, len(out))), 0o644)
	}
}

func best(n int, fn func()) time.Duration {
	var b time.Duration
	for i := range n {
		t0 := time.Now()
		fn()
		if d := time.Since(t0); i == 0 || d < b {
			b = d
		}
	}
	return b
}
