//go:build !linux

package rtsp

import (
	"net"
	"syscall"
)

// pollableConn returns nil: on this platform connections read on their
// own goroutine. (The BSDs' SO_RCVLOWAT also holds back non-blocking
// reads, and their raw read syscalls differ.)
func pollableConn(net.Conn) syscall.RawConn { return nil }

func (c *pacedConn) prepareSocket() {}

func wouldBlock(error) bool { return false }
