package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// backupStats is the part of `stats --json` the backup test compares.
type backupStats struct {
	UniqueIPs uint64 `json:"unique_ips"`
	Rows      []struct {
		Key       string `json:"key"`
		UniqueIPs uint64 `json:"unique_ips"`
	} `json:"rows"`
	Health struct {
		Received uint64 `json:"events_received"`
		Stored   uint64 `json:"events_stored"`
		Dropped  uint64 `json:"events_dropped"`
	} `json:"health"`
}

func statsOf(t testing.TB, data string, args ...string) (backupStats, string) {
	t.Helper()
	today := time.Now().UTC()
	window := []string{"--from", today.AddDate(0, 0, -1).Format(time.DateOnly), "--to", today.AddDate(0, 0, 2).Format(time.DateOnly)}
	r := mustRun(t, nil, append(append([]string{"--data", data, "stats", "--json"}, window...), args...)...)
	var s backupStats
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, r.stdout)
	}
	return s, r.stdout
}

// A backup of a serve under load (HTTP beacons running throughout),
// restored into a new data dir: every figure is at least what it was when
// the backup started and at most what it was at the end, the store's
// counters match its rows, the evidence log holds exactly the stored
// events, and an evidence package from the restored copy verifies offline
// with the original key. A non-empty data dir and a damaged file are
// refused with exit 2, leaving nothing behind.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mustRun(t, nil, "--data", data, "demo", "--exports-only")
	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb:\n  listen: \"\"\ndns:\n  listen: []\nlisteners:\n  - {kind: http, listen: %q}\n", data, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	origKey := filepath.Join(dir, "orig.pub")
	srv := startServe(t, addr, "--config", conf)

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	sent, wg := beaconLoad(ctx, addr, 3)
	for deadline := time.Now().Add(60 * time.Second); ; {
		if stored, _ := storedHealth(t, data); stored >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events not stored under load (%d sent):\n%s", sent.Load(), srv.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	before, _ := statsOf(t, data)
	file := filepath.Join(dir, "takedown.backup")
	r := mustRun(t, nil, "--data", data, "backup", "-o", file)
	sentAtBackup := sent.Load()
	if !strings.Contains(r.stdout, "backup written to") {
		t.Fatalf("backup said: %s", r.stdout)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	// The load goes on after the backup, then stops.
	for sent.Load() < sentAtBackup+100 {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	stopServe(t, srv)
	after, _ := statsOf(t, data)
	mustRun(t, nil, "--data", data, "evidence", "key", "-o", origKey)

	// The archive: a manifest last, the store and the log inside.
	names := tarNames(t, file)
	for _, want := range []string{"takedown.db", "evidence/journal", "evidence/key", "SHA256SUMS"} {
		if !names[want] {
			t.Errorf("backup lacks %s: %v", want, names)
		}
	}
	for _, never := range []string{"takedown.db-wal", "takedown.db-shm", "evidence/lock"} {
		if names[never] {
			t.Errorf("backup holds %s", never)
		}
	}

	restored := filepath.Join(dir, "restored")
	r = mustRun(t, nil, "--data", restored, "restore", file)
	t.Logf("sent %d (%d at backup), %s", sent.Load(), sentAtBackup, strings.TrimSpace(r.stdout))
	got, gotJSON := statsOf(t, restored)
	if got.Health.Stored < before.Health.Stored || got.Health.Stored > after.Health.Stored {
		t.Fatalf("restored store holds %d events; %d were stored when the backup started, %d at the end", got.Health.Stored, before.Health.Stored, after.Health.Stored)
	}
	if got.UniqueIPs < before.UniqueIPs || got.UniqueIPs > after.UniqueIPs || got.Health.Received < before.Health.Received {
		t.Fatalf("restored figures out of the backup's bounds: before %+v, restored %+v, after %+v", before, got, after)
	}
	stored, rows := storedHealth(t, restored)
	if stored != got.Health.Stored || rows != int64(stored) {
		t.Fatalf("restored store: health says %d stored, stats %d, %d event rows", stored, got.Health.Stored, rows)
	}
	if got.Health.Stored == after.Health.Stored {
		t.Log("note: no event was stored during the backup; the copy's bounds were not exercised this run")
	}
	// The restored store is the backup's own: stats of the archive's
	// takedown.db alone are the restored figures.
	alone := filepath.Join(dir, "alone")
	extractMember(t, file, "takedown.db", filepath.Join(alone, "takedown.db"))
	if _, aloneJSON := statsOf(t, alone); aloneJSON != gotJSON {
		t.Fatalf("stats of the archive's store:\n%s\nof the restored data dir:\n%s", aloneJSON, gotJSON)
	}

	// The evidence log holds exactly the stored events (restore appended
	// those stored while the log was being copied), and verifies.
	r = mustRun(t, nil, "--data", restored, "evidence", "audit")
	var entries uint64
	if _, err := fmt.Sscanf(r.stdout, "evidence audit passed: %d entries", &entries); err != nil || entries != stored {
		t.Fatalf("restored evidence log: %q (%v); %d events stored", r.stdout, err, stored)
	}
	pkg := filepath.Join(dir, "pkg")
	today := time.Now().UTC()
	mustRun(t, nil, "--data", restored, "evidence", "export", "--case", "demo-b107", "--from", today.AddDate(0, 0, -1).Format(time.DateOnly),
		"--to", today.AddDate(0, 0, 2).Format(time.DateOnly), "-o", pkg, "--for", "FBI")
	r = mustRun(t, nil, "evidence", "verify", pkg, "--key", origKey)
	if !strings.Contains(r.stdout, "VERIFIED") {
		t.Fatalf("package from the restored copy:\n%s", r.stdout)
	}

	// Refusals: a data dir that is not empty; a damaged file.
	if r := run(t, nil, "--data", data, "restore", file); r.code != 2 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore into a non-empty data dir: exit %d\n%s", r.code, r.stderr)
	}
	damaged := filepath.Join(dir, "damaged.backup")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh")
	if r := run(t, nil, "--data", fresh, "restore", damaged); r.code != 2 || !strings.Contains(r.stderr, "corrupt") {
		t.Fatalf("restore of a damaged file: exit %d\n%s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(fresh); len(ents) != 0 {
		t.Fatalf("a failed restore left %d entries in the data dir", len(ents))
	}
	if r := run(t, nil, "--data", data, "backup", "-o", file); r.code == 0 {
		t.Fatal("backup over an existing file succeeded")
	}
}

func tarNames(t testing.TB, file string) map[string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	names := map[string]bool{}
	var last string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		last = h.Name
	}
	if last != "MANIFEST.json" {
		t.Fatalf("last member is %q, want MANIFEST.json", last)
	}
	return names
}

func extractMember(t testing.TB, file, name, to string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: %s: %v", file, name, err)
		}
		if h.Name != name {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
		return
	}
}
