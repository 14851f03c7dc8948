package e2e

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// The attacks on the sinkhole's figures, against the real binary:
//
//   - spoofed UDP: datagrams whose source is a third party's address (on
//     loopback any 127/8 source can be sent from, as a forged source
//     would arrive) must not count that party as infected, list it in its
//     ISP's report or show it on its self-check;
//   - a flood from one source: one connection pipelining 2,000 requests
//     must not store 2,000 raw records and evidence leaves; every request
//     is still counted in the aggregates.
func TestAttackSpoofedUDPAndFlood(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	udpAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp"))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	scAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	const rate, burst = 5, 10
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`data: %s
web: {listen: ""}
selfcheck: {listen: %q}
dns: {listen: []}
listeners:
  - {kind: udp, listen: %q}
  - {kind: http, listen: %q}
pipeline:
  source_budget: {rate: %d, burst: %d, summary_every: 1s}
`, data, scAddr, udpAddr, httpAddr, rate, burst)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, scAddr, "--config", conf)

	const victim, control, flooder = "127.0.0.5", "127.0.0.6", "127.0.0.7"
	// Spoofed datagrams naming the victim as their source, with a
	// Rustock-looking payload that no verifies_source rule vouches for.
	ua, err := net.ResolveUDPAddr("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(victim)}, ua)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		uc.Write([]byte("POST /login.php HTTP/1.1\r\nHost: c2.example\r\n\r\n"))
	}
	uc.Close()
	// The control: a real TCP beacon from another address.
	cl := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(control)}}).DialContext}}
	if err := beacon(cl, httpAddr); err != nil {
		t.Fatal(err)
	}
	// The flood: 2,000 pipelined requests on one connection.
	const flood = 2000
	start := time.Now()
	fc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(flooder)}}).DialContext(t.Context(), "tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan int)
	go func() {
		br, n := bufio.NewReader(fc), 0
		for ; n < flood; n++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		answered <- n
	}()
	req := "GET /gate.php?id=flood HTTP/1.1\r\nHost: c2.example\r\nUser-Agent: flood\r\n\r\n"
	if _, err := fc.Write([]byte(strings.Repeat(req, flood))); err != nil {
		t.Fatal(err)
	}
	n := <-answered
	elapsed := time.Since(start)
	fc.Close()
	if n != flood {
		t.Fatalf("the sinkhole answered %d of %d pipelined requests\n%s", n, flood, srv.logs)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, sqlite.FileName)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hits := func(ip string) (h int64) {
		db.QueryRowContext(t.Context(), `SELECT COALESCE(SUM(hits), 0) FROM event_day_ip WHERE ip = ?`, net.ParseIP(ip).To4()).Scan(&h)
		return h
	}
	// Every contact reaches the aggregates (summaries within a second or
	// two, aggregates flushed every two).
	for deadline := time.Now().Add(30 * time.Second); hits(flooder) < flood || hits(victim) < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("aggregates: flooder %d of %d hits, victim %d of 20\n%s", hits(flooder), flood, hits(victim), srv.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if h := hits(flooder); h != flood {
		t.Errorf("flooder: %d hits in the aggregates; want every one of %d", h, flood)
	}
	var rows int64
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM events WHERE ip = ?`, net.ParseIP(flooder).To4()).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// The budget: the burst, the refill over the flood and one summary a
	// second (plus one at each end) at the most.
	secs := elapsed.Seconds() + 3
	if rows < burst {
		var sample string
		db.QueryRowContext(t.Context(), `SELECT hex(record) FROM events ORDER BY seq DESC LIMIT 1`).Scan(&sample)
		t.Fatalf("%d raw records of the flooder; want at least its burst of %d (last record: %s)", rows, burst, sample)
	}
	if limit := float64(burst) + rate*secs + secs + 1; float64(rows) > limit {
		t.Errorf("a flood of %d requests in %v stored %d raw records; the budget allows %.0f", flood, elapsed, rows, limit)
	}
	t.Logf("flood: %d requests in %v, %d raw records stored (%.1f/s), every one counted", flood, elapsed.Round(time.Millisecond), rows, float64(rows)/elapsed.Seconds())

	// The figures: the control and the flooder are infected; the victim of
	// the spoofing is not, anywhere.
	var st struct {
		UniqueIPs uint64 `json:"unique_ips"`
		Health    struct {
			Received   uint64 `json:"events_received"`
			Stored     uint64 `json:"events_stored"`
			Dropped    uint64 `json:"events_dropped"`
			Summarised uint64 `json:"events_summarised"`
		} `json:"health"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, nil, "--data", data, "stats", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.UniqueIPs != 2 {
		t.Errorf("stats: %d infected addresses; want 2 (the control and the flooder, not the spoofed victim)", st.UniqueIPs)
	}
	if h := st.Health; h.Summarised == 0 || h.Stored+h.Summarised+h.Dropped != h.Received {
		t.Errorf("health %+v: want summarised > 0 and received = stored + summarised + dropped", h)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	rep := mustRun(t, nil, "--data", data, "report", "network", "--cidr", "127.0.0.0/8", "--date", today).stdout
	if strings.Contains(rep, victim) || !strings.Contains(rep, control) {
		t.Errorf("the ISP's report lists the spoofed victim, or misses the control:\n%s", rep)
	}
	for _, who := range []struct{ addr, want string }{{victim, "not_seen"}, {control, "seen"}} {
		code, body := selfRequest(t, scAddr, who.addr, nil, "GET", "/api/v1/self", "", "")
		var a selfAnswer
		if err := json.Unmarshal([]byte(body), &a); code != 200 || err != nil || a.Status != who.want {
			t.Errorf("self-check from %s: %d %s; want %s", who.addr, code, body, who.want)
		}
	}
}
