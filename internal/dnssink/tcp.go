package dnssink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/proxyproto"
)

// maxTCPQuery bounds the length prefix of a query over TCP: a question with
// EDNS options fits many times over; a larger prefix closes the connection
// instead of holding up to 64 KiB for it.
const maxTCPQuery = 4096

// DefaultTCPPerSource is Options.TCPPerSource's default: a resolver needs
// a few connections at a time (RFC 7766 asks clients to reuse one), and
// with the default TCPMaxConns of 1024 it takes 64 sources at their cap to
// fill the server, not one.
const DefaultTCPPerSource = 16

// tcpSource is what the per-source cap counts: an IPv4 address or an IPv6
// /64 (one customer's network: its addresses cost an attacker nothing).
func tcpSource(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquireSource takes one of src's TCPPerSource connection slots, or
// reports that it has none left.
func (s *Server) acquireSource(src netip.Addr) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.perSource[src] >= s.tcpPerSource.Load() {
		return false
	}
	s.perSource[src]++
	return true
}

// releaseSource gives back a slot that acquireSource took.
func (s *Server) releaseSource(src netip.Addr) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if n := s.perSource[src] - 1; n > 0 {
		s.perSource[src] = n
	} else {
		delete(s.perSource, src)
	}
}

// serveTCP accepts connections on l until it is closed. Connections beyond
// TCPMaxConns are closed at once, so memory stays bounded whatever the
// number of clients.
func (s *Server) serveTCP(ctx context.Context, l *net.TCPListener, wg *sync.WaitGroup) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("dns sinkhole: accept", "err", err)
			// Out of file descriptors and the like: do not spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if s.metrics.tcpOpen.Load() >= int64(s.opts.TCPMaxConns) {
			s.metrics.tcpRejected.Add(1)
			_ = c.SetLinger(0)
			c.Close()
			continue
		}
		s.connsMu.Lock()
		if ctx.Err() != nil {
			s.connsMu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.metrics.tcpOpen.Add(1)
		s.connsMu.Unlock()
		wg.Go(func() {
			defer func() {
				s.connsMu.Lock()
				delete(s.conns, c)
				s.connsMu.Unlock()
				s.metrics.tcpOpen.Add(-1)
				c.Close()
			}()
			s.serveConn(c)
		})
	}
}

// serveConn answers length-framed queries on c, in order, as long as the
// client keeps sending within the idle timeout (pipelined queries are
// answered one after another). A source past its TCPPerSource connections
// is closed at once, before anything is read (behind a trusted proxy:
// right after the PROXY header that names it).
func (s *Server) serveConn(c *net.TCPConn) {
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	var r *bufio.Reader
	idle := s.opts.TCPIdleTimeout
	if s.trust.Load().Trusted(src.Addr()) {
		r = bufio.NewReaderSize(c, 1024)
		_ = c.SetReadDeadline(time.Now().Add(idle))
		h, err := proxyproto.Read(r)
		switch {
		case err == nil:
			if h.Proxied() {
				src = netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port())
			}
		case errors.Is(err, proxyproto.ErrNoHeader):
		default:
			s.noteReadErr(err)
			s.tcpCounters.proxyRejected.Add(1)
			return
		}
	}
	key := tcpSource(src.Addr())
	if !s.acquireSource(key) {
		s.metrics.tcpPerSourceRejected.Add(1)
		_ = c.SetLinger(0)
		return
	}
	defer s.releaseSource(key)
	if r == nil {
		r = bufio.NewReaderSize(c, 1024)
	}
	var lenBuf [2]byte
	for {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
			s.noteReadErr(err)
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n < headerLen || n > maxTCPQuery {
			s.metrics.tcpOversized.Add(1)
			return
		}
		w := s.workerPool.Get().(*worker)
		msg := w.out[len(w.out)-n:] // the query goes at the tail of the buffer
		if _, err := io.ReadFull(r, msg); err != nil {
			s.workerPool.Put(w)
			s.noteReadErr(err)
			return
		}
		w.now = s.opts.Now()
		// The answer is built at w.out[2:] and never reaches the query at
		// the tail: 2+len(answer) ≤ 65537-n only fails for answers near
		// 64 KiB, which this server never builds.
		resp := w.handle(msg, src, local, trTCP, w.out[2:2:len(w.out)-n])
		if resp == nil {
			s.workerPool.Put(w)
			return
		}
		binary.BigEndian.PutUint16(w.out[:2], uint16(len(resp)))
		_ = c.SetWriteDeadline(time.Now().Add(idle))
		_, err := c.Write(w.out[:2+len(resp)])
		s.workerPool.Put(w)
		if err != nil {
			return
		}
	}
}

// noteReadErr counts idle timeouts.
func (s *Server) noteReadErr(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.metrics.tcpTimeouts.Add(1)
	}
}
