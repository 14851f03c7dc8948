package selfcheck

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/proxyproto"
)

// proxyListener reads a PROXY v1 or v2 header at the start of every
// connection from a trusted peer and makes the relayed client the
// connection's RemoteAddr. Connections from other peers are passed through
// untouched: a PROXY header they send is not read, and net/http answers it
// as a malformed request.
//
// Why not github.com/pires/go-proxyproto's Listener (tried at v0.8.1, issue
// 18): its ConnPolicy (USE for trusted peers, SKIP for others) and
// ReadHeaderTimeout fit, but three things this listener promises do not:
//   - a malformed header from a trusted peer surfaces as a plain error from
//     Read, which net/http answers with "400 Bad Request"; here it is a read
//     *net.OpError, so net/http closes the connection without answering;
//   - a header timeout is turned into "no header" (ErrNoProxyProtocol), so a
//     trusted peer silent for the header timeout is kept until net/http's
//     own ReadHeaderTimeout; here it is cut off after the header timeout;
//   - it has no hook to count refused headers
//     (takedown_selfcheck_refused_total{reason="proxy"}).
//
// Wrapping its Conn to restore these would leave as much code as this file,
// plus a second PROXY parser beside internal/proxyproto (which the DNS and
// connection sinkholes use and which is fuzzed), so ours stays.
type proxyListener struct {
	net.Listener
	trust   func() *proxyproto.Trust // the current trusted proxies
	timeout time.Duration            // for the header
	refused func()                   // a trusted peer sent a bad header
}

var _ net.Listener = (*proxyListener)(nil)

// Accept does not read from the connection (that would let one slow peer
// stall every other): the header is read on the connection's first use.
func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.trust().Trusted(addrOf(c.RemoteAddr())) {
		return c, nil
	}
	return &proxyConn{Conn: c, l: l}, nil
}

// proxyConn is a connection from a trusted peer. The header is read once,
// on the first of RemoteAddr, Read or a deadline change: net/http calls
// RemoteAddr first, on the connection's own goroutine, before it sets its
// own deadlines.
type proxyConn struct {
	net.Conn
	l    *proxyListener
	once sync.Once
	br   *bufio.Reader
	src  net.Addr
	err  error
}

func (c *proxyConn) init() {
	c.once.Do(func() {
		c.src = c.Conn.RemoteAddr()
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.timeout))
		c.br = bufio.NewReader(c.Conn)
		h, err := proxyproto.Read(c.br)
		_ = c.Conn.SetReadDeadline(time.Time{})
		switch {
		case err == nil && h.Proxied():
			c.src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port()))
		case err == nil, errors.Is(err, proxyproto.ErrNoHeader):
			// A health check (LOCAL) or a direct request from the proxy
			// host: the peer is the client.
		default:
			// A read error, so that net/http closes the connection
			// without answering.
			c.err = &net.OpError{Op: "read", Net: "tcp", Source: c.Conn.LocalAddr(), Addr: c.src, Err: err}
			if c.l.refused != nil {
				c.l.refused()
			}
		}
	})
}

// RemoteAddr is the relayed client's address when the header carried one.
func (c *proxyConn) RemoteAddr() net.Addr {
	c.init()
	return c.src
}

// Read reads after the header; it fails for good after a bad header, so a
// request is never served under the proxy's own address by mistake.
func (c *proxyConn) Read(p []byte) (int, error) {
	c.init()
	if c.err != nil {
		return 0, c.err
	}
	return c.br.Read(p)
}

// SetDeadline first reads the header, so that the caller's deadline is
// the one that stays.
func (c *proxyConn) SetDeadline(t time.Time) error {
	c.init()
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.init()
	return c.Conn.SetReadDeadline(t)
}

// addrOf is the IP address of a net.Addr (invalid when it has none).
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
