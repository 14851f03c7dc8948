//go:build linux && (amd64 || arm64)

package dnssink

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg or sendmmsg moves. Under load
// a batch amortises the system call (two thirds of the time of the
// one-datagram loop) over many queries; when idle it returns at once with
// what there is.
const batchSize = 64

// maxUDPQuery is the largest datagram read; a longer one arrives truncated
// (MSG_TRUNC) and is dropped. Queries are a few hundred bytes at most.
const maxUDPQuery = 4096

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// batch is one UDP worker's buffers for recvmmsg and sendmmsg.
type batch struct {
	in       [batchSize]mmsghdr
	inIov    [batchSize]unix.Iovec
	inName   [batchSize]unix.RawSockaddrInet6
	inBuf    [batchSize][maxUDPQuery]byte
	out      [batchSize]mmsghdr
	outIov   [batchSize]unix.Iovec
	outName  [batchSize]unix.RawSockaddrInet6
	outBuf   [batchSize][]byte
	outCount int
}

func newBatch(udpSize int) *batch {
	b := &batch{}
	for i := range b.in {
		b.inIov[i].Base = &b.inBuf[i][0]
		b.inIov[i].SetLen(maxUDPQuery)
		b.in[i].hdr.Iov = &b.inIov[i]
		b.in[i].hdr.SetIovlen(1)
		b.in[i].hdr.Name = (*byte)(unsafe.Pointer(&b.inName[i]))
		b.out[i].hdr.Iov = &b.outIov[i]
		b.out[i].hdr.SetIovlen(1)
		b.out[i].hdr.Name = (*byte)(unsafe.Pointer(&b.outName[i]))
		b.outBuf[i] = make([]byte, 0, max(udpSize, minUDPSize))
	}
	return b
}

// sockaddrAddrPort decodes a sockaddr_in or sockaddr_in6.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	port := func(p *uint16) uint16 {
		b := (*[2]byte)(unsafe.Pointer(p))
		return uint16(b[0])<<8 | uint16(b[1])
	}
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port)), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// serveUDPBatch serves c with recvmmsg and sendmmsg until c is closed.
func (s *Server) serveUDPBatch(c *net.UDPConn, w *worker) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	b := newBatch(int(s.opts.UDPSize))
	for {
		for i := range b.in {
			b.in[i].hdr.Namelen = unix.SizeofSockaddrInet6
			b.in[i].hdr.Flags = 0
		}
		var n int
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false // wait until readable
			}
			n = int(r)
			if e != 0 {
				serr, n = e, 0
			}
			return true
		})
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return true
			}
			s.log.Warn("dns sinkhole: udp read", "err", err)
			return true
		}
		if serr != nil {
			continue // e.g. ECONNREFUSED: an ICMP error for an earlier answer
		}
		w.now = s.opts.Now()
		b.outCount = 0
		for i := range n {
			from, ok := sockaddrAddrPort(&b.inName[i])
			if !ok || b.in[i].hdr.Flags&unix.MSG_TRUNC != 0 {
				w.c.malformed.Add(1)
				continue
			}
			m := b.outCount
			resp := w.handle(b.inBuf[i][:b.in[i].len], from, local, trUDP, b.outBuf[m][:0])
			if len(resp) == 0 {
				continue
			}
			b.outName[m] = b.inName[i]
			b.out[m].hdr.Namelen = b.in[i].hdr.Namelen
			b.outIov[m].Base = &resp[0]
			b.outIov[m].SetLen(len(resp))
			b.outBuf[m] = resp[:0] // keep a buffer that grew
			b.outCount++
		}
		s.sendBatch(rc, b)
	}
}

// sendBatch sends the batch's answers, skipping one that the kernel refuses
// (so that one bad destination does not stop the others).
func (s *Server) sendBatch(rc syscall.RawConn, b *batch) {
	for sent := 0; sent < b.outCount; {
		var n int
		var serr error
		err := rc.Write(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[sent])), uintptr(b.outCount-sent), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false // wait until writable
			}
			n = int(r)
			if e != 0 {
				serr, n = e, 0
			}
			return true
		})
		if err != nil {
			return // closed
		}
		if serr != nil || n <= 0 {
			n = 1
		}
		sent += n
	}
}
