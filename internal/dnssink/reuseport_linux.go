package dnssink

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/takedown/takedown/internal/sockdrop"
)

// reusePort sets SO_REUSEPORT so that several UDP sockets share one
// address and the kernel spreads datagrams over them (one per core).
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		if network == "udp" || network == "udp4" || network == "udp6" {
			// A deep receive queue rides out scheduling hiccups under load
			// (as NSD does); what overflows it anyway is counted.
			_ = sockdrop.SetReceiveBufferFD(fd, sockdrop.ReceiveBuffer)
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// reusePortWorks tells that several sockets may bind one UDP address.
const reusePortWorks = true
