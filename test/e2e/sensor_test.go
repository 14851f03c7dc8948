package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// A sensor publishes its listener's events to a real nats-server; a
// collector stores them; every beacon is stored exactly once.
func TestSensorToCollector(t *testing.T) {
	natsURL := startNATS(t)
	dir := t.TempDir()

	sensorData, collectorData := filepath.Join(dir, "sensor"), filepath.Join(dir, "collector")
	mustRun(t, nil, "--data", sensorData, "demo", "--exports-only")
	mustRun(t, nil, "--data", collectorData, "demo", "--exports-only")
	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	sconf := filepath.Join(dir, "sensor.yaml")
	// Every beacon comes from 127.0.0.1: the per-source budget, which would
	// fold most of them into summary records (natsbus.TestSensorBudget), is
	// off here, where each event must arrive as it was sent.
	os.WriteFile(sconf, []byte(fmt.Sprintf("data: %s\ndns:\n  listen: []\nweb:\n  listen: \"\"\nlisteners:\n  - {kind: http, listen: %q}\npipeline:\n  source_budget: {rate: 0}\n", sensorData, addr)), 0o644)

	col := exec.Command(binary, "--data", collectorData, "collector", "--nats", natsURL)
	colLog := &lockedBuffer{}
	col.Stdout, col.Stderr = colLog, colLog
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	colDone := make(chan error, 1)
	go func() { colDone <- col.Wait() }()
	t.Cleanup(func() { col.Process.Kill(); <-colDone })

	sensor := exec.Command(binary, "--config", sconf, "sensor", "--nats", natsURL, "--sensor", "sink-a")
	sensorLog := &lockedBuffer{}
	sensor.Stdout, sensor.Stderr = sensorLog, sensorLog
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	sensorDone := make(chan error, 1)
	go func() { sensorDone <- sensor.Wait() }()
	t.Cleanup(func() { sensor.Process.Kill(); <-sensorDone })
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close() // recorded as one (empty) connection event
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sensor did not listen:\n%s", sensorLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	const beacons = 200
	for range beacons {
		if err := beacon(client, addr); err != nil {
			t.Fatal(err)
		}
	}
	// A service manager's reload: the sensor and the collector reload;
	// neither stops, and nothing is lost.
	sensor.Process.Signal(syscall.SIGHUP)
	col.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(sensorLog.String(), `msg=reloaded`) || !strings.Contains(colLog.String(), `msg=reloaded`); {
		select {
		case err := <-sensorDone:
			t.Fatalf("the sensor stopped on SIGHUP: %v\n%s", err, sensorLog.String())
		case err := <-colDone:
			t.Fatalf("the collector stopped on SIGHUP: %v\n%s", err, colLog.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP: no reload logged\nsensor:\n%s\ncollector:\n%s", sensorLog.String(), colLog.String())
		}
	}
	// Stop the sensor (it publishes what is queued), then wait for the
	// collector to store everything.
	sensor.Process.Signal(syscall.SIGTERM)
	if err := <-sensorDone; err != nil {
		t.Fatalf("sensor: %v\n%s", err, sensorLog.String())
	}
	sensorDone <- nil
	want := uint64(beacons + 1) // the readiness probe's connection too
	for deadline := time.Now().Add(60 * time.Second); ; {
		col.Process.Signal(syscall.SIGTERM) // the collector stores its batch, acks, and exits
		select {
		case err := <-colDone:
			colDone <- err
		case <-time.After(10 * time.Second):
			t.Fatalf("collector did not stop:\n%s", colLog.String())
		}
		stored, rows := storedHealth(t, collectorData)
		if stored >= want || time.Now().After(deadline) {
			if stored != want || rows != int64(want) {
				t.Fatalf("collector stored %d (%d rows); want %d\ncollector:\n%s\nsensor:\n%s", stored, rows, want, colLog.String(), sensorLog.String())
			}
			break
		}
		// Not all in yet: run the collector again (the durable consumer
		// resumes where it stopped).
		<-colDone
		col = exec.Command(binary, "--data", collectorData, "collector", "--nats", natsURL)
		col.Stdout, col.Stderr = colLog, colLog
		if err := col.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { colDone <- col.Wait() }()
		time.Sleep(2 * time.Second)
	}
}
