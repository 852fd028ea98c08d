//go:build linux

package archive

import (
	"os"
	"syscall"
)

// setDirect turns O_DIRECT on or off for f and reports whether f is now in
// the wanted state. Filesystems without direct I/O (tmpfs before Linux 6.6,
// some FUSE filesystems) refuse it with EINVAL: f then stays buffered.
func setDirect(f *os.File, on bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		fl, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if e != 0 {
			return
		}
		if on {
			fl |= syscall.O_DIRECT
		} else {
			fl &^= syscall.O_DIRECT
		}
		_, _, e = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, fl)
		ok = e == 0
	})
	return ok
}
