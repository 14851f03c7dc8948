package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/testtool"
)

// metricSum sums the samples of family name whose labels contain every
// one of labels ("rcode=\"REFUSED\""); found is false when no sample
// matched.
func metricSum(text, name string, labels ...string) (sum float64, found bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		metric, lbls, _ := strings.Cut(series, "{")
		if !ok || metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(lbls, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// The whole binary serves the metrics issue 9 lists on /metrics, with the
// values the traffic it received gives them, and the health figures per
// listener on the API and in `takedown stats`.
func TestServeMetrics(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp"))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	webAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb: {listen: %q}\nselfcheck: {listen: \"\"}\ndns:\n  listen: [%q]\nlisteners:\n  - {kind: http, listen: %q}\n",
		data, webAddr, dnsAddr, httpAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	mustRun(t, []byte("c2-metrics.example\n"), "--data", data, "order", "import", "-", "--case", "metrics-1", "--court", "Test", "--allow-reserved",
		"--effective", today.AddDate(0, 0, -1).Format(time.DateOnly), "--expires", today.AddDate(1, 0, 0).Format(time.DateOnly))
	srv := startServe(t, webAddr, "--config", conf)

	// Traffic: a seized name (NOERROR), a name not seized (REFUSED), three
	// HTTP beacons.
	c := &dns.Client{Timeout: 5 * time.Second}
	for _, q := range []struct {
		name  string
		rcode int
	}{{"www.c2-metrics.example.", dns.RcodeSuccess}, {"not-seized.example.", dns.RcodeRefused}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, dns.TypeA)
		r, _, err := c.Exchange(m, dnsAddr)
		if err != nil || r.Rcode != q.rcode {
			t.Fatalf("dig %s: %v %v\n%s", q.name, r, err, srv.logs)
		}
	}
	for range 3 {
		if err := beacon(http.DefaultClient, httpAddr); err != nil {
			t.Fatal(err)
		}
	}
	// A reload that succeeds.
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	get := func(path, token string) []byte {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+webAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	// /metrics needs an admin or analyst: the scrape presents a token.
	secret := strings.TrimSpace(mustRun(t, nil, "--data", data, "token", "create", "--role", "analyst", "--json").stdout)
	var created struct{ Secret string }
	if err := json.Unmarshal([]byte(secret), &created); err != nil {
		t.Fatal(err)
	}
	// Wait until the five events are stored and the reload is counted.
	var text string
	for deadline := time.Now().Add(30 * time.Second); ; {
		text = string(get("/metrics", created.Secret))
		stored, _ := metricSum(text, "takedown_pipeline_events_stored_total")
		reloads, _ := metricSum(text, "takedown_config_reloads_total")
		if stored >= 5 && reloads >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %v, reloads %v after 30 s:\n%s\n%s", stored, reloads, text, srv.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"takedown_dns_queries_total", []string{`rcode="NOERROR"`}, 1, 1},
		{"takedown_dns_queries_total", []string{`rcode="REFUSED"`}, 1, 1},
		{"takedown_conn_events_total", []string{`listener="http:` + httpAddr + `"`}, 3, 3},
		{"takedown_events_received_total", nil, 5, 5},
		{"takedown_pipeline_events_stored_total", nil, 5, 5},
		{"takedown_events_queue_dropped_total", nil, 0, 0},
		{"takedown_events_queue_depth", nil, 0, 0},
		{"takedown_pipeline_batch_duration_seconds_count", nil, 1, 1e9},
		{"takedown_dns_rrl_limited_total", nil, 0, 0},
		{"takedown_config_reloads_total", nil, 1, 1},
		{"takedown_config_last_reload_successful", nil, 1, 1},
	} {
		v, found := metricSum(text, m.name, m.labels...)
		if !found || v < m.min || v > m.max {
			t.Errorf("%s%v = %v (found %v), want %v to %v", m.name, m.labels, v, found, m.min, m.max)
		}
	}

	// The health figures per listener: the API's sinkhole route and the
	// stats command.
	var sink struct {
		// The live tiles, which come from the roles' Stats(), agree with
		// the metrics checked above.
		DNSQueries     float64 `json:"dns_queries_total"`
		Connections    float64 `json:"connections_total"`
		EventsReceived float64 `json:"events_received_total"`
		QueueDepth     float64 `json:"queue_depth_events"`
		BatchAvg       float64 `json:"store_batch_seconds_avg"`
		ReloadOK       *bool   `json:"last_reload_successful"`
		Available      bool    `json:"metrics_available"`
		Listeners      []struct {
			Name     string `json:"name"`
			Received uint64 `json:"events_received"`
			Stored   uint64 `json:"events_stored"`
		} `json:"listeners"`
	}
	if err := json.Unmarshal(get("/api/v1/sinkhole", created.Secret), &sink); err != nil {
		t.Fatal(err)
	}
	if sink.DNSQueries != 2 || sink.Connections < 1 || sink.EventsReceived != 5 || sink.QueueDepth != 0 || sink.BatchAvg <= 0 || sink.ReloadOK == nil || !*sink.ReloadOK || !sink.Available {
		t.Errorf("sinkhole tiles %+v", sink)
	}
	got := map[string][2]uint64{}
	for _, l := range sink.Listeners {
		got[l.Name] = [2]uint64{l.Received, l.Stored}
	}
	want := map[string][2]uint64{"dns": {2, 2}, "http:" + httpAddr: {3, 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sinkhole listeners %v, want %v", got, want)
	}
	st := mustRun(t, nil, "--data", data, "stats")
	for _, w := range []string{"LISTENER", "dns ", "http:" + httpAddr} {
		if !bytes.Contains([]byte(st.stdout), []byte(w)) {
			t.Errorf("stats table lacks %q:\n%s", w, st.stdout)
		}
	}
}
