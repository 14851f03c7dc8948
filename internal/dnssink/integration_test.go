package dnssink

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/testtool"
)

// run runs a client program and returns its output.
func run(tb testing.TB, prog string, args ...string) string {
	tb.Helper()
	out, err := exec.CommandContext(tb.Context(), prog, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDig(t *testing.T) {
	dig := testtool.Need(t, "dig", "bind9-dnsutils")
	var many []netip.Addr
	for i := range 40 {
		many = append(many, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
	}
	s := startSink(t, testSource(), Options{PerCase: map[string]Addrs{"case-b": {A: many}}})
	port := strconv.Itoa(int(s.Addr().Port()))
	tests := []struct {
		name string
		args []string
		want []string // substrings of the output
		not  []string
	}{
		{"A over UDP", []string{"WwW.c2.example", "A"}, []string{"status: NOERROR", "flags: qr aa rd;", "WwW.c2.example.\t300\tIN\tA\t192.0.2.1"}, []string{" ra"}},
		{"AAAA over TCP", []string{"+tcp", "x.c2.example", "AAAA"}, []string{"status: NOERROR", "2001:db8::1"}, nil},
		{"SOA", []string{"+norec", "c2.example", "SOA"}, []string{"flags: qr aa;", "IN\tSOA\tns1.sinkhole.invalid. hostmaster.ns1.sinkhole.invalid. 1 "}, nil},
		{"NODATA", []string{"c2.example", "TXT"}, []string{"status: NOERROR", "ANSWER: 0, AUTHORITY: 1", "IN\tSOA"}, nil},
		{"REFUSED", []string{"example.com", "A"}, []string{"status: REFUSED"}, nil},
		{"TC then TCP fallback", []string{"+noedns", "big.other.test", "A"}, []string{"Truncated, retrying in TCP mode", "ANSWER: 40"}, nil},
		{"ANY minimal", []string{"c2.example", "ANY"}, []string{"ANSWER: 1,", "\tA\t192.0.2.1"}, nil},
		{"EDNS", []string{"+bufsize=4096", "c2.example", "A"}, []string{"EDNS: version: 0", "udp: 1232"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, dig, append([]string{"@127.0.0.1", "-p", port, "+time=5", "+tries=1"}, tt.args...)...)
			for _, w := range tt.want {
				if !strings.Contains(norm(out), norm(w)) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(norm(out), norm(w)) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestKdig(t *testing.T) {
	kdig := testtool.Need(t, "kdig", "knot-dnsutils")
	s := startSink(t, testSource(), Options{})
	port := strconv.Itoa(int(s.Addr().Port()))
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"A over UDP", []string{"mail.c2.example", "A"}, []string{"status: NOERROR", "Flags: qr aa rd;", "mail.c2.example. 300 IN A 192.0.2.1"}},
		{"NS over TCP", []string{"+tcp", "c2.example", "NS"}, []string{"status: NOERROR", "NS\tns1.sinkhole.invalid."}},
		{"EDNS with cookie (general path)", []string{"+cookie", "+nsid", "www.c2.example", "A"}, []string{"status: NOERROR", "192.0.2.1", "EDNS PSEUDOSECTION"}},
		{"ECS (general path)", []string{"+subnet=203.0.113.0/24", "www.c2.example", "A"}, []string{"status: NOERROR", "192.0.2.1"}},
		{"outside", []string{"+tcp", "example.com", "A"}, []string{"status: REFUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, kdig, append([]string{"@127.0.0.1", "-p", port, "+time=5", "+retry=0"}, tt.args...)...)
			for _, w := range tt.want {
				if !strings.Contains(norm(out), norm(w)) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// norm collapses white space, for comparing tool output.
func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// TestUnbound: a resolver with a stub zone for the seized domain pointing
// at the sinkhole gives a client the sinkhole address, and the sinkhole's
// event shows the resolver (its outgoing address 127.0.0.2) as the source.
// Every zone Unbound could ask about, the root included, is stubbed to the
// sinkhole, so it sends nothing off loopback.
func TestUnbound(t *testing.T) {
	unbound := testtool.Need(t, "unbound", "unbound")
	s := startSink(t, testSource(), Options{RRL: RRL{Disabled: true}})
	dir := t.TempDir()
	port := testtool.FreePort(t, "udp")
	sink := fmt.Sprintf("127.0.0.1@%d", s.Addr().Port())
	hints := "; only loopback\n.\t3600000\tNS\tlocal-root.\nlocal-root.\t3600000\tA\t127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(dir, "root.hints"), []byte(hints), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  outgoing-interface: 127.0.0.2
  do-ip6: no
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: %q
  pidfile: %q
  root-hints: %q
  module-config: "iterator"
  do-not-query-localhost: no
  qname-minimisation: no
  prefetch: no
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  verbosity: 1
remote-control:
  control-enable: no
stub-zone:
  name: "c2.example"
  stub-addr: %s
stub-zone:
  name: "."
  stub-addr: %s
`, port, dir, filepath.Join(dir, "unbound.pid"), filepath.Join(dir, "root.hints"), sink, sink)
	cfg := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unbound, "-d", "-c", cfg)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("unbound output:\n%s", logs.String())
		}
	})
	s.drainEvents()
	resolver := fmt.Sprintf("127.0.0.1:%d", port)
	c := &dns.Client{Timeout: 3 * time.Second}
	var r *dns.Msg
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("www.c2.example.", dns.TypeA) // RD set: a client of a resolver
		var err error
		r, _, err = c.Exchange(m, resolver)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer through unbound: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("answer through unbound %v, want 192.0.2.1", r.Answer)
	}
	// The sinkhole saw the question from Unbound.
	for {
		e := s.nextEvent(t)
		if e.QName != "www.c2.example" || e.QType != "A" {
			continue
		}
		if e.SrcIP != netip.MustParseAddr("127.0.0.2") || e.Matched != "c2.example" || e.Case != "case-a" || !e.Resolver() {
			t.Errorf("event %+v: want source 127.0.0.2 (unbound), matched c2.example", e)
		}
		break
	}
}
