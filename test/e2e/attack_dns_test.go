package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/testtool"
)

// The DNS attacks of issue 17, run against the real `serve` on loopback.
// Each client speaks from an address of its own in 127.0.0.0/8 (Linux
// routes the whole block to lo), so that each test's client blocks (/24)
// are fresh to the rate limiter. Outcomes are counts, never wall time.

const attackZone = "c2-attack.example."

// serveDNS imports the seized zone into a new data dir, starts serve with
// the DNS sinkhole only and the YAML of dnsConf under dns:, and returns
// the DNS address (UDP and TCP).
func serveDNS(t *testing.T, dnsConf string) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp"))
	conf := filepath.Join(dir, "takedown.yaml")
	yaml := fmt.Sprintf("data: %s\nweb: {listen: \"\"}\nselfcheck: {listen: \"\"}\nlisteners: []\ndns:\n  listen: [%q]\n%s", data, addr, dnsConf)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	mustRun(t, []byte(strings.TrimSuffix(attackZone, ".")+"\n"), "--data", data, "order", "import", "-", "--case", "attack-1", "--court", "Test",
		"--allow-reserved", "--effective", today.AddDate(0, 0, -1).Format(time.DateOnly), "--expires", today.AddDate(1, 0, 0).Format(time.DateOnly))
	startServe(t, addr, "--config", conf)
	return addr
}

// burst sends every query over UDP from local (an address of 127/8) to
// server, then reads until the answers stop, and counts the full answers
// and the truncated ones (TC=1, a slipped answer).
func burst(t *testing.T, server, local string, qs []*dns.Msg) (full, truncated int) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(1 << 20)
	for i, q := range qs {
		q.Id = uint16(i)
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	for {
		// The sinkhole answers in microseconds; half a second of silence
		// means that what was not answered was dropped.
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return full, truncated
		}
		var m dns.Msg
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("unreadable answer: %v", err)
		}
		if m.Truncated {
			truncated++
		} else {
			full++
		}
	}
}

func queries(n int, q func(i int) (string, uint16)) []*dns.Msg {
	out := make([]*dns.Msg, n)
	for i := range out {
		name, typ := q(i)
		out[i] = new(dns.Msg)
		out[i].SetQuestion(name, typ)
	}
	return out
}

// Attack: spray NODATA over many query types, each of which was a bucket
// of its own, to multiply a client block's budget (and so the reflection).
// Defence: NODATA is limited by zone, whatever the type (BIND's keying).
func TestAttackDNSTypeSpraying(t *testing.T) {
	const rate, n = 5, 50
	addr := serveDNS(t, fmt.Sprintf("  rrl: {enabled: true, responses_per_second: %d, window: 60s, slip: 2}\n", rate))
	oneType, _ := burst(t, addr, "127.0.1.1", queries(n, func(int) (string, uint16) { return attackZone, dns.TypeMX }))
	// Private-use types 65280…: all NODATA for a seized name.
	sprayed, _ := burst(t, addr, "127.0.2.1", queries(n, func(i int) (string, uint16) { return attackZone, uint16(65280 + i) }))
	t.Logf("full answers to %d NODATA queries at %d/s: %d of one type, %d over %d types", n, rate, oneType, sprayed, n)
	if oneType < 1 || oneType > rate+1 {
		t.Errorf("%d answers of one type at %d/s; want 1 to %d", oneType, rate, rate+1)
	}
	if sprayed > oneType+1 {
		t.Errorf("spraying %d query types got %d full answers, one type %d: types multiply the budget", n, sprayed, oneType)
	}
}

// Attack: flood the limiter's table with distinct keys (random names from
// thousands of client blocks, as spoofing gives) so that it forgets a
// victim it is limiting. Defence: a bounded table that replaces the least
// useful of its oldest buckets, never a shard wholesale; a bucket in debt
// outlives one-off keys.
func TestAttackDNSFloodKeepsVictimLimited(t *testing.T) {
	const rate, table, flood = 5, 256, 4000
	addr := serveDNS(t, fmt.Sprintf("  rrl: {enabled: true, responses_per_second: %d, window: 60s, slip: 0, table_size: %d}\n", rate, table))
	victim := func(n int) []*dns.Msg {
		return queries(n, func(int) (string, uint16) { return "www." + attackZone, dns.TypeA })
	}
	before, _ := burst(t, addr, "127.0.3.1", victim(30))
	if before > rate+1 {
		t.Fatalf("the victim got %d answers of 30 at %d/s before the flood", before, rate)
	}
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	for i := range flood {
		// One query from each of flood /24 blocks, a random name each.
		local := &net.UDPAddr{IP: net.IPv4(127, byte(10+i>>8), byte(i), 1)}
		c, err := net.DialUDP("udp", local, raddr)
		if err != nil {
			t.Fatal(err)
		}
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("r%x-%d.%s", time.Now().UnixNano(), i, attackZone), dns.TypeA)
		b, _ := q.Pack()
		c.Write(b)
		c.Close()
	}
	// The server has read the flood once a query sent after it is answered.
	if full, _ := burst(t, addr, "127.0.4.1", victim(1)); full != 1 {
		t.Fatal("no answer to a fresh client after the flood")
	}
	after, _ := burst(t, addr, "127.0.3.1", victim(20))
	t.Logf("victim block: %d of 30 answered before a flood of %d keys into a table of %d, %d of 20 after", before, flood, table, after)
	if after > 1 {
		t.Errorf("after the flood the victim got %d of 20 answers: its limit was forgotten", after)
	}
}

// Attack: hold many TCP connections from one source, to take the
// connections every resolver shares. Defence: dns.tcp_per_source (default
// 16) per address or IPv6 /64; the excess is closed at once and counted.
func TestAttackDNSTCPPerSource(t *testing.T) {
	const perSource, tries = 16, 40 // perSource: the default dns.tcp_per_source
	addr := serveDNS(t, "")
	q := new(dns.Msg)
	q.SetQuestion("www."+attackZone, dns.TypeA)
	query, _ := q.Pack()
	framed := append([]byte{byte(len(query) >> 8), byte(len(query))}, query...)
	// answered sends the query on a new connection from local, which it
	// leaves open, and tells whether an answer came.
	answered := func(local string) bool {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(framed); err != nil {
			return false
		}
		var l [2]byte
		_, err = c.Read(l[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("a connection was neither answered nor closed")
		}
		return err == nil
	}
	got := 0
	for range tries {
		if answered("127.0.5.1") {
			got++
		}
	}
	t.Logf("%d of %d connections from one source answered", got, tries)
	if got != perSource {
		t.Errorf("%d of %d connections from one source answered; want %d", got, tries, perSource)
	}
	if !answered("127.0.5.2") {
		t.Error("another source is refused: the cap is not per source")
	}
}

// Attack: dns.rrl.slip: 0, which operators set (as in BIND) to send no
// limited answer at all, silently became 2: every other limited answer
// still went out, truncated. Defence: 0 means never slip.
func TestAttackDNSSlipZero(t *testing.T) {
	const rate, n = 5, 40
	addr := serveDNS(t, fmt.Sprintf("  rrl: {enabled: true, responses_per_second: %d, window: 60s, slip: 0}\n", rate))
	full, truncated := burst(t, addr, "127.0.6.1", queries(n, func(int) (string, uint16) { return "www." + attackZone, dns.TypeA }))
	t.Logf("slip 0: %d full and %d truncated answers to %d queries at %d/s", full, truncated, n, rate)
	if truncated != 0 {
		t.Errorf("%d truncated answers with slip 0; want none", truncated)
	}
	if full < 1 || full > rate+1 {
		t.Errorf("%d full answers to %d queries at %d/s", full, n, rate)
	}
}

// Attack (a mistake an attacker can count on): a mistyped address such as
// 999.1.1.300 in an order was seized as a domain name. Defence: a name
// whose top-level label is all-numeric is refused, with file:line, and
// nothing changes.
func TestAttackRegistryNumericName(t *testing.T) {
	data := t.TempDir()
	mustRun(t, []byte("first.evil-c2.net\n"), "--data", data, "order", "import", "-",
		"--case", "rustock-1", "--court", "W.D. Wash.", "--effective", "2011-03-16", "--expires", "2013-03-16")
	before := hashFiles(t, data)
	file := filepath.Join(t.TempDir(), "order.txt")
	if err := os.WriteFile(file, []byte("second.evil-c2.net\n999.1.1.300\n93.184.216.34\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "--data", data, "order", "import", file, "--case", "rustock-1")
	if r.code != 2 {
		t.Fatalf("exit %d; want 2\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if want := file + `:2: "999.1.1.300"`; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "all-numeric") {
		t.Errorf("stderr does not name %s as all-numeric:\n%s", want, r.stderr)
	}
	if n := strings.Count(r.stderr, file+":"); n != 1 {
		t.Errorf("%d problems reported; want 1:\n%s", n, r.stderr)
	}
	after := hashFiles(t, data)
	for name, h := range before {
		if after[name] != h {
			t.Errorf("%s changed after a refused import", name)
		}
	}
	if len(after) != len(before) {
		t.Errorf("files in the data dir changed: %d -> %d", len(before), len(after))
	}
}
