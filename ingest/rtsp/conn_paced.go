package rtsp

import (
	"net"
	"sync/atomic"
	"time"
)

// DefaultReadPacing is Source.ReadPacing's default. With 50 cameras at
// 4 Mbit/s, 40 ms took 10% less CPU than 20 ms.
const DefaultReadPacing = 40 * time.Millisecond

// pacedBufferSize is the read buffer of a paced connection: 40 ms of a
// 6 Mbit/s camera; faster ones take more reads per pause.
const pacedBufferSize = 32 << 10

// pacedConn batches the reads of an RTSP-over-TCP connection. A camera
// writes each RTP packet on its own (about 400 a second at 4 Mbit/s), and a
// reader that keeps up wakes and makes a read syscall for each. Once pacing
// is on (after PLAY), reads start at most once per interval unless the
// previous one filled the buffer (more is waiting), so each read takes the
// packets that arrived since the last in one syscall: 25 wakeups a second
// instead of 400, at the cost of up to 40 ms of delay, nothing next to a 2 s
// fragment. The kernel's socket buffer holds what arrives in between. Reads
// are only ever made by gortsplib's reader goroutine.
type pacedConn struct {
	net.Conn
	interval time.Duration
	on       atomic.Bool

	buf  []byte
	r, w int
	full bool      // the last read filled the buffer
	last time.Time // when it started
}

func newPacedConn(c net.Conn, interval time.Duration) *pacedConn {
	return &pacedConn{Conn: c, interval: interval}
}

// Read serves p from the buffer, refilling it with one read of the
// connection when empty.
func (c *pacedConn) Read(p []byte) (int, error) {
	if !c.on.Load() {
		return c.Conn.Read(p)
	}
	if c.r == c.w {
		if c.buf == nil {
			c.buf = make([]byte, pacedBufferSize)
		}
		if !c.full {
			if d := c.interval - time.Since(c.last); d > 0 {
				time.Sleep(d)
			}
		}
		c.last = time.Now()
		n, err := c.Conn.Read(c.buf)
		c.r, c.w = 0, n
		c.full = n == len(c.buf)
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// start turns pacing on.
func (c *pacedConn) start() { c.on.Store(true) }
