package rtpmedia

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtplpcm"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// Unit is an access unit of one media.
type Unit struct {
	// Track is the media's index among the session's tracks.
	Track int
	// PTS and DTS in the track's clock rate, on the session's common
	// timeline.
	PTS, DTS int64
	// Dur is known for audio, 0 for video.
	Dur uint32
	Key bool
	// Recv is when the unit's last packet came; NTP the camera's clock
	// for it (from RTCP sender reports), when NTPOK. The transport sets
	// them.
	Recv  time.Time
	NTP   time.Time
	NTPOK bool
	// Payload in MP4 sample format, valid only while the unit is handled.
	Payload []byte
	// Params is the new codec configuration, if this unit changed it.
	Params *fragment.Track
}

// Media turns the RTP packets of one media into access units. It is used
// by one goroutine at a time.
type Media struct {
	idx      int
	media    *description.Media
	format   format.Format
	codec    fragment.Codec
	track    fragment.Track // current codec configuration
	counters *ingest.Counters

	video  videoCodec // H.264 or H.265
	nal    *nalAssembler
	frame  *frameVideo // VP8, VP9, AV1
	aac    *aacAssembler
	simple *rtpsimpleaudio.Decoder
	lpcm   *rtplpcm.Decoder
	onvif  *onvifAssembler
	// the last RTCP sender report: RTP time srRTP is NTP time srNTP
	srNTP uint64
	srRTP uint32
	srOK  bool

	needKey   bool   // drop video until the next keyframe
	dropTS    uint32 // an access unit with this timestamp misses packets
	dropOK    bool   // dropTS is set
	keyframes uint64 // video keyframes emitted
	prevPTS   int64
	nalus     [][]byte // scratch
}

// Options say which optional media Build takes.
type Options struct {
	// ONVIFMetadata takes an ONVIF metadata media (vnd.onvif.metadata) as
	// a data track (fragment.CodecONVIF). Default false: it is ignored.
	ONVIFMetadata bool
}

// Build picks one supported format per media of a session description
// and makes its track; counters receive the media's decode errors and
// drops. It returns the tracks, their Media and the formats of the media
// it ignored (no supported format, or one opts leave out).
func Build(desc *description.Session, counters *ingest.Counters, opts Options) ([]fragment.Track, []*Media, []string) {
	var tracks []fragment.Track
	var deps []*Media
	var ignored []string
	for _, m := range desc.Medias {
		var d *Media
		for _, f := range m.Formats {
			if d = New(f); d != nil && (d.onvif == nil || opts.ONVIFMetadata) {
				break
			}
			d = nil
		}
		if d == nil {
			for _, f := range m.Formats {
				ignored = append(ignored, codecName(f))
			}
			continue
		}
		d.media, d.counters = m, counters
		d.idx = len(tracks)
		d.track.ID = uint32(len(tracks) + 1)
		tracks = append(tracks, d.track)
		deps = append(deps, d)
	}
	return tracks, deps, ignored
}

// New returns the Media of a format, nil when the format is not supported
// (H.264, H.265, VP8, VP9, AV1, AAC, Opus, G.711 and ONVIF metadata are).
// Its counters default to a private set.
func New(f format.Format) *Media {
	d := &Media{format: f, needKey: true, counters: &ingest.Counters{}}
	switch f := f.(type) {
	case *format.H264:
		if f.PacketizationMode > 1 {
			return nil // interleaved mode: STAP-B, MTAP, FU-B
		}
		d.video, d.nal, d.codec = newH264Video(), newNALAssembler(false), fragment.CodecH264
		d.track = fragment.Track{Kind: fragment.KindVideo, Codec: fragment.CodecH264, TimeScale: 90000}
		d.setParams([3][]byte{nil, f.SPS, f.PPS})
	case *format.H265:
		d.video, d.nal, d.codec = newH265Video(), newNALAssembler(true), fragment.CodecH265
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
		if f.SizeLength <= 0 || f.SizeLength > 32 || f.IndexLength < 0 || f.IndexLength > 32 || f.IndexDeltaLength < 0 || f.IndexDeltaLength > 32 {
			return nil
		}
		d.aac = &aacAssembler{sizeLen: f.SizeLength, indexLen: f.IndexLength, deltaLen: f.IndexDeltaLength}
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
	case *format.Generic:
		if !isONVIF(f) {
			return nil
		}
		d.onvif = &onvifAssembler{}
		d.codec = fragment.CodecONVIF
		d.track = fragment.Track{Kind: fragment.KindData, Codec: fragment.CodecONVIF, TimeScale: uint32(f.ClockRate())}
	default:
		fv, t, ok := newFrameVideo(f)
		if !ok {
			return nil
		}
		d.frame, d.codec, d.track = fv, t.Codec, t
	}
	return d
}

// setParams sets the parameter sets (VPS, SPS, PPS; nil keeps the current
// one) and reports whether they changed the configuration. Parameter sets
// that do not parse are ignored and counted.
func (d *Media) setParams(ps [3][]byte) bool {
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
func (d *Media) complete() bool {
	t := &d.track
	switch t.Codec {
	case fragment.CodecH264:
		return t.SPS != nil && t.PPS != nil
	case fragment.CodecH265:
		return t.VPS != nil && t.SPS != nil && t.PPS != nil
	}
	return true
}

// Index is the media's track index in its session.
func (d *Media) Index() int { return d.idx }

// Desc is the media's description, nil for a Media made by New.
func (d *Media) Desc() *description.Media { return d.media }

// Format is the format the Media decodes.
func (d *Media) Format() format.Format { return d.format }

// SenderReport records an RTCP sender report of the media: RTP time rtp is
// NTP time ntp. Calls must not overlap Decode's.
func (d *Media) SenderReport(ntp uint64, rtp uint32) {
	d.srNTP, d.srRTP, d.srOK = ntp, rtp, true
}

// PacketNTP maps an RTP timestamp to the camera's wall clock through the
// last sender report.
func (d *Media) PacketNTP(ts uint32) (time.Time, bool) {
	if !d.srOK || d.track.TimeScale == 0 {
		return time.Time{}, false
	}
	diff := time.Duration(int32(ts-d.srRTP)) * time.Second / time.Duration(d.track.TimeScale)
	return ntpTime(d.srNTP).Add(diff), true
}

// ntpTime converts a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed
// point) to a time.
func ntpTime(v uint64) time.Time {
	const unixFrom1900 = 2208988800
	sec := int64(v>>32) - unixFrom1900
	ns := int64((v & 0xffffffff) * 1e9 >> 32)
	return time.Unix(sec, ns)
}

// release gives the assembler's memory back at the end of a session.
func (d *Media) Release() {
	if d.nal != nil {
		d.nal.release()
	}
}

// lostSync is called when an access unit of this media was dropped: video
// waits for the next keyframe so no fragment references a missing frame.
func (d *Media) lostSync() {
	if d.video != nil || d.frame != nil {
		d.needKey = true
	}
}

// Keyframes counts the video keyframes the Media has emitted.
func (d *Media) Keyframes() uint64 { return d.keyframes }

// IsVideo reports whether the Media is a video track.
func (d *Media) IsVideo() bool { return d.video != nil || d.frame != nil }

// Lost tells the Media that packets were lost before a packet of RTP
// timestamp ts (a transport that sees sequence gaps calls it before
// Decode): the unit being built and the unit of ts are incomplete and
// dropped, and video waits for the next keyframe.
func (d *Media) Lost(ts uint32) {
	d.lostSync()
	switch {
	case d.nal != nil:
		d.nal.drop()
		d.dropTS, d.dropOK = ts, true
	case d.frame != nil:
		d.frame.reset()
	case d.onvif != nil:
		d.onvif.lost()
	}
}

// WaitingForKeyframe reports whether video is held back until the next
// keyframe (at the start, and after a loss): a transport that can ask the
// producer for one (an RTCP PLI) should.
func (d *Media) WaitingForKeyframe() bool { return d.needKey && (d.video != nil || d.frame != nil) }

// decode depacketizes pkt (whose PTS is pts) and calls emit for each
// complete access unit. The unit's payload is valid only during the call.
func (d *Media) Decode(pkt *rtp.Packet, pts int64, emit func(Unit)) {
	if len(pkt.Payload) == 0 && d.onvif == nil {
		// padding only (browsers probe bandwidth with it): no media (a
		// metadata document may end with an empty packet)
		if d.frame != nil {
			d.frame.skip(pkt.SequenceNumber)
		}
		return
	}
	switch {
	case d.nal != nil:
		aus, err := d.nal.push(pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload)
		if err != nil && err != errNoStart {
			// before the units that came with the error: a frame after a
			// lost one must wait for the next keyframe
			d.counters.DecodeErrors.Add(1)
			d.lostSync()
		}
		for i := range aus {
			auPTS := pts
			if aus[i].ts != pkt.Timestamp {
				auPTS = d.prevPTS // completed by a timestamp change: the previous unit
			}
			d.videoAU(&aus[i], auPTS, emit)
		}
		d.prevPTS = pts
	case d.frame != nil:
		frame, lost, err := d.frame.decode(pkt)
		if lost {
			d.lostSync()
		}
		if err == errMore {
			return
		}
		if err != nil {
			d.counters.DecodeErrors.Add(1)
			d.lostSync()
			return
		}
		key, changed := d.frame.inspect(frame, &d.track)
		if d.needKey && !key {
			return
		}
		d.needKey = false
		u := Unit{Track: d.idx, PTS: pts, DTS: pts, Key: key, Payload: frame}
		if changed {
			t := d.track
			u.Params = &t
		}
		if key {
			d.keyframes++
		}
		emit(u)
	case d.aac != nil:
		aus, err := d.aac.push(pkt.SequenceNumber, pkt.Marker, pkt.Payload)
		if err != nil {
			d.counters.DecodeErrors.Add(1)
			return
		}
		for i, au := range aus {
			p := pts + int64(i)*mpeg4audio.SamplesPerAccessUnit
			emit(Unit{Track: d.idx, PTS: p, DTS: p, Dur: mpeg4audio.SamplesPerAccessUnit, Key: true, Payload: au})
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
	case d.onvif != nil:
		doc, err := d.onvif.push(pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload)
		if err != nil {
			d.counters.DecodeErrors.Add(1)
		}
		if doc != nil {
			// an instant: no duration
			emit(Unit{Track: d.idx, PTS: pts, DTS: pts, Key: true, Payload: doc})
		}
	}
}

func audioUnit(idx int, pts int64, dur uint32, payload []byte) Unit {
	return Unit{Track: idx, PTS: pts, DTS: pts, Dur: dur, Key: true, Payload: payload}
}

// videoAU handles a complete H.264 or H.265 access unit: parameter-set
// changes, keyframes, DTS, and the conversion to MP4 sample format.
func (d *Media) videoAU(au *accessUnit, pts int64, emit func(Unit)) {
	if d.dropOK {
		if au.ts == d.dropTS {
			return // it misses packets lost before it was complete
		}
		d.dropOK = false
	}
	var ps [3][]byte
	key, any := false, false
	for _, n := range au.nalus {
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
	for _, n := range au.nalus {
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
	if key {
		d.keyframes++
	}
	emit(d.videoUnit(au, pts, dts, key, params))
}

// videoUnit turns an access unit into MP4 sample format (4-byte lengths)
// without its parameter sets and delimiters, which live in the init
// segment. It compacts the assembler's buffer in place: au's NAL views are
// void afterwards.
func (d *Media) videoUnit(au *accessUnit, pts, dts int64, key bool, params *fragment.Track) Unit {
	b := au.buf.b
	w := 0
	for r := 0; r+4 <= len(b); {
		end := r + 4 + int(binary.BigEndian.Uint32(b[r:]))
		if d.video.kind(b[r+4:end]) > nalAUD {
			w += copy(b[w:], b[r:end])
		}
		r = end
	}
	return Unit{Track: d.idx, PTS: pts, DTS: dts, Key: key, Payload: b[:w], Params: params}
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
func (d *Media) String() string { return fmt.Sprintf("track %d (%s)", d.idx+1, d.codec) }
