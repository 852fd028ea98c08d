//go:build linux

package rtsp

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// pollLowWater is the SO_RCVLOWAT of a polled socket: the kernel wakes
// the process's network poller for it only once this much is waiting. A
// poller never waits for the socket to be readable, but the runtime's
// network poller is told of every segment that arrives on a socket it
// watches, and a thread sleeping in it wakes for each: 20,000 wakeups a
// second for 50 cameras, each to find nothing to do, and they cost more
// than the reads. 256 KiB is more than 40 ms of a 50 Mbit/s camera, so a
// poller reads the socket before it is ever reached.
const pollLowWater = 256 << 10

// pollableConn returns the socket of c for a poller to read, or nil when c
// is not a socket.
func pollableConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// prepareSocket sets the socket up for its poller: the read function and
// the low-water mark.
func (c *pacedConn) prepareSocket() {
	c.p.readFn = func(fd uintptr) bool {
		c.p.rn, c.p.rerr = rawRead(fd, c.p.rbuf)
		return true // one attempt: the poller comes back on its next tick
	}
	c.p.raw.Control(func(fd uintptr) {
		// best effort: without it, the process wakes more often
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, pollLowWater)
	})
}

// rawRead reads a non-blocking socket without telling the scheduler: it
// cannot block. syscall.Read would, and a syscall made while every P of
// the process was idle wakes the runtime's system monitor from its deep
// sleep into polling every 20 µs for a millisecond or more: one poller
// tick woke it each time (20% of the agent's CPU with 10 cameras).
func rawRead(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// wouldBlock reports whether a read error only says that nothing is
// there yet.
func wouldBlock(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
}
