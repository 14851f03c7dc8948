//go:build !linux

package sockdrop

import "errors"

func drops(uintptr) (uint64, bool) { return 0, false }

func setReceiveBuffer(uintptr, int) error { return errors.ErrUnsupported }
