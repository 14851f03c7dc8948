//go:build !linux

package sockdrop

import "errors"

func drops(uintptr) (uint64, bool) { return 0, false }

// SetReceiveBufferFD is not implemented here (SetReceiveBuffer falls back
// to the connection's SetReadBuffer).
func SetReceiveBufferFD(uintptr, int) error { return errors.ErrUnsupported }
