package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/takedown/takedown/internal/testtool"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address whose TCP and UDP ports were free.
func freeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testtool.FreeBothPort(t))
}

// Every reloadable key changed on a running serve takes effect at SIGHUP;
// every restart-only key changed is refused by name with the old state
// kept; a file that does not parse counts as a failed reload. Each is seen
// from outside: DNS answers, the API, the self-check page, /metrics, the log.
func TestReloadLive(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "takedown.yaml")
	mustRun(t, []byte("evil.example\n"), "--data", data, "order", "import", "-", "--allow-reserved", "--case", "b107", "--court", "c",
		"--effective", time.Now().Add(-24*time.Hour).Format(time.RFC3339), "--expires", time.Now().Add(48*time.Hour).Format(time.RFC3339))
	dnsAddr, webAddr, scAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := func(dnsTTL, sinkA, rrl string, days int, public bool, minCount int, level, dnsListen string) string {
		return fmt.Sprintf(`log: {level: %s}
dns:
  listen: ["%s"]
  ttl: %s
  rrl: {%s}
sinkhole: {a: [%s]}
listeners: []
evidence: {enabled: false}
web: {listen: "%s", public_stats: %v, min_count: %d}
selfcheck: {listen: "%s", days: %d}
`, level, dnsListen, dnsTTL, rrl, sinkA, webAddr, public, minCount, scAddr, days)
	}
	write(base("300", "127.0.0.1", "enabled: true, responses_per_second: 5, slip: 0", 14, false, 5, "info", dnsAddr))

	logs := &lockedBuffer{}
	cmd := exec.Command(binary, "serve", "--data", data, "--config", conf)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", webAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs)
		}
	}
	tok := analystToken(t, data)
	reloads := 0.0
	// hup sends SIGHUP and waits for the reload to be counted; it
	// returns the last-reload-successful gauge and the failures counter.
	hup := func() (ok, failures float64) {
		t.Helper()
		reloads++
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); scrape(t, webAddr, tok, "takedown_config_reloads_total") < reloads; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("reload %v not counted:\n%s", reloads, logs)
			}
		}
		return scrape(t, webAddr, tok, "takedown_config_last_reload_successful"), scrape(t, webAddr, tok, "takedown_config_reload_failures_total")
	}
	answer := func() (ttl uint32, a string) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("www.evil.example.", dns.TypeA)
		r, err := dns.Exchange(m, dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range r.Answer {
			if x, ok := rr.(*dns.A); ok {
				return x.Hdr.Ttl, x.A.String()
			}
		}
		t.Fatalf("no A answer: %v", r)
		return 0, ""
	}
	// answered counts the answers to n queries sent at once (RRL).
	answered := func(n int) int {
		c, err := net.Dial("udp", dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m := new(dns.Msg)
		m.SetQuestion("rrl.evil.example.", dns.TypeA)
		b, _ := m.Pack()
		for range n {
			c.Write(b)
		}
		got := 0
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				return got
			}
			got++
		}
	}
	getJSON := func(url string, v any) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	var who struct {
		PublicStats bool `json:"public_stats"`
	}
	var self struct {
		Window struct{ Days int } `json:"window"`
	}

	// Before: the first configuration's values.
	if ttl, a := answer(); ttl != 300 || a != "127.0.0.1" {
		t.Fatalf("before: ttl %d, A %s", ttl, a)
	}
	if n := answered(40); n >= 40 {
		t.Fatalf("rrl at 5/s answered %d of 40", n)
	}
	getJSON("http://"+webAddr+"/api/v1/whoami", &who)
	getJSON("http://"+scAddr+"/api/v1/self", &self)
	if who.PublicStats || self.Window.Days != 14 {
		t.Fatalf("before: public_stats %v, self-check days %d", who.PublicStats, self.Window.Days)
	}

	// Every live key changed at once.
	write(base("60", "127.0.0.9", "enabled: false", 3, true, 9, "debug", dnsAddr))
	if ok, fails := hup(); ok != 1 || fails != 0 {
		t.Fatalf("live reload: last ok %v, failures %v\n%s", ok, fails, logs)
	}
	if ttl, a := answer(); ttl != 60 || a != "127.0.0.9" {
		t.Errorf("dns.ttl, sinkhole.a: ttl %d, A %s", ttl, a)
	}
	if n := answered(40); n != 40 {
		t.Errorf("dns.rrl.enabled false: %d of 40 answered", n)
	}
	getJSON("http://"+webAddr+"/api/v1/whoami", &who)
	getJSON("http://"+scAddr+"/api/v1/self", &self)
	if !who.PublicStats {
		t.Error("web.public_stats not applied")
	}
	if self.Window.Days != 3 {
		t.Errorf("selfcheck.days: %d", self.Window.Days)
	}
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Error("log.level debug: no debug line after the reload")
	}

	// Restart-only keys: refused by name, nothing applied, the metric says so.
	other := freeAddr(t)
	write(base("30", "127.0.0.9", "enabled: false", 3, true, 9, "debug", other) + "data: /elsewhere\n")
	if ok, fails := hup(); ok != 0 || fails != 1 {
		t.Errorf("refused reload: last ok %v, failures %v", ok, fails)
	}
	for _, want := range []string{"dns.listen: needs a restart", "data: needs a restart"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
	if ttl, _ := answer(); ttl != 60 {
		t.Errorf("a refused reload applied dns.ttl: %d", ttl)
	}

	// A file that does not parse: counted, logged with its line.
	write("dns:\n  ttl: [\n")
	if ok, fails := hup(); ok != 0 || fails != 2 {
		t.Errorf("parse error: last ok %v, failures %v", ok, fails)
	}
	if !strings.Contains(logs.String(), conf+":") {
		t.Errorf("log does not name the file and line:\n%s", logs)
	}

	// Back to a good file: success again.
	write(base("120", "127.0.0.9", "enabled: false", 3, true, 9, "info", dnsAddr))
	if ok, _ := hup(); ok != 1 {
		t.Errorf("good reload after failures: %v\n%s", ok, logs)
	}
	if ttl, _ := answer(); ttl != 120 {
		t.Errorf("dns.ttl after recovery: %d", ttl)
	}
}
