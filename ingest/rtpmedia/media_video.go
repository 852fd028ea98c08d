package rtpmedia

import (
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// nalKind classifies a NAL unit for the depacketizer. The parameter-set
// kinds index [VPS, SPS, PPS] arrays.
type nalKind int

const (
	nalVPS nalKind = iota
	nalSPS
	nalPPS
	nalAUD   // access unit delimiter (and empty or malformed units)
	nalKey   // a slice a decoder can start from
	nalOther // everything else
)

// videoCodec is what differs between H.264 and H.265 depacketizing.
type videoCodec interface {
	kind(nalu []byte) nalKind
	dts(au [][]byte, pts int64) (int64, error)
	resetDTS()
}

type h264Video struct {
	ext h264.DTSExtractor
}

func newH264Video() *h264Video {
	v := &h264Video{}
	v.resetDTS()
	return v
}

func (v *h264Video) kind(n []byte) nalKind {
	if len(n) == 0 {
		return nalAUD
	}
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeSPS:
		return nalSPS
	case h264.NALUTypePPS:
		return nalPPS
	case h264.NALUTypeAccessUnitDelimiter:
		return nalAUD
	case h264.NALUTypeIDR:
		return nalKey
	}
	return nalOther
}

func (v *h264Video) dts(au [][]byte, pts int64) (int64, error) { return v.ext.Extract(au, pts) }

func (v *h264Video) resetDTS() {
	v.ext = h264.DTSExtractor{}
	v.ext.Initialize()
}

type h265Video struct {
	ext h265.DTSExtractor
}

func newH265Video() *h265Video {
	v := &h265Video{}
	v.resetDTS()
	return v
}

func (v *h265Video) kind(n []byte) nalKind {
	if len(n) < 2 {
		return nalAUD
	}
	switch t := h265.NALUType((n[0] >> 1) & 0x3f); {
	case t == h265.NALUType_VPS_NUT:
		return nalVPS
	case t == h265.NALUType_SPS_NUT:
		return nalSPS
	case t == h265.NALUType_PPS_NUT:
		return nalPPS
	case t == h265.NALUType_AUD_NUT:
		return nalAUD
	case t >= h265.NALUType_IDR_W_RADL && t <= h265.NALUType_CRA_NUT:
		return nalKey
	}
	return nalOther
}

func (v *h265Video) dts(au [][]byte, pts int64) (int64, error) { return v.ext.Extract(au, pts) }

func (v *h265Video) resetDTS() {
	v.ext = h265.DTSExtractor{}
	v.ext.Initialize()
}
