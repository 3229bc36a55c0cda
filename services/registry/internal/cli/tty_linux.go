//go:build linux

package cli

import (
	"os"
	"syscall"
	"unsafe"
)

// isTerminal reports whether f is a terminal: it answers the TCGETS ioctl, as a pipe,
// a file or /dev/null do not.
func isTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var termios syscall.Termios
	errno := syscall.ENOTTY
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&termios)))
	}); err != nil {
		return false
	}
	return errno == 0
}
