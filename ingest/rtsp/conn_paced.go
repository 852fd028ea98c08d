package rtsp

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// DefaultReadPacing is Source.ReadPacing's default. With 50 cameras at
// 4 Mbit/s, 40 ms took 10% less CPU than 20 ms.
const DefaultReadPacing = 40 * time.Millisecond

// pacedBufferSize is the read buffer of a paced connection: 40 ms of a
// 6 Mbit/s camera; faster ones take more reads per pause. It grows to hold
// an interleaved frame larger than itself.
const pacedBufferSize = 32 << 10

// maxHeaderSize bounds an RTSP message header the connection frames; past
// it, the connection stops framing and hands everything to gortsplib.
const maxHeaderSize = 16 << 10

// keepaliveEvery is how often, at most, gortsplib is handed something while
// the connection keeps RTP frames from it: its inactivity timer only sees
// what it reads.
const keepaliveEvery = time.Second

// frameFunc takes an interleaved frame's payload (valid only during the
// call), received at recv (the end of the read that brought it), and
// reports whether it consumed it; frames it does not consume go to
// gortsplib.
type frameFunc func(channel byte, payload []byte, recv time.Time) bool

// pacedConn is the TCP connection of an RTSP session, between the socket
// and gortsplib. It does two things once started (after PLAY):
//
// Pacing. A camera writes each RTP packet on its own (about 400 a second at
// 4 Mbit/s), and a reader that keeps up wakes and makes a read syscall for
// each. Reads start at most once per interval unless the previous one
// filled the buffer (more is waiting), so each read takes the packets that
// arrived since the last in one syscall: 25 wakeups a second instead of
// 400, at the cost of up to 40 ms of delay, nothing next to a 2 s fragment.
// The kernel's socket buffer holds what arrives in between.
//
// Interleaved RTP. With a frame function, it splits the byte stream into
// RTSP messages and interleaved frames from the first byte on, and gives
// the RTP frames of the session's media straight to the frame function
// from its buffer: gortsplib would allocate a frame, a packet and a payload
// for each. RTSP messages, RTCP and any other frame go to gortsplib, whole,
// plus, at most once a second while it would otherwise see nothing, an
// empty RTCP receiver report on the first media's RTCP channel that keeps
// its inactivity timer quiet. Whatever the connection cannot frame (a
// header without its end within 16 KiB, a bad Content-Length) makes it
// hand everything on untouched from there: it only ever stops at a unit's
// boundary, so gortsplib stays in step.
//
// Polling. Once started with a frame function, on a socket, the reader
// hands the socket to a poller (conn_poller.go) at its next read: one
// goroutine that reads many cameras' sockets once per interval and calls
// their frame functions, so no goroutine wakes per camera. gortsplib's
// reader then only waits for what the poller leaves for it (RTSP messages,
// RTCP, keepalives) and the read error that ends the connection.
//
// Reads are only ever made by one goroutine at a time (gortsplib's client
// goroutine during the handshake, its reader after, then the poller).
type pacedConn struct {
	net.Conn
	interval time.Duration
	on       atomic.Bool

	buf  []byte
	r, w int
	full bool      // the last read filled the free space
	last time.Time // when it started
	got  time.Time // when it returned: the receive time of what it brought
	err  error     // a read error to return once what came with it is handed out

	framed  bool      // split the stream into units (plain rtsp:)
	frame   frameFunc // set before start
	keepCh  byte      // RTCP channel for the keepalive report
	pass    int       // bytes of the current unit still to hand to gortsplib
	pend    []byte    // framed bytes for gortsplib, from pendR
	pendR   int
	fed     time.Time // last time gortsplib was handed something
	swallow bool      // frames were taken since gortsplib was last fed
	// keepalive is the longest gortsplib goes without being fed while
	// frames are taken (keepaliveEvery)
	keepalive time.Duration

	polling bool   // a poller reads the connection (the reader's to read)
	p       polled // the poller's side
}

func newPacedConn(c net.Conn, interval time.Duration, framed bool) *pacedConn {
	pc := &pacedConn{Conn: c, interval: interval, framed: framed, keepalive: keepaliveEvery, p: newPolled()}
	if framed && interval > 0 {
		pc.p.raw = pollableConn(c)
	}
	return pc
}

// keepaliveFrame is an interleaved empty RTCP receiver report (RFC 3550
// 6.4.2, no report blocks); its channel byte is set per connection.
var keepaliveFrame = [12]byte{'$', 0, 0, 8, 0x80, 201, 0, 1, 0, 0, 0, 0}

// start turns pacing on and, when frame is not nil and the connection is
// framed, hands it the RTP frames that follow; those before start went to
// gortsplib. rtcpChannel is the first media's RTCP channel. It is called
// once, after PLAY.
func (c *pacedConn) start(frame frameFunc, rtcpChannel byte) {
	c.frame, c.keepCh = frame, rtcpChannel
	c.on.Store(true)
}

// Read hands gortsplib the next bytes of the stream it should see.
func (c *pacedConn) Read(p []byte) (int, error) {
	if c.polling {
		return c.readPolled(p)
	}
	for {
		if c.pendR < len(c.pend) {
			n := copy(p, c.pend[c.pendR:])
			c.pendR += n
			if c.pendR == len(c.pend) {
				c.pend, c.pendR = c.pend[:0], 0
			}
			return n, nil
		}
		if !c.framed {
			if c.r == c.w {
				if err := c.fill(); err != nil {
					return 0, err
				}
			}
			n := copy(p, c.buf[c.r:c.w])
			c.r += n
			return n, nil
		}
		c.frameOut()
		if len(c.pend) > 0 {
			continue
		}
		if c.pass == 0 && c.p.raw != nil && c.err == nil && c.on.Load() && c.frame != nil {
			// from here on, a poller reads the socket: at a unit's
			// boundary, with everything before it in gortsplib's hands
			c.handOff()
			return c.readPolled(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// frameOut frames what the buffer holds: RTP frames the frame function
// takes are consumed; everything else is put aside in pend for gortsplib,
// plus a keepalive frame when one is due. What is left in the buffer is
// the start of a unit, or, read by its own goroutine, the units after
// bytes put aside: the frame function takes no frame before gortsplib has
// had what came before it, which until start (and for the rest of a frame
// it was reading then) is RTP of the same media. Read by a poller, which
// only starts at a unit's boundary after start, gortsplib gets RTSP, RTCP
// and frames of channels the frame function does not take, in order among
// themselves.
func (c *pacedConn) frameOut() {
	for {
		if c.pass > 0 && c.r < c.w {
			n := min(c.pass, c.w-c.r)
			c.pend = append(c.pend, c.buf[c.r:c.r+n]...)
			c.r += n
			c.pass -= n
			c.fed, c.swallow = c.last, false
			continue
		}
		if !c.framed {
			// given up: everything goes to gortsplib as it comes
			if c.r < c.w {
				c.pend = append(c.pend, c.buf[c.r:c.w]...)
				c.r = c.w
				c.fed, c.swallow = c.last, false
			}
			return
		}
		if c.pass == 0 && c.r < c.w && (c.polling || c.pendR == len(c.pend) || c.buf[c.r] != '$') && c.unit() {
			continue
		}
		break
	}
	if c.pass == 0 && c.swallow && c.last.Sub(c.fed) >= c.keepalive {
		ka := keepaliveFrame
		ka[1] = c.keepCh
		c.pend = append(c.pend, ka[:]...)
		c.fed, c.swallow = c.last, false
	}
}

// unit looks at the unit starting at c.r: it consumes an RTP frame the
// frame function takes, or sets pass to the length of a unit for
// gortsplib. It returns false when more bytes are needed to tell.
func (c *pacedConn) unit() bool {
	b := c.buf[c.r:c.w]
	if b[0] == '$' {
		if len(b) < 4 {
			return false
		}
		n := 4 + int(binary.BigEndian.Uint16(b[2:]))
		if c.on.Load() && c.frame != nil { // on first: start's writes happen before
			if len(b) < n {
				return false // the whole frame first
			}
			if c.frame(b[1], b[4:n], c.got) {
				c.r += n
				c.swallow = true
				return true
			}
		}
		c.pass = n
		return true
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) >= maxHeaderSize {
			c.framed = false
			return true
		}
		return false
	}
	body, ok := contentLength(b[:end])
	if !ok {
		c.framed = false
		return true
	}
	c.pass = end + 4 + body
	return true
}

// contentLength finds the Content-Length of an RTSP message header (0 if
// none); ok is false when it does not parse.
func contentLength(h []byte) (int, bool) {
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
		if err != nil || n < 0 || n > 1<<20 {
			return 0, false
		}
		return n, true
	}
	return 0, true
}

// room makes room at the end of the buffer for the next read: what is
// left of it moves to the front, and a buffer full of one unit (a frame
// larger than it: at most 64 KiB + 4) doubles.
func (c *pacedConn) room() {
	if c.buf == nil {
		c.buf = make([]byte, pacedBufferSize)
	}
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		c.buf = append(c.buf, make([]byte, len(c.buf))...)
	}
}

// fill reads more of the connection into the buffer, after the pacing
// pause when on.
func (c *pacedConn) fill() error {
	if c.err != nil {
		err := c.err
		c.err = nil
		return err
	}
	c.room()
	if c.on.Load() && !c.full {
		if d := c.interval - time.Since(c.last); d > 0 {
			time.Sleep(d)
		}
	}
	c.last = time.Now()
	n, err := c.Conn.Read(c.buf[c.w:])
	// one clock reading a read rather than one a packet: the packets of a
	// read all waited in the socket until now
	c.got = time.Now()
	c.full = c.w+n == len(c.buf)
	c.w += n
	if err != nil {
		if n == 0 {
			return err
		}
		c.err = err // after what came with it
	}
	return nil
}
