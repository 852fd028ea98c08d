//go:build !unix

package rtsp

// pollable reports whether c can be handed to a poller: never on this
// platform, whose connections read on their own goroutine.
func (c *pacedConn) pollable() bool { return false }

func (c *pacedConn) prepareSocket() {}

func wouldBlock(error) bool { return false }
