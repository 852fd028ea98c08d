package rtpmedia

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpav1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/tributary-io/tributary/fragment"
)

// frameVideo depacketizes the video codecs whose frames need no parameter
// sets: VP8 and VP9 into a buffer of its own (no allocation per packet),
// AV1 with gortsplib's decoder (which keeps each packet's payload, so it
// gets a copy: AV1 comes from browsers at their bitrates). Their
// configuration (size, AV1's sequence header) comes from keyframes.
type frameVideo struct {
	codec  fragment.Codec
	av1    *rtpav1.Decoder
	av1Fmt *format.AV1
	vp8    codecs.VP8Packet
	vp9    codecs.VP9Packet

	seqKnown bool
	nextSeq  uint16
	frame    []byte        // VP8/VP9 frame being assembled
	inFrame  bool          // frame has its first packet
	obus     av1.Bitstream // scratch
}

// maxFrame bounds an assembled frame.
const maxFrame = 16 << 20

// errMore means the frame needs more packets.
var errMore = errors.New("more packets needed")

func newFrameVideo(f format.Format) (*frameVideo, fragment.Track, bool) {
	v := &frameVideo{}
	t := fragment.Track{Kind: fragment.KindVideo, TimeScale: 90000}
	var err error
	switch f := f.(type) {
	case *format.VP8:
		v.codec = fragment.CodecVP8
	case *format.VP9:
		v.codec = fragment.CodecVP9
	case *format.AV1:
		v.codec = fragment.CodecAV1
		v.av1Fmt = f
		v.av1, err = f.CreateDecoder()
	default:
		return nil, t, false
	}
	if err != nil {
		return nil, t, false
	}
	t.Codec = v.codec
	return v, t, true
}

// decode takes one packet and returns a complete frame (its payload in
// the container's sample format, valid until the next call), errMore, or
// an error. lost reports a sequence gap before this packet: the caller
// must wait for a keyframe.
func (v *frameVideo) decode(pkt *rtp.Packet) (frame []byte, lost bool, err error) {
	if v.seqKnown && pkt.SequenceNumber != v.nextSeq {
		lost = true
	}
	v.seqKnown, v.nextSeq = true, pkt.SequenceNumber+1
	if lost {
		v.reset()
	}
	switch {
	case v.codec == fragment.CodecVP8:
		if _, err := v.vp8.Unmarshal(pkt.Payload); err != nil {
			v.inFrame = false
			return nil, lost, err
		}
		if v.vp8.S == 1 && v.vp8.PID == 0 {
			v.frame, v.inFrame = v.frame[:0], true
		}
		return v.assemble(v.vp8.Payload, pkt.Marker, lost)
	case v.codec == fragment.CodecVP9:
		if _, err := v.vp9.Unmarshal(pkt.Payload); err != nil {
			v.inFrame = false
			return nil, lost, err
		}
		if v.vp9.B {
			v.frame, v.inFrame = v.frame[:0], true
		}
		return v.assemble(v.vp9.Payload, v.vp9.E || pkt.Marker, lost)
	case v.av1 != nil:
		// the decoder keeps the payload: it gets its own copy
		own := *pkt
		own.Payload = bytes.Clone(pkt.Payload)
		var tu [][]byte
		tu, err = v.av1.Decode(&own)
		if errors.Is(err, rtpav1.ErrMorePacketsNeeded) || errors.Is(err, rtpav1.ErrNonStartingPacketAndNoPrevious) {
			return nil, lost, errMore
		}
		if err != nil {
			return nil, lost, err
		}
		// the container's format: OBUs with their sizes, no temporal
		// delimiters
		v.obus = v.obus[:0]
		for _, o := range tu {
			if len(o) > 0 && av1.OBUType((o[0]>>3)&0x0f) != av1.OBUTypeTemporalDelimiter {
				v.obus = append(v.obus, o)
			}
		}
		if len(v.obus) == 0 {
			return nil, lost, errMore
		}
		frame, err = v.obus.Marshal()
	}
	return frame, lost, err
}

// reset forgets the frame in progress, which misses a packet. AV1's
// decoder keeps its temporal unit until a marker bit: it is made anew.
func (v *frameVideo) reset() {
	v.inFrame = false
	if v.av1 != nil {
		if d, err := v.av1Fmt.CreateDecoder(); err == nil {
			v.av1 = d
		}
	}
}

// skip takes a packet without payload (padding, sent by browsers to probe
// bandwidth): it keeps the sequence going.
func (v *frameVideo) skip(seq uint16) {
	if v.seqKnown && seq != v.nextSeq {
		v.reset()
	}
	v.seqKnown, v.nextSeq = true, seq+1
}

// assemble adds a VP8/VP9 payload to the frame in progress and returns the
// frame when end is set.
func (v *frameVideo) assemble(payload []byte, end, lost bool) ([]byte, bool, error) {
	if !v.inFrame {
		return nil, lost, errMore // waiting for the start of a frame
	}
	if len(v.frame)+len(payload) > maxFrame {
		v.inFrame = false
		return nil, lost, errFrameTooBig
	}
	v.frame = append(v.frame, payload...)
	if !end {
		return nil, lost, errMore
	}
	v.inFrame = false
	return v.frame, lost, nil
}

var errFrameTooBig = errors.New("frame over 16 MiB")

// inspect reports whether frame is a keyframe and fills the track's
// configuration from it; changed says the configuration changed.
func (v *frameVideo) inspect(frame []byte, t *fragment.Track) (key, changed bool) {
	switch v.codec {
	case fragment.CodecVP8:
		// RFC 6386 9.1: a keyframe's tag has bit 0 clear, then the start
		// code 9d 01 2a and 14-bit width and height
		if len(frame) < 10 || frame[0]&1 != 0 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
			return false, false
		}
		w := int(binary.LittleEndian.Uint16(frame[6:]) & 0x3fff)
		h := int(binary.LittleEndian.Uint16(frame[8:]) & 0x3fff)
		changed = w != t.Width || h != t.Height
		t.Width, t.Height = w, h
		return true, changed
	case fragment.CodecVP9:
		var hdr vp9.Header
		if hdr.Unmarshal(frame) != nil || hdr.NonKeyFrame || hdr.FrameSize == nil {
			return false, false
		}
		w, h := hdr.Width(), hdr.Height()
		cfg := t.Config
		if cc := hdr.ColorConfig; cc != nil {
			cfg = fragment.VP9Config(hdr.Profile, cc.BitDepth, hdr.ChromaSubsampling(), cc.ColorRange)
		}
		changed = w != t.Width || h != t.Height || !bytes.Equal(cfg, t.Config)
		t.Width, t.Height, t.Config = w, h, cfg
		return true, changed
	case fragment.CodecAV1:
		for _, o := range v.obus {
			if av1.OBUType((o[0]>>3)&0x0f) != av1.OBUTypeSequenceHeader {
				continue
			}
			var sh av1.SequenceHeader
			if sh.Unmarshal(o) != nil {
				return false, false
			}
			cfg := av1Config(&sh, o)
			changed = string(cfg) != string(t.Config)
			t.Config = cfg
			t.Width, t.Height = sh.Width(), sh.Height()
			return true, changed
		}
	}
	return false, false
}

// av1Config builds an AV1CodecConfigurationRecord (av1C) around a
// sequence header OBU.
func av1Config(sh *av1.SequenceHeader, obu []byte) []byte {
	b := make([]byte, 4, 4+len(obu)+8)
	b[0] = 0x81 // marker, version 1
	level, tier := uint8(0), false
	if len(sh.SeqLevelIdx) > 0 {
		level = sh.SeqLevelIdx[0]
	}
	if len(sh.SeqTier) > 0 {
		tier = sh.SeqTier[0]
	}
	b[1] = sh.SeqProfile<<5 | level&0x1f
	cc := &sh.ColorConfig
	bit := func(v bool, shift uint) byte {
		if v {
			return 1 << shift
		}
		return 0
	}
	b[2] = bit(tier, 7) | bit(cc.HighBitDepth, 6) | bit(cc.TwelveBit, 5) | bit(cc.MonoChrome, 4) |
		bit(cc.SubsamplingX, 3) | bit(cc.SubsamplingY, 2) | byte(cc.ChromaSamplePosition)&3
	// the configOBUs carry the sequence header with its size field
	var one av1.Bitstream = [][]byte{obu}
	if m, err := one.Marshal(); err == nil {
		return append(b, m...)
	}
	return append(b, obu...)
}
