package rtpmedia

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/fixture"
)

func h264Format() *format.H264 {
	return &format.H264{PayloadTyp: 96, PacketizationMode: 1}
}

// encodeH264 packetizes an access unit as a camera would.
func encodeH264(t testing.TB, au [][]byte, ts uint32) []*rtp.Packet {
	enc, err := h264Format().CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := enc.Encode(au)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		p.Timestamp = ts
	}
	return pkts
}

func idr(size int) []byte {
	// IDR slice NAL: first_mb_in_slice=0, slice_type=7 (I), pps_id=0, frame_num=0, idr_pic_id=0, poc lsb 0
	b := make([]byte, size)
	b[0] = 0x65
	b[1] = 0x88
	b[2] = 0x84
	for i := 3; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}

func newTestDep(t testing.TB, f format.Format) (*Media, *ingest.Counters) {
	d := New(f)
	if d == nil {
		t.Fatalf("no depacketizer for %T", f)
	}
	c := &ingest.Counters{}
	d.counters = c
	return d, c
}

func TestDepacketizerH264(t *testing.T) {
	d, ctr := newTestDep(t, h264Format())
	var units []Unit
	emit := func(u Unit) { units = append(units, u) }
	// a P frame before any parameter set: dropped, counted
	for _, p := range encodeH264(t, [][]byte{{0x41, 0x9a, 0x01}}, 0) {
		d.Decode(p, 0, emit)
	}
	if len(units) != 0 || ctr.DroppedNoParams.Load() != 1 {
		t.Fatalf("units %d, no-params drops %d", len(units), ctr.DroppedNoParams.Load())
	}
	// SPS + PPS + IDR (large: fragmented)
	for _, p := range encodeH264(t, [][]byte{fixture.SPS, fixture.PPS, idr(5000)}, 3000) {
		d.Decode(p, 3000, emit)
	}
	if len(units) != 1 {
		t.Fatalf("%d units", len(units))
	}
	u := units[0]
	if !u.Key || u.Params == nil || u.Params.Width != 640 || u.Params.Height != 360 {
		t.Fatalf("unit %+v params %+v", u, u.Params)
	}
	// the payload is the IDR alone, length-prefixed
	b := u.Payload
	if n := binary.BigEndian.Uint32(b); int(n) != 5000 || len(b) != 5004 || b[4] != 0x65 {
		t.Fatalf("payload: length %d, %d bytes, first NAL %#x", n, len(b), b[4])
	}
	// garbage in the middle: counted, the stream goes on at the next keyframe
	d.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: 96, Timestamp: 6000, Marker: true}, Payload: []byte{0x1c}}, 6000, emit)
	if ctr.DecodeErrors.Load() == 0 {
		t.Error("garbage not counted")
	}
}

func TestDepacketizerAudio(t *testing.T) {
	conf := &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}
	aac := &format.MPEG4Audio{PayloadTyp: 97, Config: conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	d, _ := newTestDep(t, aac)
	if d.track.Codec != fragment.CodecAAC || d.track.SampleRate != 48000 || d.track.Channels != 2 {
		t.Fatalf("track %+v", d.track)
	}
	enc, err := aac.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := enc.Encode([][]byte{{1, 2, 3}, {4, 5, 6}})
	if err != nil {
		t.Fatal(err)
	}
	var units []Unit
	for _, p := range pkts {
		d.Decode(p, 1000, func(u Unit) { units = append(units, u) })
	}
	if len(units) != 2 || units[1].PTS != 1000+1024 || units[0].Dur != 1024 || !units[0].Key {
		t.Fatalf("units %+v", units)
	}

	g, _ := newTestDep(t, &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1})
	var gu []Unit
	g.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: 0}, Payload: make([]byte, 160)}, 0, func(u Unit) { gu = append(gu, u) })
	if len(gu) != 1 || gu[0].Dur != 160 || g.track.Codec != fragment.CodecPCMU {
		t.Fatalf("G.711 units %+v", gu)
	}

	o, _ := newTestDep(t, &format.Opus{PayloadTyp: 111, ChannelCount: 2})
	var ou []Unit
	// TOC 0xfc: CELT FB 20 ms, one frame
	o.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: []byte{0xfc, 1, 2, 3}}, 0, func(u Unit) { ou = append(ou, u) })
	if len(ou) != 1 || ou[0].Dur != 960 {
		t.Fatalf("Opus units %+v", ou)
	}
}

// FuzzDepacketize feeds arbitrary RTP payloads to every depacketizer: no
// panic, and every emitted unit is well formed.
func FuzzDepacketize(f *testing.F) {
	f.Add(uint8(0), []byte{0x65, 0x88, 0x84}, true)
	f.Add(uint8(0), []byte{0x7c, 0x85, 1, 2, 3}, false)
	f.Add(uint8(0), []byte{0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 1}, true)
	f.Add(uint8(1), []byte{0x26, 0x01, 1, 2}, true)
	f.Add(uint8(1), []byte{0x62, 0x01, 0x93, 1, 2}, false)
	f.Add(uint8(2), []byte{0, 16, 0, 24, 1, 2, 3}, true)
	f.Add(uint8(3), []byte{0xfc, 1}, true)
	f.Add(uint8(4), make([]byte, 160), true)
	conf := &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte, marker bool) {
		var fs = []format.Format{
			&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: fixture.SPS, PPS: fixture.PPS},
			&format.H265{PayloadTyp: 96},
			&format.MPEG4Audio{PayloadTyp: 97, Config: conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
			&format.Opus{PayloadTyp: 111, ChannelCount: 2},
			&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1},
		}
		d, _ := newTestDep(t, fs[int(kind)%len(fs)])
		rng := rand.New(rand.NewPCG(uint64(len(payload)), 7))
		for i := 0; i < 3; i++ {
			p := &rtp.Packet{Header: rtp.Header{PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i * 3000), Marker: marker || i == 2}, Payload: payload}
			if i == 1 && len(payload) > 0 {
				p.Payload = append([]byte(nil), payload...)
				p.Payload[rng.IntN(len(payload))] ^= 0xff
			}
			d.Decode(p, int64(i*3000), func(u Unit) {
				if u.Track != d.idx {
					t.Fatalf("bad unit %+v", u)
				}
				if d.track.Kind == fragment.KindVideo {
					b := u.Payload
					for len(b) > 0 {
						if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
							t.Fatalf("malformed length-prefixed payload")
						}
						b = b[4+binary.BigEndian.Uint32(b):]
					}
				}
			})
		}
	})
}
