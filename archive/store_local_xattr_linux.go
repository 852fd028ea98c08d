//go:build linux

package archive

import (
	"os"
	"syscall"
	"unsafe"
)

// fsetxattr sets the extended attribute name of f to val.
func fsetxattr(f *os.File, name string, val []byte) error {
	n, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var e syscall.Errno
	var p unsafe.Pointer
	if len(val) > 0 {
		p = unsafe.Pointer(&val[0])
	}
	if cerr := rc.Control(func(fd uintptr) {
		_, _, e = syscall.Syscall6(syscall.SYS_FSETXATTR, fd, uintptr(unsafe.Pointer(n)), uintptr(p), uintptr(len(val)), 0, 0)
	}); cerr != nil {
		return cerr
	}
	if e != 0 {
		return &os.SyscallError{Syscall: "fsetxattr", Err: e}
	}
	return nil
}

// getxattr returns the extended attribute name of f, or of the file at path
// (not following a symbolic link) when f is nil. An absent attribute, or a
// filesystem without extended attributes, is errXattrAbsent.
func getxattr(f *os.File, path, name string) ([]byte, error) {
	n, err := syscall.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	var pp *byte
	var rc syscall.RawConn
	if f != nil {
		if rc, err = f.SyscallConn(); err != nil {
			return nil, err
		}
	} else if pp, err = syscall.BytePtrFromString(path); err != nil {
		return nil, err
	}
	get := func(buf []byte) (int, syscall.Errno) {
		var p unsafe.Pointer
		if len(buf) > 0 {
			p = unsafe.Pointer(&buf[0])
		}
		if f == nil {
			r, _, e := syscall.Syscall6(syscall.SYS_LGETXATTR, uintptr(unsafe.Pointer(pp)), uintptr(unsafe.Pointer(n)), uintptr(p), uintptr(len(buf)), 0, 0)
			return int(r), e
		}
		var r uintptr
		var e syscall.Errno
		if cerr := rc.Control(func(fd uintptr) {
			r, _, e = syscall.Syscall6(syscall.SYS_FGETXATTR, fd, uintptr(unsafe.Pointer(n)), uintptr(p), uintptr(len(buf)), 0, 0)
		}); cerr != nil {
			return 0, syscall.EBADF
		}
		return int(r), e
	}
	buf := make([]byte, 2048)
	for range 4 {
		k, e := get(buf)
		switch {
		case e == 0:
			return buf[:k], nil
		case e == syscall.ENODATA || e == syscall.ENOTSUP:
			return nil, errXattrAbsent
		case e != syscall.ERANGE:
			return nil, &os.SyscallError{Syscall: "getxattr", Err: e}
		}
		// larger than buf: ask for the size (it may change again)
		if k, e = get(nil); e != 0 {
			return nil, &os.SyscallError{Syscall: "getxattr", Err: e}
		}
		buf = make([]byte, k)
	}
	return nil, &os.SyscallError{Syscall: "getxattr", Err: syscall.ERANGE}
}
