//go:build bench

// Package propagationbench measures how long an order imported on one node
// takes to be answered by a sensor that follows the shared PostgreSQL
// registry (issue 15): a real `takedown sensor --db postgres://…` with a
// DNS sinkhole on loopback and registry.poll at an hour, so that only the
// change notification (LISTEN/NOTIFY) can bring the order in. Each order
// is imported through the store, as `takedown order import` on another
// node would, and the clock runs from the import's commit to the first
// query the sensor answers with the sinkhole's address. Goal: p99 ≤ 1 s.
// Run it with `make bench`, or:
//
//	go test -tags bench -run TestBench -v -timeout 10m ./bench/registry_propagation/
package propagationbench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/testtool"
)

func TestBenchRegistryPropagation(t *testing.T) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("BENCH_PROPAGATION_ORDERS")); err == nil && v > 0 {
		n = v
	}
	bin := os.Getenv("TAKEDOWN_BIN")
	dir := t.TempDir()
	if bin == "" {
		bin = filepath.Join(dir, "takedown")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/takedown").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	dsn := pg.NewDatabase(t)
	node, err := postgres.Open(t.Context(), dsn) // the node the orders are imported on
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	natsURL, _ := testtool.StartNATS(t)

	dnsAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreeBothPort(t))
	sconf := filepath.Join(dir, "sensor.yaml")
	os.WriteFile(sconf, []byte(fmt.Sprintf("data: %s\nregistry:\n  poll: 1h\ndns:\n  listen: [%q]\n  rrl: {enabled: false}\nweb:\n  listen: \"\"\nlisteners: []\n",
		filepath.Join(dir, "sensor"), dnsAddr)), 0o600)
	sensor := exec.Command(bin, "--config", sconf, "sensor", "--nats", natsURL, "--db", dsn, "--sensor", "bench")
	logf, _ := os.Create(filepath.Join(dir, "sensor.log"))
	sensor.Stdout, sensor.Stderr = logf, logf
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sensor.Process.Signal(syscall.SIGTERM); sensor.Wait() }()

	client := &dns.Client{Timeout: time.Second}
	answered := func(name string) bool {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		r, _, err := client.Exchange(m, dnsAddr)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		m := new(dns.Msg)
		m.SetQuestion("probe.example.", dns.TypeA)
		if _, _, err := client.Exchange(m, dnsAddr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("sensor did not answer:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	now := time.Now().UTC()
	lat := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("c2-%04d.propagation.example", i)
		ind, err := registry.Parse(name, "")
		if err != nil {
			t.Fatal(err)
		}
		o := registry.Order{Case: fmt.Sprintf("prop-%04d", i), Court: "bench", Family: "rustock",
			Effective: now.AddDate(0, 0, -1).Truncate(24 * time.Hour), Expires: now.AddDate(1, 0, 0).Truncate(24 * time.Hour)}
		if _, err := node.Import(t.Context(), o, []registry.Indicator{ind}, "bench", false); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		for !answered(name) {
			if time.Since(t0) > 30*time.Second {
				b, _ := os.ReadFile(logf.Name())
				t.Fatalf("order %d not answered after 30 s:\n%s", i, b)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("registry_propagation_p50 project=%.1fms anchor=goal:1000ms ratio=%.1f\n", ms(p(0.50)), 1000/ms(p(0.50)))
	fmt.Printf("registry_propagation_p99 project=%.1fms anchor=goal:1000ms ratio=%.1f (%d orders, max %.1fms)\n", ms(p(0.99)), 1000/ms(p(0.99)), n, ms(lat[len(lat)-1]))
}
