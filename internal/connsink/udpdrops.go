package connsink

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/sockdrop"
)

// udpDrops exports, per UDP listener, the datagrams the kernel dropped
// because the socket's receive queue was full (sockdrop): they never reach
// the listener, so no other counter sees them. The count is read at scrape
// time; a closed listener's last count is kept so that the counter never
// goes down.
type udpDrops struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	open   map[string][]*net.UDPConn
	closed map[string]uint64
}

func newUDPDrops() *udpDrops {
	return &udpDrops{
		desc: prometheus.NewDesc("takedown_conn_udp_socket_drops_total",
			"Datagrams the kernel dropped before the UDP listener read them (its socket's receive queue was full).",
			[]string{"listener"}, nil),
		open:   map[string][]*net.UDPConn{},
		closed: map[string]uint64{},
	}
}

func (u *udpDrops) Describe(ch chan<- *prometheus.Desc) { ch <- u.desc }

func (u *udpDrops) Collect(ch chan<- prometheus.Metric) {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := map[string]bool{}
	for name, cs := range u.open {
		seen[name] = true
		ch <- prometheus.MustNewConstMetric(u.desc, prometheus.CounterValue, float64(u.closed[name]+sockdrop.Sum(cs)), name)
	}
	for name, n := range u.closed {
		if !seen[name] {
			ch <- prometheus.MustNewConstMetric(u.desc, prometheus.CounterValue, float64(n), name)
		}
	}
}

// add starts counting c's drops under name.
func (u *udpDrops) add(name string, c *net.UDPConn) {
	u.mu.Lock()
	u.open[name] = append(u.open[name], c)
	u.mu.Unlock()
}

// remove keeps c's last count under name; call it before c is closed.
func (u *udpDrops) remove(name string, c *net.UDPConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cs := u.open[name]
	for i, x := range cs {
		if x == c {
			u.closed[name] += sockdrop.Sum([]*net.UDPConn{c})
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(u.open, name)
	} else {
		u.open[name] = cs
	}
}
