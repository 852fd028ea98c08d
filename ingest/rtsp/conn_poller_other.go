//go:build !linux

package rtsp

// pollable reports whether c can be handed to a poller: never on this
// platform, whose connections read on their own goroutine. (The BSDs'
// SO_RCVLOWAT also holds back non-blocking reads, and their raw read
// syscalls differ.)
func (c *pacedConn) pollable() bool { return false }

func (c *pacedConn) prepareSocket() {}

func wouldBlock(error) bool { return false }
