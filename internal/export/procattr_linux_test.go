package export

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes a started resolver get SIGTERM if the test binary dies
// before its cleanup runs (a killed go test must not leave Unbound behind).
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
