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
	f.Add(uint8(5), []byte("<tt:MetadataStream/>"), true)
	conf := &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte, marker bool) {
		var fs = []format.Format{
			&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: fixture.SPS, PPS: fixture.PPS},
			&format.H265{PayloadTyp: 96},
			&format.MPEG4Audio{PayloadTyp: 97, Config: conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
			&format.Opus{PayloadTyp: 111, ChannelCount: 2},
			&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1},
			&format.Generic{PayloadTyp: 107, RTPMa: "vnd.onvif.metadata/90000", ClockRat: 90000},
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

// TestLost: after Lost (a transport saw a sequence gap), the unit that
// misses packets and every frame until the next keyframe are dropped, and
// WaitingForKeyframe asks for one; a padding-only packet is no loss.
func TestLost(t *testing.T) {
	d, _ := newTestDep(t, h264Format())
	var units []Unit
	emit := func(u Unit) { units = append(units, u) }
	seq := uint16(0)
	send := func(au [][]byte, ts uint32, lost bool) {
		for i, p := range encodeH264(t, au, ts) {
			p.SequenceNumber = seq
			seq++
			if lost && i == 0 {
				d.Lost(ts) // the first packet of the unit is gone
				continue
			}
			d.Decode(p, int64(ts), emit)
		}
	}
	send([][]byte{fixture.SPS, fixture.PPS, idr(3000)}, 0, false)
	send([][]byte{{0x41, 0x9a, 0x01, 0x02}}, 3000, false)
	if len(units) != 2 || d.WaitingForKeyframe() {
		t.Fatalf("%d units before the loss, waiting %v", len(units), d.WaitingForKeyframe())
	}
	// a fragmented P frame loses its first fragment; the next P frame
	// (complete) must not pass either: it references the lost one
	send([][]byte{append([]byte{0x41, 0x9a}, make([]byte, 3000)...)}, 6000, true)
	send([][]byte{{0x41, 0x9a, 0x03, 0x04}}, 9000, false)
	if len(units) != 2 || !d.WaitingForKeyframe() {
		t.Fatalf("%d units after the loss, waiting %v", len(units), d.WaitingForKeyframe())
	}
	send([][]byte{idr(3000)}, 12000, false)
	if len(units) != 3 || !units[2].Key || d.WaitingForKeyframe() {
		t.Fatalf("%d units after the keyframe", len(units))
	}

	// VP8: a padding-only packet between frames does not stop the stream
	v, ctr := newTestDep(t, &format.VP8{PayloadTyp: 96})
	var vu []Unit
	key := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 1, 2, 3}
	inter := []byte{0x31, 0x00, 0x00, 4, 5, 6}
	vseq := uint16(100)
	vp8 := func(frame []byte, ts uint32) {
		// VP8 payload descriptor: S=1, PID=0
		v.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: 96, SequenceNumber: vseq, Timestamp: ts, Marker: true},
			Payload: append([]byte{0x10}, frame...)}, int64(ts), func(u Unit) { vu = append(vu, u) })
		vseq++
	}
	vp8(key, 0)
	v.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: 96, SequenceNumber: vseq, Timestamp: 0, Padding: true}}, 0, func(Unit) {})
	vseq++
	vp8(inter, 3000)
	if len(vu) != 2 || !vu[0].Key || vu[1].Key || v.WaitingForKeyframe() || ctr.DecodeErrors.Load() != 0 || v.track.Width != 640 {
		t.Fatalf("VP8 units %d, waiting %v, errors %d, track %+v", len(vu), v.WaitingForKeyframe(), ctr.DecodeErrors.Load(), v.track)
	}
}
