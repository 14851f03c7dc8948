//go:build !linux

package dnssink

import "syscall"

// reusePort does nothing here: one UDP socket per address is used.
func reusePort(network, address string, c syscall.RawConn) error { return nil }

// reusePortWorks tells that several sockets may bind one UDP address.
const reusePortWorks = false
