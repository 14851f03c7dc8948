package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/testtool"
)

// startNATS runs a JetStream nats-server on a loopback port until the test
// ends and returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	url, _ := testtool.StartNATS(t)
	return url
}

// sinkholed reports whether the DNS sinkhole at addr answers name with an
// address (it is seized); an error is a sinkhole that did not answer.
func sinkholed(addr, name string) (bool, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return false, err
	}
	return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0, nil
}

// waitSinkholed waits until every sinkhole in addrs answers name as want.
func waitSinkholed(t *testing.T, addrs []string, name string, want bool, within time.Duration, logs ...*lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, a := range addrs {
		for {
			got, err := sinkholed(a, name)
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				msg := ""
				for _, l := range logs {
					msg += l.String()
				}
				t.Fatalf("sinkhole %s: %s seized=%v after %s, want %v (err %v)\n%s", a, name, got, within, want, err, msg)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// An order imported on one node reaches the DNS sinkholes of two sensors
// that follow the shared PostgreSQL registry, through LISTEN/NOTIFY: their
// poll is an hour, so only the notification explains the arrival. With
// PostgreSQL gone the sensors keep answering from their copies, an order's
// expiry taking effect at its instant, and a sensor restarted meanwhile
// serves its copy.
func TestRegistryReachesSensors(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := pg.NewDatabase(t)
	natsURL := startNATS(t)
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin")
	mustRun(t, nil, "--data", admin, "--db", dsn, "order", "list") // any node's first command makes the schema

	type sensor struct {
		conf, dns string
		log       *lockedBuffer
		cmd       *exec.Cmd
		done      chan error
	}
	start := func(s *sensor, name string) {
		s.cmd = exec.Command(binary, "--config", s.conf, "sensor", "--nats", natsURL, "--db", dsn, "--sensor", name)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.done = make(chan error, 1)
		go func() { s.done <- s.cmd.Wait() }()
	}
	var sensors []*sensor
	var addrs []string
	for i := range 2 {
		data := filepath.Join(dir, fmt.Sprintf("sensor-%d", i))
		s := &sensor{conf: filepath.Join(dir, fmt.Sprintf("sensor-%d.yaml", i)), log: &lockedBuffer{},
			dns: fmt.Sprintf("127.0.0.1:%d", testtool.FreeBothPort(t))}
		os.WriteFile(s.conf, []byte(fmt.Sprintf("data: %s\nregistry:\n  poll: 1h\ndns:\n  listen: [%q]\nweb:\n  listen: \"\"\nlisteners: []\n", data, s.dns)), 0o600)
		start(s, fmt.Sprintf("sink-%d", i))
		t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
		sensors = append(sensors, s)
		addrs = append(addrs, s.dns)
	}
	logs := []*lockedBuffer{sensors[0].log, sensors[1].log}
	// Both sinkholes answer (REFUSED: nothing is seized yet).
	waitSinkholed(t, addrs, "c2-prop.example", false, 30*time.Second, logs...)

	order := func(name, caseID, expires string) {
		mustRun(t, []byte(name+"\n"), "--data", admin, "--db", dsn, "order", "import", "-", "--case", caseID, "--court", "W.D. Wash.",
			"--effective", time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), "--expires", expires, "--allow-reserved")
	}
	order("c2-prop.example", "prop-1", time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly))
	waitSinkholed(t, addrs, "c2-prop.example", true, 10*time.Second, logs...)

	// An order that ends a few seconds from now; then PostgreSQL goes.
	ends := time.Now().Add(6 * time.Second).UTC().Truncate(time.Second)
	order("c2-short.example", "prop-2", ends.Format(time.RFC3339))
	waitSinkholed(t, addrs, "c2-short.example", true, 5*time.Second, logs...)
	pg.Kill()
	if time.Now().Before(ends) {
		waitSinkholed(t, addrs, "c2-short.example", true, time.Second, logs...)
	}
	time.Sleep(time.Until(ends))
	waitSinkholed(t, addrs, "c2-short.example", false, 3*time.Second, logs...)
	waitSinkholed(t, addrs, "c2-prop.example", true, time.Second, logs...)

	// A sensor restarted while PostgreSQL is down serves its copy.
	s := sensors[0]
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	s.done <- nil
	start(s, "sink-0")
	waitSinkholed(t, addrs[:1], "c2-prop.example", true, 30*time.Second, s.log)
	waitSinkholed(t, addrs[:1], "c2-short.example", false, time.Second, s.log)
}
