//go:build linux

package rtsp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// pollerIdle waits for every poller to stop (its goroutine ends with its
// last connection).
func pollerIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		running := 0
		pollers.mu.Lock()
		for _, list := range pollers.byIv {
			for _, p := range list {
				p.mu.Lock()
				if p.running {
					running++
				}
				p.mu.Unlock()
			}
		}
		pollers.mu.Unlock()
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pollers still running", running)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPacedConnPolled is TestPacedConnFraming over a socket, read by a
// poller: a response read before start, then frames and messages written
// in random chunks at random times. gortsplib sees exactly the units it
// should, keepalives included, and the frame function gets every frame, in
// order, on the poller.
func TestPacedConnPolled(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			units, rtp := streamUnits(1200 + int(seed)*9000)
			client, server := tcpPair(t)
			pc := newPacedConn(client, 2*time.Millisecond, true)
			pc.keepalive = 0
			if pc.p.raw == nil {
				t.Fatal("a TCP connection is not pollable")
			}
			started := make(chan struct{})
			go func() {
				server.Write(units[0])
				<-started // RTP comes after PLAY
				data := bytes.Join(units[1:], nil)
				for len(data) > 0 {
					n := min(len(data), 1+rng.IntN(5000))
					if _, err := server.Write(data[:n]); err != nil {
						return
					}
					data = data[n:]
					if rng.IntN(4) == 0 {
						time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					}
				}
				server.Close()
			}()
			// the handshake: the first response is read before start
			first := make([]byte, len(units[0]))
			if _, err := readFull(pc, first); err != nil || !bytes.Equal(first, units[0]) {
				t.Fatalf("first response %q, %v", first, err)
			}
			var got [][]byte
			var onPoller atomic.Bool
			pc.start(func(ch byte, p []byte, _ time.Time) bool {
				if ch != 0 && ch != 2 {
					return false
				}
				onPoller.Store(pc.polling) // the reader has handed over
				got = append(got, frame(ch, bytes.Clone(p)))
				return true
			}, 1)
			close(started)
			checkFraming(t, pc, units[1:], rtp, &got)
			if !pc.polling || !onPoller.Load() {
				t.Fatal("the connection was not handed to a poller")
			}
			pc.Close()
			pollerIdle(t)
		})
	}
}

// gortsplibReader reads pc as gortsplib's reader does, until an error,
// which it then sends; got, when not nil, counts the bytes read.
func gortsplibReader(pc *pacedConn, got *atomic.Int64) <-chan error {
	errc := make(chan error, 1)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := pc.Read(b)
			if got != nil {
				got.Add(int64(n))
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

func readFull(pc *pacedConn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := pc.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestPacedConnPolledClose closes a polled connection while a camera
// streams into it: the reader's Read returns, no frame function runs once
// Close has returned (the session then releases the buffers the frame
// function writes to), and the poller stops.
func TestPacedConnPolledClose(t *testing.T) {
	client, server := tcpPair(t)
	pc := newPacedConn(client, time.Millisecond, true)
	var frames, after atomic.Int64
	var closed atomic.Bool
	pc.start(func(byte, []byte, time.Time) bool {
		frames.Add(1)
		if closed.Load() {
			after.Add(1)
		}
		time.Sleep(100 * time.Microsecond) // a fragment being encoded
		return true
	}, 1)
	stop := make(chan struct{})
	go func() {
		f := frame(0, bytes.Repeat([]byte{0x80}, 1200))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := server.Write(f); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	readErr := gortsplibReader(pc, nil)
	for frames.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	pc.Close()
	closed.Store(true)
	time.Sleep(20 * time.Millisecond)
	if n := after.Load(); n > 0 {
		t.Errorf("%d frames taken after Close returned", n)
	}
	select {
	case <-readErr:
	case <-time.After(2 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	pollerIdle(t)
}

// TestPacedConnPolledEOF: the camera's end reaches gortsplib as the
// socket's, after everything before it, partial unit included.
func TestPacedConnPolledEOF(t *testing.T) {
	client, server := tcpPair(t)
	pc := newPacedConn(client, time.Millisecond, true)
	pc.start(func(byte, []byte, time.Time) bool { return true }, 1)
	resp := []byte("RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n")
	partial := []byte("RTSP/1.0 200")
	server.Write(append(append(frame(0, []byte{0x80, 1, 2}), resp...), partial...))
	server.Close()
	var all []byte
	buf := make([]byte, 7)
	var err error
	for err == nil {
		var n int
		n, err = pc.Read(buf)
		all = append(all, buf[:n]...)
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("error %v, want EOF", err)
	}
	if want := append(append([]byte{}, resp...), partial...); !bytes.Equal(all, want) {
		t.Errorf("read %q, want %q", all, want)
	}
	pc.Close()
	pollerIdle(t)
}

// memRawConn is a syscall.RawConn whose reads come from memory.
type memRawConn struct{}

func (memRawConn) Control(f func(fd uintptr)) error { f(0); return nil }
func (memRawConn) Read(f func(fd uintptr) bool) error {
	f(0)
	return nil
}
func (memRawConn) Write(f func(fd uintptr) bool) error { f(0); return nil }

// TestPacedConnPolledFastCamera: one tick of a poller takes all that 40 ms
// of a 300 Mbit/s camera left in the socket; a camera it cannot keep up
// with falls further behind every tick.
func TestPacedConnPolledFastCamera(t *testing.T) {
	const tick = 40 * time.Millisecond
	queued := 300_000_000 / 8 * int(tick/time.Millisecond) / 1000
	var data []byte
	f := frame(0, bytes.Repeat([]byte{0x80}, 1400))
	for len(data) < queued {
		data = append(data, f...)
	}
	pc := newPacedConn(&chunkConn{}, tick, true)
	var got int
	pc.start(func(_ byte, p []byte, _ time.Time) bool { got += len(p) + 4; return true }, 1)
	pc.polling = true
	pc.p.raw = memRawConn{}
	src := bytes.NewReader(data)
	pc.p.readFn = func(uintptr) bool {
		pc.p.rn, pc.p.rerr = src.Read(pc.p.rbuf)
		if src.Len() == 0 && pc.p.rn == 0 {
			pc.p.rn, pc.p.rerr = -1, syscall.EAGAIN
		}
		return true
	}
	if !pc.poll() {
		t.Fatal("poll failed")
	}
	if got != len(data) {
		t.Errorf("one poll took %d of the %d bytes 40 ms of a 300 Mbit/s camera left in the socket", got, len(data))
	}
}

// TestPacedConnPolledOrderAtHandoff is TestPacedConnOrderAtStart over a
// socket: the reader hands the socket to a poller only once gortsplib has
// all of A.
func TestPacedConnPolledOrderAtHandoff(t *testing.T) {
	a, b := reviewFrames()
	client, server := tcpPair(t)
	pc := newPacedConn(client, 2*time.Millisecond, true)
	server.Write(a[:1000])
	buf := make([]byte, 4096)
	var got atomic.Int64
	for got.Load() < 1000 {
		n, err := pc.Read(buf)
		got.Add(int64(n))
		if err != nil {
			t.Fatal(err)
		}
	}
	atB := make(chan int64, 1)
	pc.start(func(ch byte, p []byte, _ time.Time) bool {
		if p[len(p)-1] == 0xbb {
			atB <- got.Load()
		}
		return true
	}, 1)
	done := gortsplibReader(pc, &got)
	server.Write(append(append([]byte{}, a[1000:]...), b...))
	select {
	case n := <-atB:
		if n != int64(len(a)) {
			t.Errorf("frame B reached the frame function when gortsplib had %d of frame A's %d bytes", n, len(a))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("B never reached the frame function")
	}
	pc.Close()
	<-done
	pollerIdle(t)
}

// TestPacedConnPolledReadFails: a raw read that fails without reading (a
// read deadline here; also a closing descriptor or an error event) ends
// the connection without framing the previous read's bytes again.
func TestPacedConnPolledReadFails(t *testing.T) {
	client, server := tcpPair(t)
	pc := newPacedConn(client, 300*time.Millisecond, true)
	var calls atomic.Int64
	first := make(chan struct{})
	pc.start(func(ch byte, p []byte, _ time.Time) bool {
		if calls.Add(1) == 1 {
			close(first)
		}
		return true
	}, 1)
	readErr := gortsplibReader(pc, nil)
	time.Sleep(50 * time.Millisecond)
	x := frame(0, append([]byte{0x80}, bytes.Repeat([]byte{1}, 999)...))
	server.Write(x)
	<-first
	client.SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-readErr:
		t.Logf("reader got %v", err)
	case <-time.After(3 * time.Second):
		t.Fatal("no error")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("one frame sent, the frame function got %d", n)
	}
	pc.Close()
	pollerIdle(t)
}
