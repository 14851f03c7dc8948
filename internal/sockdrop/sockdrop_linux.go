package sockdrop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// skMeminfoDrops is SK_MEMINFO_DROPS of linux/sock_diag.h, the index of
// sk_drops in SO_MEMINFO's array of uint32 (x/sys/unix does not name the
// array's indexes).
const skMeminfoDrops = 8

func drops(fd uintptr) (uint64, bool) {
	var info [16]uint32
	size := uint32(unsafe.Sizeof(info))
	// x/sys/unix has no getsockopt into a caller's buffer of this shape.
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || size < (skMeminfoDrops+1)*4 {
		return 0, false
	}
	return uint64(info[skMeminfoDrops]), true
}

// SetReceiveBufferFD asks for a receive buffer of n bytes on socket fd
// (in a syscall.RawConn's Control, as a net.ListenConfig's Control runs):
// beyond net.core.rmem_max only a privileged process may
// (SO_RCVBUFFORCE), so that is tried first and the capped SO_RCVBUF after
// it.
func SetReceiveBufferFD(fd uintptr, n int) error {
	if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil {
		return nil
	}
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}
