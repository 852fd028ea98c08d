package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtplpcm"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// depacketizer turns the RTP packets of one media into access units. It is
// used by one goroutine only (the media's reader).
type depacketizer struct {
	idx      int
	media    *description.Media
	format   format.Format
	codec    fragment.Codec
	track    fragment.Track // current codec configuration
	counters *ingest.Counters

	h264    *rtph264.Decoder
	h265    *rtph265.Decoder
	aac     *rtpmpeg4audio.Decoder
	simple  *rtpsimpleaudio.Decoder
	lpcm    *rtplpcm.Decoder
	dts264  *h264.DTSExtractor
	dts265  *h265.DTSExtractor
	needKey bool // drop video until the next keyframe
	prevPTS int64
	nalus   [][]byte // scratch
}

// buildTracks picks one supported format per media and makes its track.
func buildTracks(desc *description.Session) ([]fragment.Track, []*depacketizer, []string) {
	var tracks []fragment.Track
	var deps []*depacketizer
	var ignored []string
	for _, m := range desc.Medias {
		var d *depacketizer
		for _, f := range m.Formats {
			if d = newDepacketizer(f); d != nil {
				break
			}
		}
		if d == nil {
			for _, f := range m.Formats {
				ignored = append(ignored, codecName(f))
			}
			continue
		}
		d.media = m
		d.idx = len(tracks)
		d.track.ID = uint32(len(tracks) + 1)
		tracks = append(tracks, d.track)
		deps = append(deps, d)
	}
	return tracks, deps, ignored
}

func newDepacketizer(f format.Format) *depacketizer {
	d := &depacketizer{format: f, needKey: true}
	switch f := f.(type) {
	case *format.H264:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil
		}
		d.h264 = dec
		d.codec = fragment.CodecH264
		d.track = fragment.Track{Kind: fragment.KindVideo, Codec: fragment.CodecH264, TimeScale: 90000}
		d.setParams264(f.SPS, f.PPS)
		d.dts264 = &h264.DTSExtractor{}
		d.dts264.Initialize()
	case *format.H265:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil
		}
		d.h265 = dec
		d.codec = fragment.CodecH265
		d.track = fragment.Track{Kind: fragment.KindVideo, Codec: fragment.CodecH265, TimeScale: 90000}
		d.setParams265(f.VPS, f.SPS, f.PPS)
		d.dts265 = &h265.DTSExtractor{}
		d.dts265.Initialize()
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil
		}
		asc, err := f.Config.Marshal()
		if err != nil {
			return nil
		}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil
		}
		d.aac = dec
		d.codec = fragment.CodecAAC
		d.track = fragment.Track{Kind: fragment.KindAudio, Codec: fragment.CodecAAC, TimeScale: uint32(f.ClockRate()), Config: asc}
		if d.track.FillFromParams() != nil {
			return nil
		}
	case *format.Opus:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil
		}
		d.simple = dec
		d.codec = fragment.CodecOpus
		d.track = fragment.Track{Kind: fragment.KindAudio, Codec: fragment.CodecOpus, TimeScale: 48000, SampleRate: 48000, Channels: max(f.ChannelCount, 1)}
	case *format.G711:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil
		}
		d.lpcm = dec
		d.codec = fragment.CodecPCMA
		if f.MULaw {
			d.codec = fragment.CodecPCMU
		}
		d.track = fragment.Track{Kind: fragment.KindAudio, Codec: d.codec, TimeScale: uint32(f.ClockRate()), SampleRate: f.SampleRate, Channels: max(f.ChannelCount, 1)}
	default:
		return nil
	}
	return d
}

// setParams264 sets the H.264 parameter sets; it reports whether they
// changed the configuration. Bad parameter sets are ignored.
func (d *depacketizer) setParams264(sps, pps []byte) bool {
	if sps == nil {
		sps = d.track.SPS
	}
	if pps == nil {
		pps = d.track.PPS
	}
	if bytes.Equal(sps, d.track.SPS) && bytes.Equal(pps, d.track.PPS) {
		return false
	}
	t := d.track
	t.SPS, t.PPS = bytes.Clone(sps), bytes.Clone(pps)
	if t.SPS != nil {
		if err := t.FillFromParams(); err != nil {
			if d.counters != nil {
				d.counters.DecodeErrors.Add(1)
			}
			return false
		}
	}
	d.track = t
	return true
}

func (d *depacketizer) setParams265(vps, sps, pps []byte) bool {
	if vps == nil {
		vps = d.track.VPS
	}
	if sps == nil {
		sps = d.track.SPS
	}
	if pps == nil {
		pps = d.track.PPS
	}
	if bytes.Equal(vps, d.track.VPS) && bytes.Equal(sps, d.track.SPS) && bytes.Equal(pps, d.track.PPS) {
		return false
	}
	t := d.track
	t.VPS, t.SPS, t.PPS = bytes.Clone(vps), bytes.Clone(sps), bytes.Clone(pps)
	if t.SPS != nil {
		if err := t.FillFromParams(); err != nil {
			if d.counters != nil {
				d.counters.DecodeErrors.Add(1)
			}
			return false
		}
	}
	d.track = t
	return true
}

// lostSync is called when an access unit of this media was dropped: video
// waits for the next keyframe so no fragment references a missing frame.
func (d *depacketizer) lostSync() {
	if d.track.Kind == fragment.KindVideo {
		d.needKey = true
	}
}

// isBenign reports decoder errors that only mean "more packets needed".
func isBenign(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded)
}

// decode depacketizes pkt (whose PTS is pts) and calls emit for each
// complete access unit.
func (d *depacketizer) decode(pkt *rtp.Packet, pts int64, emit func(unit)) {
	switch {
	case d.h264 != nil:
		au, err := d.h264.Decode(pkt)
		if err != nil {
			if !isBenign(err) {
				d.counters.DecodeErrors.Add(1)
				d.lostSync()
			}
			d.prevPTS = pts
			return
		}
		auPTS := pts
		if !pkt.Marker {
			auPTS = d.prevPTS // emitted on a timestamp change: it is the previous AU
		}
		d.prevPTS = pts
		d.videoAU264(au, auPTS, emit)
	case d.h265 != nil:
		au, err := d.h265.Decode(pkt)
		if err != nil {
			if !isBenign(err) {
				d.counters.DecodeErrors.Add(1)
				d.lostSync()
			}
			d.prevPTS = pts
			return
		}
		auPTS := pts
		if !pkt.Marker {
			auPTS = d.prevPTS
		}
		d.prevPTS = pts
		d.videoAU265(au, auPTS, emit)
	case d.aac != nil:
		aus, err := d.aac.Decode(pkt)
		if err != nil {
			if !isBenign(err) {
				d.counters.DecodeErrors.Add(1)
			}
			return
		}
		for i, au := range aus {
			if len(au) == 0 {
				continue
			}
			p := pts + int64(i)*mpeg4audio.SamplesPerAccessUnit
			emit(audioUnit(d.idx, p, mpeg4audio.SamplesPerAccessUnit, au))
		}
	case d.simple != nil:
		frame, err := d.simple.Decode(pkt)
		if err != nil || len(frame) == 0 {
			d.counters.DecodeErrors.Add(1)
			return
		}
		dur := opus.PacketDuration2(frame)
		if dur <= 0 {
			d.counters.DecodeErrors.Add(1)
			return
		}
		emit(audioUnit(d.idx, pts, uint32(dur), frame))
	case d.lpcm != nil:
		samples, err := d.lpcm.Decode(pkt)
		if err != nil || len(samples) == 0 {
			d.counters.DecodeErrors.Add(1)
			return
		}
		ch := d.track.Channels
		if len(samples)%ch != 0 {
			d.counters.DecodeErrors.Add(1)
			return
		}
		emit(audioUnit(d.idx, pts, uint32(len(samples)/ch), samples))
	}
}

func audioUnit(idx int, pts int64, dur uint32, payload []byte) unit {
	buf := bufPool.Get().(*[]byte)
	*buf = append((*buf)[:0], payload...)
	return unit{track: idx, pts: pts, dts: pts, dur: dur, key: true, buf: buf}
}

func (d *depacketizer) videoAU264(au [][]byte, pts int64, emit func(unit)) {
	var sps, pps []byte
	key := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeIDR:
			key = true
		}
	}
	var params *fragment.Track
	if (sps != nil || pps != nil) && d.setParams264(sps, pps) {
		t := d.track
		params = &t
	}
	if d.track.SPS == nil || d.track.PPS == nil {
		d.counters.DroppedNoParams.Add(1)
		return
	}
	if d.needKey && !key {
		return
	}
	// The DTS extractor keeps a reference to the SPS it was given: hand it
	// our own copy, never a network buffer.
	d.nalus = d.nalus[:0]
	if key && sps == nil {
		d.nalus = append(d.nalus, d.track.SPS)
	}
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			n = d.track.SPS
		}
		d.nalus = append(d.nalus, n)
	}
	dts, err := d.dts264.Extract(d.nalus, pts)
	if err != nil {
		d.counters.DecodeErrors.Add(1)
		d.dts264 = &h264.DTSExtractor{}
		d.dts264.Initialize()
		d.needKey = true
		return
	}
	d.needKey = false
	emit(d.videoUnit(au, pts, dts, key, params, func(n []byte) bool {
		t := h264.NALUType(n[0] & 0x1f)
		return t == h264.NALUTypeSPS || t == h264.NALUTypePPS || t == h264.NALUTypeAccessUnitDelimiter
	}))
}

func (d *depacketizer) videoAU265(au [][]byte, pts int64, emit func(unit)) {
	var vps, sps, pps []byte
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			vps = n
		case h265.NALUType_SPS_NUT:
			sps = n
		case h265.NALUType_PPS_NUT:
			pps = n
		}
	}
	key := h265.IsRandomAccess(au)
	var params *fragment.Track
	if (vps != nil || sps != nil || pps != nil) && d.setParams265(vps, sps, pps) {
		t := d.track
		params = &t
	}
	if d.track.VPS == nil || d.track.SPS == nil || d.track.PPS == nil {
		d.counters.DroppedNoParams.Add(1)
		return
	}
	if d.needKey && !key {
		return
	}
	d.nalus = d.nalus[:0]
	if key && sps == nil {
		d.nalus = append(d.nalus, d.track.VPS, d.track.SPS, d.track.PPS)
	}
	for _, n := range au {
		if len(n) >= 2 {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_SPS_NUT:
				n = d.track.SPS
			case h265.NALUType_PPS_NUT:
				n = d.track.PPS
			}
		}
		d.nalus = append(d.nalus, n)
	}
	dts, err := d.dts265.Extract(d.nalus, pts)
	if err != nil {
		d.counters.DecodeErrors.Add(1)
		d.dts265 = &h265.DTSExtractor{}
		d.dts265.Initialize()
		d.needKey = true
		return
	}
	d.needKey = false
	emit(d.videoUnit(au, pts, dts, key, params, func(n []byte) bool {
		if len(n) < 2 {
			return true
		}
		t := h265.NALUType((n[0] >> 1) & 0x3f)
		return t == h265.NALUType_VPS_NUT || t == h265.NALUType_SPS_NUT || t == h265.NALUType_PPS_NUT ||
			t == h265.NALUType_AUD_NUT
	}))
}

// videoUnit converts an access unit to MP4 sample format (4-byte lengths)
// without its parameter sets and delimiters, which live in the init
// segment.
func (d *depacketizer) videoUnit(au [][]byte, pts, dts int64, key bool, params *fragment.Track, skip func([]byte) bool) unit {
	buf := bufPool.Get().(*[]byte)
	b := (*buf)[:0]
	for _, n := range au {
		if len(n) == 0 || skip(n) {
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	*buf = b
	return unit{track: d.idx, pts: pts, dts: dts, key: key, buf: buf, params: params}
}

// codecName names a format for status messages: its type ("VP8", "MJPEG"),
// or its RTP map for generic formats.
func codecName(f format.Format) string {
	if g, ok := f.(*format.Generic); ok && g.RTPMap() != "" {
		return g.RTPMap()
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", f), "*format.")
}

// String describes the depacketizer for errors.
func (d *depacketizer) String() string { return fmt.Sprintf("track %d (%s)", d.idx+1, d.codec) }
