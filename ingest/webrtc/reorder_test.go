package webrtc

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// reorderCases are arrival orders (sequence numbers; a negative number is
// a pause of that many ms before the next packet) with what must come out
// and how many are counted lost. maxDelay is 100 ms.
var reorderCases = []struct {
	name string
	in   []int
	out  []int
	lost int
}{
	{"in order", []int{1, 2, 3, 4}, []int{1, 2, 3, 4}, 0},
	{"swap", []int{1, 3, 2, 4}, []int{1, 2, 3, 4}, 0},
	{"late retransmission", []int{1, 3, 4, 5, 2, 6}, []int{1, 2, 3, 4, 5, 6}, 0},
	{"duplicate", []int{1, 2, 2, 3}, []int{1, 2, 3}, 0},
	{"held duplicate", []int{1, 3, 3, 2}, []int{1, 2, 3}, 0},
	{"loss given up after the delay", []int{1, 3, -150, 4, 5}, []int{1, 3, 4, 5}, 1},
	{"too late after giving up", []int{1, 3, -150, 4, 2, 5}, []int{1, 3, 4, 5}, 1},
	{"jump past the buffer", []int{1, 2, 500, 501}, []int{1, 2, 500, 501}, 497},
	{"jump flushes held", []int{1, 3, 400}, []int{1, 3, 400}, 1 + 396},
	{"wrap", []int{65534, 65535, 1, 0, 2}, []int{65534, 65535, 0, 1, 2}, 0},
	{"sender restarts its numbering", []int{5000, 5001, 10, 11}, []int{5000, 5001, 10, 11}, 0},
}

func runReorder(in []int) (out []int, lost int) {
	r := reorderer{maxDelay: 100 * time.Millisecond}
	now := time.Unix(1e9, 0)
	for _, v := range in {
		if v < 0 {
			now = now.Add(time.Duration(-v) * time.Millisecond)
			continue
		}
		b := binary.BigEndian.AppendUint16(nil, uint16(v))
		l, _ := r.push(uint16(v), b, now, func(p []byte) { out = append(out, int(binary.BigEndian.Uint16(p))) })
		lost += l
		now = now.Add(time.Millisecond)
	}
	return out, lost
}

func TestReorderer(t *testing.T) {
	for _, c := range reorderCases {
		out, lost := runReorder(c.in)
		if !slices.Equal(out, c.out) || lost != c.lost {
			t.Errorf("%s: out %v lost %d, want %v lost %d", c.name, out, lost, c.out, c.lost)
		}
	}
}

// FuzzReorderer: whatever the arrival order, packets come out in
// increasing sequence order (modulo 2^16, within the window), none twice
// in a row, and a packet that arrives in order comes out at once.
func FuzzReorderer(f *testing.F) {
	for _, c := range reorderCases {
		var b []byte
		for _, v := range c.in {
			if v < 0 {
				b = append(b, 0xff, 0xff, byte(-v))
				continue
			}
			b = binary.BigEndian.AppendUint16(b, uint16(v))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := reorderer{maxDelay: 100 * time.Millisecond}
		now := time.Unix(1e9, 0)
		var out []uint16
		restarted := map[int]bool{} // outputs that follow a restart of the sender's numbering
		for len(data) >= 2 {
			v := binary.BigEndian.Uint16(data)
			data = data[2:]
			if v == 0xffff && len(data) > 0 {
				now = now.Add(time.Duration(data[0]) * time.Millisecond)
				data = data[1:]
				continue
			}
			before := len(out)
			next := r.next
			started := r.started
			restart := started && int16(v-next) <= -reorderSlots
			r.push(v, binary.BigEndian.AppendUint16(nil, v), now, func(p []byte) {
				out = append(out, binary.BigEndian.Uint16(p))
			})
			if (!started || v == next) && (len(out) == before || out[before] != v) {
				t.Fatalf("in-order packet %d did not pass at once", v)
			}
			if restart {
				if len(out) == before || out[len(out)-1] != v {
					t.Fatalf("packet %d after a restart did not pass at once", v)
				}
				restarted[len(out)-1] = true
			}
			now = now.Add(time.Millisecond)
		}
		// a step back within the buffer's window, or a packet out twice in
		// a row, is a bug; a jump of half the sequence space either way is
		// a restart, which goes forward
		for i := 1; i < len(out); i++ {
			if d := int16(out[i] - out[i-1]); d == 0 || (d < 0 && d > -reorderSlots && !restarted[i]) {
				t.Fatalf("out of order at %d: %v", i, out)
			}
		}
	})
}

// FuzzSendingTracks: any body a publisher POSTs is read without a panic,
// and a count of sending tracks comes only with a supported codec.
func TestSendingTracksBundleOnly(t *testing.T) {
	// GStreamer's max-bundle offers: the second section has port 0 and
	// bundle-only, and still sends
	sdp := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n" +
		"m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=bundle-only\r\na=rtpmap:111 OPUS/48000/2\r\n" +
		"m=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
	n, offered, err := sendingTracks(sdp)
	if err != nil || n != 2 || !slices.Equal(offered, []string{"h264", "opus"}) {
		t.Errorf("sendingTracks = %d %v %v", n, offered, err)
	}
}

func FuzzSendingTracks(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\na=sendonly\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 9\r\na=rtpmap:9 G722/8000\r\n")
	f.Add("v=0\r\nm=video 0 RTP/AVP 96\r\na=recvonly\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=bundle-only\r\na=rtpmap:111 OPUS/48000/2\r\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		n, offered, err := sendingTracks(s)
		if err != nil && n != 0 {
			t.Fatalf("%d tracks with error %v", n, err)
		}
		if n > 0 && !slices.ContainsFunc(offered, func(c string) bool { return supportedCodecs[c] }) {
			t.Fatalf("%d tracks but offered %v", n, offered)
		}
	})
}
