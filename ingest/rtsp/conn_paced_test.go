package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/tributary-io/tributary/ingest/rtpmedia"
)

// chunkConn serves a byte stream in chunks of the given sizes (cycled).
type chunkConn struct {
	net.Conn
	data  []byte
	sizes []int
	i     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data))
	if len(c.sizes) > 0 {
		n = min(n, max(c.sizes[c.i%len(c.sizes)], 1))
		c.i++
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func frame(ch byte, payload []byte) []byte {
	b := []byte{'$', ch, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(payload)))
	return append(b, payload...)
}

// streamUnits is an RTSP-over-TCP stream: responses (one with a body),
// RTP frames on channels 0 and 2, RTCP on 1, and a frame on a channel
// nobody set up.
func streamUnits(rtpSize int) (units [][]byte, rtp [][]byte) {
	resp := []byte("RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 12345678\r\n\r\n")
	body := []byte("RTSP/1.0 200 OK\r\nCSeq: 6\r\ncontent-length: 12\r\n\r\n$not-a-frame")
	units = append(units, resp)
	for i := 0; i < 40; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1+rtpSize+i*37)
		p[0] = 0x80
		ch := byte(0)
		if i%3 == 2 {
			ch = 2
		}
		f := frame(ch, p)
		units = append(units, f)
		rtp = append(rtp, f)
		switch i {
		case 10:
			units = append(units, frame(1, []byte{0x80, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
		case 20:
			units = append(units, body)
		case 30:
			units = append(units, frame(9, []byte{1, 2, 3}))
		}
	}
	return units, rtp
}

// readUnits reads what gortsplib would see, leaving out keepalive frames.
func readUnits(t testing.TB, r io.Reader, keepCh byte) (units [][]byte, keepalives int) {
	all, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	for len(all) > 0 {
		var n int
		if all[0] == '$' {
			n = 4 + int(binary.BigEndian.Uint16(all[2:]))
		} else {
			end := bytes.Index(all, []byte("\r\n\r\n"))
			cl, _ := contentLength(all[:end])
			n = end + 4 + cl
		}
		u := all[:n]
		all = all[n:]
		if bytes.Equal(u, append([]byte{'$', keepCh}, keepaliveFrame[2:]...)) {
			keepalives++
			continue
		}
		units = append(units, u)
	}
	return units, keepalives
}

func TestPacedConnFraming(t *testing.T) {
	for _, chunks := range [][]int{nil, {1}, {3, 1000, 7}, {65536}} {
		t.Run(fmt.Sprint(chunks), func(t *testing.T) {
			units, rtp := streamUnits(1200)
			cc := &chunkConn{data: bytes.Join(units, nil), sizes: chunks}
			pc := newPacedConn(cc, 0, true)
			pc.keepalive = 0
			var got [][]byte
			pc.start(func(ch byte, p []byte, _ time.Time) bool {
				if ch != 0 && ch != 2 {
					return false
				}
				got = append(got, frame(ch, bytes.Clone(p)))
				return true
			}, 1)
			checkFraming(t, pc, units, rtp, &got)
		})
	}
}

// checkFraming reads pc to its end as gortsplib would and checks that it
// saw the units of the stream other than the RTP frames of channels 0 and
// 2, and keepalives, while the frame function got (*got, once pc ended)
// exactly those frames.
func checkFraming(t *testing.T, pc *pacedConn, units, rtp [][]byte, got *[][]byte) {
	t.Helper()
	seen, keepalives := readUnits(t, pc, 1)
	var want [][]byte
	for _, u := range units {
		if u[0] != '$' || (u[1] != 0 && u[1] != 2) {
			want = append(want, u)
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("gortsplib saw %d units, want %d", len(seen), len(want))
	}
	if fmt.Sprint(*got) != fmt.Sprint(rtp) {
		t.Errorf("frame function got %d frames, want %d", len(*got), len(rtp))
	}
	if keepalives == 0 {
		t.Error("no keepalive frame")
	}
}

func TestPacedConnLargeFrame(t *testing.T) {
	big := frame(0, bytes.Repeat([]byte{0x80}, 65535))
	resp := []byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
	pc := newPacedConn(&chunkConn{data: append(append(append([]byte{}, resp...), big...), resp...)}, 0, true)
	var n int
	pc.start(func(ch byte, p []byte, _ time.Time) bool { n = len(p); return true }, 1)
	seen, _ := readUnits(t, pc, 1)
	if n != 65535 || len(seen) != 2 {
		t.Fatalf("frame of %d bytes, %d units seen", n, len(seen))
	}
}

func TestPacedConnGivesUp(t *testing.T) {
	// a header without its end, then garbage: everything reaches the
	// reader untouched
	cases := [][]byte{
		append([]byte("RTSP/1.0 200 OK\r\n"), bytes.Repeat([]byte("X-Pad: aaaaaaaa\r\n"), 2000)...),
		[]byte("RTSP/1.0 200 OK\r\nContent-Length: -3\r\n\r\n$\x00\x00\x01z"),
	}
	for i, data := range cases {
		pc := newPacedConn(&chunkConn{data: bytes.Clone(data), sizes: []int{100}}, 0, true)
		pc.start(func(byte, []byte, time.Time) bool { t.Error("frame taken after giving up"); return true }, 1)
		got, err := io.ReadAll(pc)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("case %d: %d of %d bytes, %v", i, len(got), len(data), err)
		}
	}
}

func TestParseRTP(t *testing.T) {
	cases := []struct {
		name    string
		b       []byte
		payload []byte
		ok      bool
	}{
		{"plain", []byte{0x80, 0xe0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0xaa, 0xbb}, []byte{0xaa, 0xbb}, true},
		{"csrc", []byte{0x81, 0x60, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 9, 9, 9, 9, 0xaa}, []byte{0xaa}, true},
		{"extension", []byte{0x90, 0x60, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0xaa}, []byte{0xaa}, true},
		{"padding", []byte{0xa0, 0x60, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0xaa, 0, 2}, []byte{0xaa}, true},
		{"short", []byte{0x80, 0x60, 0}, nil, false},
		{"version 1", []byte{0x40, 0x60, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1}, nil, false},
		{"padding past the header", []byte{0xa0, 0x60, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0xff}, nil, false},
		{"extension past the end", []byte{0x90, 0x60, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0xbe, 0xde, 0, 9}, nil, false},
	}
	for _, c := range cases {
		p := &rtp.Packet{}
		err := rtpmedia.ParseRTP(p, c.b)
		if (err == nil) != c.ok || (c.ok && !bytes.Equal(p.Payload, c.payload)) {
			t.Errorf("%s: payload %x, err %v", c.name, p.Payload, err)
		}
	}
}

// FuzzPacedConn frames random streams in random chunks: the units
// gortsplib sees plus the frames taken are exactly the stream, in order.
func FuzzPacedConn(f *testing.F) {
	f.Add(uint64(1), uint16(1200), uint8(7))
	f.Add(uint64(2), uint16(1), uint8(1))
	f.Add(uint64(3), uint16(9000), uint8(200))
	f.Fuzz(func(t *testing.T, seed uint64, size uint16, chunk uint8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		units, _ := streamUnits(int(size % 20000))
		rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
		pc := newPacedConn(&chunkConn{data: bytes.Join(units, nil), sizes: []int{int(chunk), rng.IntN(3000)}}, 0, true)
		var taken [][]byte
		pc.start(func(ch byte, p []byte, _ time.Time) bool {
			if ch%2 == 1 {
				return false
			}
			taken = append(taken, frame(ch, bytes.Clone(p)))
			return true
		}, 1)
		seen, _ := readUnits(t, pc, 1)
		var i, j int
		for _, u := range units {
			switch {
			case u[0] == '$' && u[1]%2 == 0:
				if j >= len(taken) || !bytes.Equal(taken[j], u) {
					t.Fatalf("frame %d wrong", j)
				}
				j++
			default:
				if i >= len(seen) || !bytes.Equal(seen[i], u) {
					t.Fatalf("unit %d wrong", i)
				}
				i++
			}
		}
		if i != len(seen) || j != len(taken) {
			t.Fatalf("extra units: %d/%d seen, %d/%d taken", i, len(seen), j, len(taken))
		}
	})
}

func reviewFrames() (a, b []byte) {
	pa := bytes.Repeat([]byte{0xaa}, 2000)
	pa[0] = 0x80
	pb := bytes.Repeat([]byte{0xbb}, 100)
	pb[0] = 0x80
	return frame(0, pa), frame(0, pb)
}

// TestPacedConnOrderAtStart: a frame gortsplib was already receiving when
// start came (A, half read) reaches gortsplib before a later frame (B)
// reaches the frame function: both are packets of the same media, and the
// depacketizer would drop the first keyframe's NAL units out of order.
// Read by the connection's own goroutine (not a socket).
func TestPacedConnOrderAtStart(t *testing.T) {
	a, b := reviewFrames()
	cc := &chunkConn{data: append(append([]byte{}, a...), b...), sizes: []int{1000, 1 << 20}}
	pc := newPacedConn(cc, 0, true)
	buf := make([]byte, 4096)
	var got int
	n, err := pc.Read(buf) // pre-start: the first 1000 bytes of A, for gortsplib
	got += n
	if err != nil || n != 1000 {
		t.Fatalf("first read %d, %v", n, err)
	}
	atB := -1
	pc.start(func(ch byte, p []byte, _ time.Time) bool {
		if p[1] == 0xbb || (len(p) > 1 && p[len(p)-1] == 0xbb) {
			atB = got
		}
		return true
	}, 1)
	for atB < 0 {
		n, err := pc.Read(buf)
		got += n
		if err != nil && atB < 0 {
			t.Fatal(err)
		}
	}
	if atB != len(a) {
		t.Errorf("frame B reached the frame function when gortsplib had %d of frame A's %d bytes", atB, len(a))
	}
}
