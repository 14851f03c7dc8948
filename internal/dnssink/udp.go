package dnssink

import (
	"errors"
	"net"
)

// serveUDP answers datagrams on c until it is closed.
func (s *Server) serveUDP(c *net.UDPConn, w *worker) {
	if s.serveUDPBatch(c, w) {
		return
	}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 65535)
	for {
		n, _, _, from, err := c.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable reported on the socket
		}
		w.now = s.opts.Now()
		if resp := w.handle(buf[:n], from, local, trUDP, w.out); resp != nil {
			_, _ = c.WriteToUDPAddrPort(resp, from)
		}
	}
}
