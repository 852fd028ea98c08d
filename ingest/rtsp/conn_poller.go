package rtsp

import (
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// maxPollReads bounds the reads of one connection in one tick of its
// poller, so that one camera cannot hold the others up for long: 64 reads
// of the 32 KiB buffer every 40 ms are 400 Mbit/s. What is left waits in
// the socket for the next tick. (At 8, a 60 Mbit/s camera fell behind by
// 150 ms a second.)
const maxPollReads = 64

// maxPending bounds the bytes a poller holds for a gortsplib reader that
// does not take them: past it, the connection is not read until it does.
const maxPending = 1 << 20

// slowTick is how long a poller's tick may take before it says so: the
// frame functions it runs for all of its cameras (depacketizing, cutting,
// encoding and hashing a closing fragment) take milliseconds; a sink that
// blocks holds up every camera on the poller.
const slowTick = time.Second

// A poller reads the paced connections of many RTSP/TCP sessions from one
// goroutine, once every interval, with non-blocking reads, and hands their
// RTP frames to their frame functions right there.
//
// A paced connection read by its own goroutine sleeps and wakes once per
// interval: with 100 cameras, 2,500 timer wakeups a second, most of which
// wake a sleeping thread, and each costs more than the read it makes. A
// poller wakes once per interval for all of its connections.
type poller struct {
	interval time.Duration

	mu      sync.Mutex
	conns   []*pacedConn
	running bool
}

// pollers are the process's pollers by interval, at most GOMAXPROCS of
// each.
var pollers struct {
	mu   sync.Mutex
	byIv map[time.Duration][]*poller
}

// addToPoller has a poller read c from now on, one with the fewest
// connections.
func addToPoller(c *pacedConn) {
	pollers.mu.Lock()
	if pollers.byIv == nil {
		pollers.byIv = map[time.Duration][]*poller{}
	}
	list := pollers.byIv[c.interval]
	var best *poller
	bestN := 0
	for _, p := range list {
		p.mu.Lock()
		n := len(p.conns)
		p.mu.Unlock()
		if best == nil || n < bestN {
			best, bestN = p, n
		}
	}
	if best == nil || (bestN > 0 && len(list) < runtime.GOMAXPROCS(0)) {
		best = &poller{interval: c.interval}
		pollers.byIv[c.interval] = append(list, best)
	}
	pollers.mu.Unlock()

	best.mu.Lock()
	best.conns = append(best.conns, c)
	if !best.running {
		best.running = true
		go best.run()
	}
	best.mu.Unlock()
}

// run polls the connections until it has none left.
func (p *poller) run() {
	var list []*pacedConn
	var warned time.Time
	next := time.Now()
	for {
		p.mu.Lock()
		if len(p.conns) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		list = append(list[:0], p.conns...)
		p.mu.Unlock()
		began := time.Now()
		for _, c := range list {
			if !c.poll() {
				p.remove(c)
			}
		}
		if took := time.Since(began); took > slowTick && began.Sub(warned) > time.Minute {
			// every camera on this poller waited: a sink that blocks
			warned = began
			slog.Default().Warn("rtsp poller: a tick took long; its cameras' reads waited", "component", "rtsp", "took", took, "cameras", len(list))
		}
		clear(list)
		next = next.Add(p.interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now() // behind: no catching up in a burst
		}
	}
}

func (p *poller) remove(c *pacedConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.conns, c); i >= 0 {
		p.conns = slices.Delete(p.conns, i, i+1)
	}
}

// polled is the state of a paced connection read by a poller.
type polled struct {
	raw    syscall.RawConn       // the socket; nil when it cannot be polled
	readFn func(fd uintptr) bool // reads into rbuf, sets rn and rerr
	rbuf   []byte
	rn     int
	rerr   error

	pollMu sync.Mutex // held by the poller while it reads the connection
	closed bool       // under pollMu: the poller leaves it alone

	outMu  sync.Mutex
	out    []byte // bytes for gortsplib, from outR
	outR   int
	outErr error         // the read error, once out is drained
	ready  chan struct{} // out or outErr changed
	done   chan struct{} // closed by Close
	once   sync.Once
}

func newPolled() polled {
	return polled{ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// handOff gives the connection's reading to a poller; the reader calling
// Read goes on taking what the poller leaves for it. It runs on the
// reader, between two reads, so the poller takes over the framing state
// as it is.
func (c *pacedConn) handOff() {
	c.polling = true
	c.prepareSocket()
	addToPoller(c)
}

// readPolled is Read once a poller reads the connection.
func (c *pacedConn) readPolled(p []byte) (int, error) {
	for {
		c.p.outMu.Lock()
		if c.p.outR < len(c.p.out) {
			n := copy(p, c.p.out[c.p.outR:])
			c.p.outR += n
			if c.p.outR == len(c.p.out) {
				c.p.out, c.p.outR = c.p.out[:0], 0
			}
			c.p.outMu.Unlock()
			return n, nil
		}
		if err := c.p.outErr; err != nil {
			c.p.outMu.Unlock()
			return 0, err
		}
		c.p.outMu.Unlock()
		select {
		case <-c.p.ready:
		case <-c.p.done:
			return 0, net.ErrClosed // as from the closed socket
		}
	}
}

// poll reads what the socket holds and frames it; it runs on the poller.
// It returns false when the poller should drop the connection: closed, or
// its read failed (the error goes to the reader after what came before).
func (c *pacedConn) poll() bool {
	c.p.pollMu.Lock()
	defer c.p.pollMu.Unlock()
	if c.p.closed {
		return false
	}
	c.p.outMu.Lock()
	backlog := len(c.p.out) - c.p.outR
	c.p.outMu.Unlock()
	if backlog > maxPending {
		return true
	}
	var readErr error
	for range maxPollReads {
		c.room()
		free := len(c.buf) - c.w
		c.p.rbuf = c.buf[c.w:]
		c.p.rn, c.p.rerr = 0, nil
		err := c.p.raw.Read(c.p.readFn) // may fail without reading
		c.p.rbuf = nil
		n := 0
		if err == nil {
			n, err = max(c.p.rn, 0), c.p.rerr
		}
		c.last = time.Now()
		c.got = c.last
		c.w += n
		c.frameOut()
		if wouldBlock(err) {
			break
		}
		if err == nil && n == 0 {
			err = io.EOF
		}
		if err != nil {
			readErr = err
			break
		}
		if n < free {
			break // the socket is drained
		}
	}
	if readErr != nil {
		// the bytes of a partial unit go to the reader, then the error
		c.pend = append(c.pend, c.buf[c.r:c.w]...)
		c.r = c.w
	}
	if len(c.pend) == 0 && readErr == nil {
		return true
	}
	c.p.outMu.Lock()
	c.p.out = append(c.p.out, c.pend...)
	c.p.outErr = readErr
	c.p.outMu.Unlock()
	c.pend = c.pend[:0]
	select {
	case c.p.ready <- struct{}{}:
	default:
	}
	return readErr == nil
}

// Close closes the connection, after the poller, if any, is done with it:
// once Close returns, no frame function of the connection runs.
func (c *pacedConn) Close() error {
	c.p.once.Do(func() {
		c.p.pollMu.Lock()
		c.p.closed = true
		c.p.pollMu.Unlock()
		close(c.p.done)
	})
	return c.Conn.Close()
}
