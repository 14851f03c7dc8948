package connsink

import (
	"io"
	"net"
	"syscall"
)

// readReady waits until c has bytes (or EOF, an error, or its read
// deadline) and reads what is there into a chunk taken from the pool only
// at that moment, so that an idle connection holds no read buffer: 10,000
// idle clients cost their goroutines and sockets only. It costs no extra
// system call: the read is tried first and the runtime poller waits only
// when it finds nothing. ok is false where this is not implemented; then
// the caller reads normally.
func readReady(c net.Conn) (chunk *[]byte, n int, ok bool, err error) {
	sc, isSC := c.(syscall.Conn)
	if !isSC {
		return nil, 0, false, nil
	}
	rc, e := sc.SyscallConn()
	if e != nil {
		return nil, 0, false, nil
	}
	var rerr error
	e = rc.Read(func(fd uintptr) bool {
		chunk = chunkPool.Get().(*[]byte)
		var errno error
		n, errno = syscall.Read(int(fd), *chunk)
		if errno == syscall.EAGAIN || errno == syscall.EINTR {
			chunkPool.Put(chunk)
			chunk = nil
			return false
		}
		if errno != nil {
			rerr, n = errno, 0
		} else if n == 0 {
			rerr = io.EOF
		}
		return true
	})
	if e != nil {
		return nil, 0, true, e
	}
	if rerr != nil {
		chunkPool.Put(chunk)
		return nil, 0, true, rerr
	}
	return chunk, n, true, nil
}
