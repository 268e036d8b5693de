//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// fileIsTerminal asks for f's terminal attributes. It goes through
// SyscallConn, not Fd, which would put f in blocking mode.
func fileIsTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var terr error
	if err := rc.Control(func(fd uintptr) { _, terr = unix.IoctlGetTermios(int(fd), getTermios) }); err != nil {
		return false
	}
	return terr == nil
}
