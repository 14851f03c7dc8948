//go:build !linux

package connsink

import "net"

// waitReadable is a no-op where peeking at a socket is not implemented:
// idle connections keep their read buffer.
func waitReadable(net.Conn) error { return nil }
