// Package sockdrop reads how many datagrams the kernel dropped on a UDP
// socket because its receive queue was full, and deepens that queue.
// Those datagrams never reach the process, so no counter of the sinkholes'
// own sees them; without this a burst beyond the socket's buffer would be
// lost silently. On Linux the count is the socket's sk_drops, read with
// getsockopt(SO_MEMINFO) at scrape time: nothing is added to the receive
// path. Elsewhere Drops reports false.
package sockdrop

import (
	"errors"
	"net"
	"syscall"
)

// ReceiveBuffer is the receive buffer the sinkholes ask for on their UDP
// sockets (as NSD does): deep enough to ride out a scheduling hiccup of a
// few milliseconds at 100,000 datagrams a second.
const ReceiveBuffer = 4 << 20

// Drops returns the datagrams the kernel dropped on c's socket since it
// was opened (a 32-bit count in the kernel, so it wraps after 2^32), and
// false where the count cannot be read.
func Drops(c syscall.Conn) (uint64, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n uint64
	var ok bool
	if err := rc.Control(func(fd uintptr) { n, ok = drops(fd) }); err != nil {
		return 0, false
	}
	return n, ok
}

// SetReceiveBuffer asks for a receive buffer of n bytes on c's socket
// (SetReceiveBufferFD), or where that is not implemented, what the
// connection's own SetReadBuffer grants.
func SetReceiveBuffer(c syscall.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = SetReceiveBufferFD(fd, n) }); err != nil {
		return err
	}
	if rb, ok := c.(interface{ SetReadBuffer(int) error }); ok && errors.Is(serr, errors.ErrUnsupported) {
		return rb.SetReadBuffer(n)
	}
	return serr
}

// Sum is the drops of several UDP sockets (those that cannot be read
// count 0).
func Sum(cs []*net.UDPConn) uint64 {
	var n uint64
	for _, c := range cs {
		d, _ := Drops(c)
		n += d
	}
	return n
}
