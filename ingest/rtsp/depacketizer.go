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

	video   videoCodec // H.264 or H.265
	aac     *rtpmpeg4audio.Decoder
	simple  *rtpsimpleaudio.Decoder
	lpcm    *rtplpcm.Decoder
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
		v, err := newH264Video(f)
		if err != nil {
			return nil
		}
		d.video, d.codec = v, fragment.CodecH264
		d.track = fragment.Track{Kind: fragment.KindVideo, Codec: fragment.CodecH264, TimeScale: 90000}
		d.setParams([3][]byte{nil, f.SPS, f.PPS})
	case *format.H265:
		v, err := newH265Video(f)
		if err != nil {
			return nil
		}
		d.video, d.codec = v, fragment.CodecH265
		d.track = fragment.Track{Kind: fragment.KindVideo, Codec: fragment.CodecH265, TimeScale: 90000}
		d.setParams([3][]byte{f.VPS, f.SPS, f.PPS})
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

// setParams sets the parameter sets (VPS, SPS, PPS; nil keeps the current
// one) and reports whether they changed the configuration. Parameter sets
// that do not parse are ignored and counted.
func (d *depacketizer) setParams(ps [3][]byte) bool {
	cur := [3][]byte{d.track.VPS, d.track.SPS, d.track.PPS}
	changed := false
	for i := range ps {
		if ps[i] == nil {
			ps[i] = cur[i]
		} else if !bytes.Equal(ps[i], cur[i]) {
			changed = true
		}
	}
	if !changed {
		return false
	}
	t := d.track
	t.VPS, t.SPS, t.PPS = bytes.Clone(ps[0]), bytes.Clone(ps[1]), bytes.Clone(ps[2])
	if t.Codec == fragment.CodecH264 {
		t.VPS = nil
	}
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

// complete reports whether the track has every parameter set it needs.
func (d *depacketizer) complete() bool {
	t := &d.track
	switch t.Codec {
	case fragment.CodecH264:
		return t.SPS != nil && t.PPS != nil
	case fragment.CodecH265:
		return t.VPS != nil && t.SPS != nil && t.PPS != nil
	}
	return true
}

// lostSync is called when an access unit of this media was dropped: video
// waits for the next keyframe so no fragment references a missing frame.
func (d *depacketizer) lostSync() {
	if d.video != nil {
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
	case d.video != nil:
		au, err := d.video.decode(pkt)
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
		d.videoAU(au, auPTS, emit)
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

// videoAU handles a complete H.264 or H.265 access unit: parameter-set
// changes, keyframes, DTS, and the conversion to MP4 sample format.
func (d *depacketizer) videoAU(au [][]byte, pts int64, emit func(unit)) {
	var ps [3][]byte
	key, any := false, false
	for _, n := range au {
		switch k := d.video.kind(n); k {
		case nalVPS, nalSPS, nalPPS:
			ps[k] = n
			any = true
		case nalKey:
			key = true
		}
	}
	var params *fragment.Track
	if any && d.setParams(ps) {
		t := d.track
		params = &t
	}
	if !d.complete() {
		d.counters.DroppedNoParams.Add(1)
		return
	}
	if d.needKey && !key {
		return
	}
	// The DTS extractors keep a reference to the SPS they are given: hand
	// them our own copies, never network buffers, and the parameter sets of
	// a keyframe that came without them.
	own := [3][]byte{d.track.VPS, d.track.SPS, d.track.PPS}
	d.nalus = d.nalus[:0]
	if key && ps[nalSPS] == nil {
		for _, p := range own {
			if p != nil {
				d.nalus = append(d.nalus, p)
			}
		}
	}
	for _, n := range au {
		if k := d.video.kind(n); k <= nalPPS {
			n = own[k]
		}
		d.nalus = append(d.nalus, n)
	}
	dts, err := d.video.dts(d.nalus, pts)
	if err != nil {
		d.counters.DecodeErrors.Add(1)
		d.video.resetDTS()
		d.needKey = true
		return
	}
	d.needKey = false
	emit(d.videoUnit(au, pts, dts, key, params))
}

// videoUnit converts an access unit to MP4 sample format (4-byte lengths)
// without its parameter sets and delimiters, which live in the init
// segment.
func (d *depacketizer) videoUnit(au [][]byte, pts, dts int64, key bool, params *fragment.Track) unit {
	buf := bufPool.Get().(*[]byte)
	b := (*buf)[:0]
	for _, n := range au {
		if k := d.video.kind(n); k <= nalAUD {
			continue // parameter sets live in the init segment
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
