package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// server is a running `takedown serve`.
type server struct {
	cmd    *exec.Cmd
	logs   *lockedBuffer // read while the process runs
	exited chan struct{} // closed when the process has exited, err set
	err    error
}

// wait waits for the process to exit and returns how it ended; any number
// of callers (the test, the cleanup) may wait.
func (s *server) wait() error {
	<-s.exited
	return s.err
}

// startServe starts the binary's serve command and waits until addr
// accepts connections.
func startServe(t testing.TB, addr string, args ...string) *server {
	t.Helper()
	return startServeCmd(t, exec.Command(binary, append([]string{"serve"}, args...)...), addr)
}

// startServeCmd starts cmd, a serve command, and waits until addr accepts
// connections; the process is killed at the test's end.
func startServeCmd(t testing.TB, cmd *exec.Cmd, addr string) *server {
	t.Helper()
	s := &server{cmd: cmd, logs: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		s.wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("serve exited early: %v\n%s", s.err, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen on %s:\n%s", addr, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func storedHealth(t testing.TB, data string) (stored uint64, rows int64) {
	t.Helper()
	db, err := sqlite.OpenDir(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	h, err := es.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM events`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	return h.Stored, rows
}

// beacon sends one Rustock-like beacon on a new connection.
func beacon(client *http.Client, addr string) error {
	req, err := http.NewRequest("POST", "http://"+addr+"/login.php", bytes.NewReader(make([]byte, 96)))
	if err != nil {
		return err
	}
	req.Host = "aactsxgiv.example"
	req.Close = true
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// beaconLoad sends beacons to addr on n connections at a time, one request
// each, until ctx is done; sent counts the answered ones and wg ends with
// the senders.
func beaconLoad(ctx context.Context, addr string, n int) (sent *atomic.Int64, wg *sync.WaitGroup) {
	sent, wg = new(atomic.Int64), new(sync.WaitGroup)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				if beacon(client, addr) == nil {
					sent.Add(1)
				}
			}
		})
	}
	return sent, wg
}

// Under sustained load the server is killed with SIGKILL; every event it
// had counted as stored is still there after the restart.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mustRun(t, nil, "--data", data, "demo", "--exports-only")
	port := testtool.FreePort(t, "tcp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "takedown.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\ndns:\n  listen: []\nlisteners:\n  - {kind: http, listen: %q}\n", data, addr)), 0o644)

	srv := startServe(t, addr, "--config", conf)
	ctx, stop := context.WithCancel(t.Context())
	sent, wg := beaconLoad(ctx, addr, 4)
	// Wait until a good number of events are stored, read the counter,
	// and kill the server at once, mid-load.
	var acked uint64
	for deadline := time.Now().Add(60 * time.Second); ; {
		acked, _ = storedHealth(t, data)
		if acked >= 500 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("only %d events stored after a minute (%d sent):\n%s", acked, sent.Load(), srv.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.wait()
	stop()
	wg.Wait()

	stored, rows := storedHealth(t, data)
	t.Logf("sent %d, stored counter %d before kill -9, %d after, %d event rows", sent.Load(), acked, stored, rows)
	if stored < acked {
		t.Fatalf("stored counter went back from %d to %d after kill -9", acked, stored)
	}
	if rows != int64(stored) {
		t.Fatalf("%d events stored but the counter says %d", rows, stored)
	}
	// The restarted server goes on counting from there.
	srv = startServe(t, addr, "--config", conf)
	if err := beacon(http.DefaultClient, addr); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, srv.logs)
	}
	after, rows2 := storedHealth(t, data)
	// (startServe's readiness probe is a connection too, and is recorded.)
	if after < stored+1 || rows2 != int64(after) {
		t.Fatalf("after restart and one beacon: counter %d, rows %d; want at least %d and equal", after, rows2, stored+1)
	}
	// The evidence log survived the kill (the restart extended its last
	// checkpoint) and re-hashes cleanly; the court report carries its
	// latest signed checkpoint.
	r := mustRun(t, nil, "--data", data, "evidence", "audit")
	var entries uint64
	if _, err := fmt.Sscanf(r.stdout, "evidence audit passed: %d entries", &entries); err != nil {
		t.Fatalf("evidence audit: %s (%v)", r.stdout, err)
	}
	// Every stored event is a leaf, those whose append the kill cut off
	// included (the restart appends what the log lacks), each once.
	if entries != after {
		t.Fatalf("the evidence log holds %d entries; %d events are stored", entries, after)
	}
	report := filepath.Join(dir, "status.html")
	mustRun(t, nil, "--data", data, "report", "status", "--case", "demo-b107", "--at", time.Now().UTC().Format("2006-01-02"), "-o", report)
	if b, _ := os.ReadFile(report); !strings.Contains(string(b), "Latest signed checkpoint") {
		t.Fatal("the status report lacks the evidence checkpoint")
	}
}
