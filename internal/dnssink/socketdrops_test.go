package dnssink

import (
	"net"
	"runtime"
	"testing"

	"github.com/takedown/takedown/internal/sockdrop"
	"github.com/takedown/takedown/internal/testtool"
)

// The server exports the kernel's drops on its UDP sockets, and its
// counts include a socket that dropped datagrams.
func TestSocketDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sk_drops is read on Linux only")
	}
	s := startSink(t, testSource(), Options{})
	if got := s.counter(t, "takedown_dns_udp_socket_drops_total"); got != 0 {
		t.Errorf("takedown_dns_udp_socket_drops_total = %v on a new server, want 0", got)
	}

	rx := testtool.UDPSocket(t)
	testtool.Overflow(t, rx, 300)
	m := newMetrics()
	m.udpConns.Store(&[]*net.UDPConn{rx})
	_, st := m.sum()
	if st.SocketDrops == 0 || st.SocketDrops > 300 {
		t.Fatalf("SocketDrops = %d after 300 datagrams into a full queue", st.SocketDrops)
	}
	// Closing keeps the count.
	before := st.SocketDrops
	if cs := m.udpConns.Swap(nil); cs != nil {
		m.udpDropsClosed.Add(sockdrop.Sum(*cs))
	}
	if _, st := m.sum(); st.SocketDrops != before {
		t.Errorf("after close: %d, want %d", st.SocketDrops, before)
	}
}
