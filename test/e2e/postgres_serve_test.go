package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/testtool"
)

// Two `serve --db postgres://…` nodes share one PostgreSQL: an order and
// events imported on an admin node, a token made there, and a beacon
// stored by one node's sinkhole are what both nodes' APIs answer, and each
// node's dashboard logs in the one admin the store holds.
func TestServeOnPostgres(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := pg.NewDatabase(t)
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin")
	mustRun(t, []byte("c2-pg.example\n"), "--data", admin, "--db", dsn, "order", "import", "-", "--case", "pg-1", "--court", "W.D. Wash.",
		"--effective", "2011-03-16", "--expires", "2036-03-16", "--allow-reserved")
	csv := filepath.Join(dir, "day.csv")
	os.WriteFile(csv, []byte("timestamp,protocol,src_ip,src_geo,src_asn,infection\n"+
		"2011-03-17 10:00:00,tcp,192.0.2.1,US,64500,rustock\n2011-03-17 11:00:00,udp,198.51.100.2,DE,64501,rustock\n"), 0o600)
	mustRun(t, nil, "--data", admin, "--db", dsn, "events", "import", "--format", "shadowserver", "--quiet", csv)
	var created struct{ Secret string }
	if err := json.Unmarshal([]byte(mustRun(t, nil, "--data", admin, "--db", dsn, "token", "create", "--role", "analyst", "--json").stdout), &created); err != nil {
		t.Fatal(err)
	}

	type node struct{ web, sink, data string }
	var nodes []node
	var servers []*server
	for i := range 2 {
		n := node{web: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp")), sink: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp")),
			data: filepath.Join(dir, fmt.Sprintf("node-%d", i))}
		conf := filepath.Join(dir, fmt.Sprintf("node-%d.yaml", i))
		// Retention long enough to keep the 2011 events: purged at the
		// start, they would never reach the evidence log.
		os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\ndb: %q\npipeline: {retention: 200000h}\nweb: {listen: %q}\nselfcheck: {listen: \"\"}\ndns:\n  listen: []\nlisteners:\n  - {kind: http, listen: %q}\n",
			n.data, dsn, n.web, n.sink)), 0o600)
		servers = append(servers, startServe(t, n.web, "--config", conf))
		nodes = append(nodes, n)
	}
	get := func(addr, path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+created.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	unique := func(addr, window string) uint64 {
		code, body := get(addr, "/api/v1/stats?"+window)
		if code != 200 {
			t.Fatalf("%s stats: %d %s", addr, code, body)
		}
		var doc struct {
			UniqueIPs uint64 `json:"unique_ips"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.UniqueIPs
	}
	for _, n := range nodes {
		if got := unique(n.web, "from=2011-03-17&to=2011-03-18"); got != 2 {
			t.Errorf("node %s counts %d addresses on 2011-03-17, want 2", n.web, got)
		}
		if code, body := get(n.web, "/api/v1/orders"); code != 200 || !strings.Contains(body, "pg-1") {
			t.Errorf("node %s orders: %d %s", n.web, code, body)
		}
	}
	// A beacon to node 0's sinkhole is counted by node 1's API.
	client := &http.Client{Timeout: 5 * time.Second}
	if err := beacon(client, nodes[0].sink); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	for deadline := time.Now().Add(20 * time.Second); unique(nodes[1].web, "from="+today+"&to="+tomorrow) != 1; {
		if time.Now().After(deadline) {
			t.Fatal("node 1 never counted node 0's beacon")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The deployment has one evidence log, in the store: one node appends
	// (the lease "evidence"), following the store, so the log holds the
	// imported events and the beacon another node's sinkhole stored, once
	// each; each node's directory is a replica of it, so a package
	// exported on either node holds them, verifies against the one key,
	// and the two nodes' replicas agree.
	var keys []string
	for _, n := range nodes {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			pkg := filepath.Join(dir, "pkg-"+filepath.Base(n.data)+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))
			r := run(t, nil, "--data", n.data, "--db", dsn, "evidence", "export", "--from", "2011-01-01", "--to", tomorrow, "-o", pkg)
			if !strings.Contains(r.stderr, "the log is the shared store's; ") {
				t.Errorf("evidence export on a shared store does not say so:\n%s", r.stderr)
			}
			if r.code != 0 {
				t.Fatalf("evidence export on %s: %s%s", n.data, r.stdout, r.stderr)
			}
			b, err := os.ReadFile(filepath.Join(pkg, "events.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Count(string(b), "\n")
			if lines > 3 {
				t.Fatalf("%s's evidence log holds %d events, 3 were stored:\n%s", n.data, lines, b)
			}
			if lines < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("%s's package holds %d events, not the 3 stored:\n%s\nnode 0:\n%s\nnode 1:\n%s", n.data, lines, b, servers[0].logs, servers[1].logs)
				}
				continue
			}
			key := evidenceKey(t, "--data", n.data, "--db", dsn)
			if v := run(t, nil, "evidence", "verify", pkg, "--key", key); v.code != 0 || !strings.Contains(v.stdout, "VERIFIED") {
				t.Fatalf("%s's package does not verify:\n%s%s", n.data, v.stdout, v.stderr)
			}
			keys = append(keys, key)
			break
		}
	}
	if keys[0] != keys[1] {
		t.Fatalf("the nodes' evidence keys differ: %s and %s", keys[0], keys[1])
	}
	// The key rotated from a third node (one without a server, as
	// rotate-key needs the log of its own node to itself): both running
	// nodes take the new key from the store, and a package exported on
	// either afterwards verifies against the key trusted before, through
	// the signed rotation.
	rot := mustRun(t, nil, "--data", admin, "--db", dsn, "evidence", "rotate-key", "--who", "e2e")
	newKey := sshKeyIn(rot.stdout)
	if newKey == "" || strings.Contains(newKey, keys[0][len("ssh-ed25519 "):]) {
		t.Fatalf("evidence rotate-key printed no new key:\n%s", rot.stdout)
	}
	for _, n := range nodes {
		pkg := filepath.Join(dir, "pkg-rotated-"+filepath.Base(n.data))
		mustRun(t, nil, "--data", n.data, "--db", dsn, "evidence", "export", "--from", "2011-01-01", "--to", tomorrow, "-o", pkg)
		if v := run(t, nil, "evidence", "verify", pkg, "--key", keys[0]); v.code != 0 || !strings.Contains(v.stdout, "VERIFIED") {
			t.Fatalf("%s's package after the rotation does not verify against the first key:\n%s%s", n.data, v.stdout, v.stderr)
		}
		if got := evidenceKey(t, "--data", n.data, "--db", dsn); got != newKey {
			t.Fatalf("%s's evidence key after the rotation is %s, want %s", n.data, got, newKey)
		}
	}
	// One admin for the deployment: its password file is on the node that
	// made it, and it logs in on both.
	var pw []byte
	for _, n := range nodes {
		if b, err := os.ReadFile(filepath.Join(n.data, "dashboard-admin-password")); err == nil {
			if pw != nil {
				t.Fatal("both nodes made an admin")
			}
			pw = b
		}
	}
	if pw == nil {
		t.Fatal("no node made an admin")
	}
	lines := strings.Split(strings.TrimSpace(string(pw)), "\n")
	for _, n := range nodes {
		if code := rawLogin(t, "", n.web, "admin", lines[len(lines)-1], ""); code != http.StatusSeeOther && code != http.StatusFound {
			t.Errorf("admin login on %s: %d", n.web, code)
		}
	}
}
