// Package testtool finds the outside programs that integration tests run
// against (Unbound, named-checkzone, dig, nginx …) and picks free loopback
// ports for them. It is only for tests.
//
// Without TAKEDOWN_STRICT=1 a test whose tool is missing is skipped with the
// Debian package to install; with it (as in CI) the test fails.
package testtool

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Strict reports whether missing tools fail tests (TAKEDOWN_STRICT=1).
func Strict() bool { return os.Getenv("TAKEDOWN_STRICT") == "1" }

// Need returns the path of program name, from Debian package pkg. A missing
// program skips the test, or fails it in strict mode.
func Need(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/lib/postgresql/15/bin"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	if Strict() {
		tb.Fatalf("%s not found (TAKEDOWN_STRICT=1): install the Debian package %s (make deps)", name, pkg)
	}
	tb.Skipf("%s not found: install the Debian package %s (make deps) to run this test", name, pkg)
	return ""
}

// FreePort returns a loopback port that was free a moment ago, for a tool
// that cannot be started on port 0. network is "tcp" or "udp"; for servers
// that listen on both, use FreeBothPort.
//
// The port is drawn at random from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), never from it: a port the kernel handed
// out for port 0 goes back into the pool the moment it is closed, and any
// outgoing connection of a test running beside this one may take it before
// the tool binds it (CI saw nats-server fail so). Below the range only an
// explicit bind takes a port, and this process never hands one out twice.
func FreePort(tb testing.TB, network string) int {
	tb.Helper()
	return freePort(tb, network == "udp", network != "udp")
}

// FreeBothPort returns a loopback port free for both TCP and UDP.
func FreeBothPort(tb testing.TB) int {
	tb.Helper()
	return freePort(tb, true, true)
}

var handed = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

func freePort(tb testing.TB, udp, tcp bool) int {
	tb.Helper()
	lo, hi := 10000, ephemeralLow()-1
	handed.Lock()
	defer handed.Unlock()
	for range 1000 {
		port := lo + rand.IntN(hi-lo+1)
		if handed.ports[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if tcp {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				continue
			}
			l.Close()
		}
		if udp {
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue
			}
			u.Close()
		}
		handed.ports[port] = true
		return port
	}
	tb.Fatal("no free loopback port below the ephemeral range")
	return 0
}

// ephemeralLow is the lowest port the kernel hands out for port 0, 32768
// when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low < 12000 {
		return 32768
	}
	return low
}

// UDPSocket returns a UDP socket on a free loopback port, closed when the
// test ends.
func UDPSocket(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Overflow shrinks rx's receive queue to the kernel's minimum and sends it
// n datagrams of 1,000 bytes without reading them, so that the kernel
// queues a few and drops the rest.
func Overflow(tb testing.TB, rx *net.UDPConn, n int) {
	tb.Helper()
	if err := rx.SetReadBuffer(1); err != nil {
		tb.Fatal(err)
	}
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Close()
	p := make([]byte, 1000)
	for range n {
		if _, err := tx.Write(p); err != nil {
			tb.Fatal(err)
		}
	}
}

// StartNATS runs a nats-server with JetStream (its store in a temporary
// directory) on a free loopback port and returns its URL and a stop
// function; it is also stopped when tb ends. Stopping twice is harmless.
func StartNATS(tb testing.TB) (url string, stop func()) {
	tb.Helper()
	bin := Need(tb, "nats-server", "nats-server")
	dir := tb.TempDir()
	port := FreePort(tb, "tcp")
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n", port, filepath.Join(dir, "js")), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	logf, err := os.Create(filepath.Join(dir, "nats.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); logf.Close() }) }
	tb.Cleanup(stop)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := WaitTCP(addr, 20*time.Second); err != nil {
		tb.Fatalf("nats-server did not start: %v", err)
	}
	return "nats://" + addr, stop
}

// OpenSMTPD is a real OpenSMTPD process on a loopback port, accepting mail
// for any recipient into one maildir.
type OpenSMTPD struct {
	Addr    string
	Maildir string
}

// StartOpenSMTPD starts smtpd -d with a config of its own. OpenSMTPD keeps
// its queue in /var/spool/smtpd and its control socket in
// /var/run/smtpd.sock whatever the config says, so only one instance can
// run: a file lock serialises tests (and test binaries) that use it. It
// runs as root only: otherwise the test is skipped, or fails in strict
// mode, as for a missing tool.
func StartOpenSMTPD(tb testing.TB) *OpenSMTPD {
	tb.Helper()
	bin := Need(tb, "smtpd", "opensmtpd")
	Need(tb, "smtpctl", "opensmtpd")
	if os.Geteuid() != 0 {
		if Strict() {
			tb.Fatal("OpenSMTPD runs as root only (TAKEDOWN_STRICT=1)")
		}
		tb.Skip("OpenSMTPD runs as root only")
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "takedown-opensmtpd-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); lock.Close() })

	// The maildir is written by the unprivileged user "nobody": it lives
	// outside t.TempDir (whose parents are 0700).
	root, err := os.MkdirTemp("", "takedown-smtpd-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	maildir := filepath.Join(root, "Maildir")
	for _, d := range []string{root, maildir} {
		os.MkdirAll(d, 0o777)
		os.Chmod(d, 0o777)
	}
	port := FreePort(tb, "tcp")
	conf := filepath.Join(root, "smtpd.conf")
	// No "tls pki": OpenSMTPD 6.8 as built by Debian 12 fails every TLS
	// handshake with OpenSSL 3 ("EVP lib" in its privilege-separated
	// signer), and it offers AUTH only over TLS. STARTTLS and AUTH are
	// therefore not exercised against this server.
	if err := os.WriteFile(conf, fmt.Appendf(nil, `table vusers { "@" = "nobody" }
listen on 127.0.0.1 port %d hostname localhost
action "box" maildir "%s" virtual <vusers>
match from any for any action "box"
`, port, maildir), 0o644); err != nil {
		tb.Fatal(err)
	}
	logPath := filepath.Join(root, "smtpd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start smtpd: %v", err)
	}
	tb.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if tb.Failed() {
			b, _ := os.ReadFile(logPath)
			tb.Logf("smtpd log:\n%s", b)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := WaitTCP(addr, 20*time.Second); err != nil {
		b, _ := os.ReadFile(logPath)
		tb.Fatalf("smtpd did not listen on %s: %v\n%s", addr, err, b)
	}
	return &OpenSMTPD{Addr: addr, Maildir: maildir}
}

// WaitTCP waits until addr accepts TCP connections, polling every 50 ms,
// and returns the last dial error when it does not within the bound.
func WaitTCP(addr string, within time.Duration) error {
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}
