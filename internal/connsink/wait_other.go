//go:build !linux

package connsink

import "net"

// readReady is not implemented here: idle connections keep their read
// buffer, and the caller reads normally.
func readReady(net.Conn) (*[]byte, int, bool, error) { return nil, 0, false, nil }
