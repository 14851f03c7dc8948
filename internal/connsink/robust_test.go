package connsink

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// idleChildEnv makes the test binary a client that holds idle connections
// (see TestMain): the file descriptor limit (20,000 here, hard) does not
// fit both ends of 10,000 connections in one process.
const idleChildEnv = "TAKEDOWN_CONNSINK_IDLE_CHILD"

func TestMain(m *testing.M) {
	if addr := os.Getenv(idleChildEnv); addr != "" {
		os.Exit(idleChild(addr))
	}
	os.Exit(m.Run())
}

// idleChild opens idleConns connections to addr from 40 loopback source
// addresses (under the per-source cap), says "ready", and holds them until
// its standard input closes.
func idleChild(addr string) int {
	conns := make([]net.Conn, 0, idleConns)
	for i := range idleConns {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(1+i/250))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

const idleConns = 10000

func memInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// waitFor polls cond; the test's own deadline bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTenThousandIdleConnectionsStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 connections")
	}
	s := startSink(t, KindHTTP, nil)
	before := memInUse()

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleChildEnv+"="+s.Addr().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("idle client: %q", line)
	}
	waitFor(t, "10,000 accepted connections", func() bool { return s.counter(t, "active") == idleConns })

	after := memInUse()
	perConn := (int64(after) - int64(before)) / idleConns
	t.Logf("heap+stacks: %d KiB before, %d KiB with %d idle connections: %d bytes each",
		before>>10, after>>10, idleConns, perConn)
	// A goroutine's stack, the conn state and the socket's runtime
	// bookkeeping; no read buffer is held while idle.
	if perConn > 12<<10 {
		t.Errorf("%d bytes per idle connection, want at most 12 KiB", perConn)
	}
	// The sinkhole still answers others.
	c := dialFrom(t, "127.0.0.9", s.Addr().String())
	io.WriteString(c, "GET /still HTTP/1.1\r\nConnection: close\r\n\r\n")
	if got, _ := io.ReadAll(c); !strings.HasPrefix(string(got), "HTTP/1.1 200") {
		t.Errorf("with idle connections open, a new client got %q", got)
	}
}

func TestSlowlorisDoesNotStarveOthers(t *testing.T) {
	curl := testtool.Need(t, "curl", "curl")
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	s := startSink(t, KindHTTP, nil)
	const slow = 1000
	conns := make([]net.Conn, 0, slow)
	for i := range slow {
		c := dialFrom(t, fmt.Sprintf("127.0.1.%d", 1+i/250), s.Addr().String())
		io.WriteString(c, "POST /login.php HTTP/1.1\r\nHost: c2.example\r\n")
		conns = append(conns, c)
	}
	waitFor(t, "1,000 slow connections", func() bool { return s.counter(t, "active") == slow })

	// Trickle one header line to every slow connection per round while
	// a normal client makes its request.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := 0; round < 500; round++ {
			for _, c := range conns {
				c.Write([]byte("X-Slow: 1\r\n"))
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	out, err := exec.CommandContext(t.Context(), curl, "-sS", "--interface", "127.0.0.2", "-w", "%{http_code}",
		fmt.Sprintf("http://127.0.0.1:%d/ok", s.port())).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil || string(out) != "200" {
		t.Fatalf("curl during slowloris: %v %q", err, out)
	}
	ev := s.next(t)
	if ev.SrcIP.String() != "127.0.0.2" || ev.HTTPURL != "/ok" {
		t.Errorf("first event is %v %s, want the normal client's", ev.SrcIP, ev.HTTPURL)
	}
	if got := s.counter(t, "active"); got < slow {
		t.Errorf("%v connections open; the slow ones should still be waiting", got)
	}
}

func TestReadHeaderTimeoutEndsSlowClient(t *testing.T) {
	s := startSink(t, KindHTTP, func(o *Options) { o.Limits.ReadHeaderTimeout = 50 * time.Millisecond })
	c := dialFrom(t, "127.0.0.1", s.Addr().String())
	io.WriteString(c, "GET /never-finished HTTP/1.1\r\nHost: x\r\n")
	// The server closes the connection (no response to a partial head)
	// and records what it got.
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Errorf("response %q to a partial head", got)
	}
	ev := s.next(t)
	if !strings.HasPrefix(string(ev.PayloadPrefix), "GET /never-finished") || s.counter(t, "bad") != 1 {
		t.Errorf("event payload %q, bad %v", ev.PayloadPrefix, s.counter(t, "bad"))
	}
}
