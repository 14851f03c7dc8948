package connsink

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/takedown/takedown/internal/sockdrop"
	"github.com/takedown/takedown/internal/testtool"
)

// A UDP listener asks for a deep receive queue and exports the kernel's
// drops on its socket under its name.
func TestUDPListenerSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	s := startSink(t, KindUDP, func(o *Options) { o.Name = "udp-test" })
	up := s.pc.(*net.UDPConn)
	rc, err := up.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	rc.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		t.Fatal(err)
	}
	// The kernel doubles what it grants; without privilege it grants at
	// most rmem_max.
	want := sockdrop.ReceiveBuffer
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil && os.Geteuid() != 0 {
		if m, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			want = min(want, m)
		}
	}
	if got < want {
		t.Errorf("SO_RCVBUF %d, want at least %d", got, want)
	}
	if v, ok := gathered(t, s.reg, "udp-test"); !ok || v != 0 {
		t.Errorf("takedown_conn_udp_socket_drops_total{listener=udp-test} = %v, %v; want 0, present", v, ok)
	}
}

// Drops counted on a socket stay counted after it is closed.
func TestUDPDropsCollector(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	rx := testtool.UDPSocket(t)
	u := newUDPDrops()
	reg := prometheus.NewRegistry()
	reg.MustRegister(u)
	u.add("x", rx)
	testtool.Overflow(t, rx, 300)
	before, _ := gathered(t, reg, "x")
	if before == 0 {
		t.Fatal("no drops counted after 300 datagrams into a full queue")
	}
	u.remove("x", rx)
	rx.Close()
	if after, ok := gathered(t, reg, "x"); !ok || after != before {
		t.Errorf("after close: %v, want %v", after, before)
	}
}

// gathered returns takedown_conn_udp_socket_drops_total of listener.
func gathered(t *testing.T, reg *prometheus.Registry, listener string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "takedown_conn_udp_socket_drops_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					return m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}
