//go:build !(linux && (amd64 || arm64))

package dnssink

import "net"

// serveUDPBatch would serve c with batched system calls; false means the
// portable loop must serve it.
func (s *Server) serveUDPBatch(c *net.UDPConn, w *worker) bool { return false }
