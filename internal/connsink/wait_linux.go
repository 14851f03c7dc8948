package connsink

import (
	"net"
	"syscall"
	"unsafe"
)

// waitReadable blocks until c has bytes to read (or EOF, an error, or its
// read deadline) without reading any, so that an idle connection holds no
// read buffer: 10,000 idle clients cost their goroutines and sockets only.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var b [1]byte
	p := unsafe.Pointer(&b[0])
	return rc.Read(func(fd uintptr) bool {
		// Peek one byte without blocking: the runtime poller only waits
		// when this says there is nothing yet.
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(p), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return errno != syscall.EAGAIN && errno != syscall.EINTR
	})
}
