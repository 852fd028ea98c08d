package camsim

import (
	"fmt"
	"os"
	"sort"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/substructs"
)

// Timestamps inside a clip are in MPEG-TS ticks (90 kHz), relative to the clip's
// window start (the smallest video PTS), unless a field says otherwise.
const tsClock = 90000

const (
	videoPT = 96 // dynamic payload type of the video track
	audioPT = 97 // dynamic payload type of the AAC or Opus track
	pcmuPT  = 0  // static payload type of G.711 µ-law (RFC 3551)

	aacFrameSamples  = 1024
	pcmuPacketBytes  = 160 // 20 ms at 8 kHz
	pcmuClock        = 8000
	defaultFrameDur  = tsClock / 30
	maxClipFileBytes = 256 << 20
)

// clipTrack is one track of a loaded clip: what to announce in the SDP.
type clipTrack struct {
	mediaType description.MediaType
	format    format.Format // template: every camera gets its own copy
	clock     int64         // RTP clock rate
}

// rtpPayload is one pre-packetized RTP packet: everything but the header fields a
// camera sets itself (sequence number, timestamp, SSRC).
type rtpPayload struct {
	payload []byte
	marker  bool
}

// event is one access unit (or audio frame) of a clip, ready to send.
type event struct {
	dts      int64 // when to send it: 90 kHz ticks from the window start
	pts      int64 // when it is presented (NTP of its packets): 90 kHz ticks from the window start
	rtp      int64 // RTP timestamp relative to the track's start, in the track's clock
	track    int   // index in clip.tracks
	key      bool  // video random-access point (IDR / IRAP)
	pktFirst int32 // first packet in clip.packets
	pktCount int32 // number of packets
}

// clip is a clip demuxed, windowed and packetized once, shared read-only by all the
// cameras that play it.
type clip struct {
	tracks   []clipTrack
	events   []event // in send order (DTS, then track)
	packets  []rtpPayload
	duration int64 // loop period, 90 kHz ticks: last video DTS - first DTS + one frame
	bytes    int   // payload bytes of one loop
}

type rawVideoAU struct {
	pts, dts int64
	au       [][]byte
}

type rawAudioFrame struct {
	native int64 // timestamp in the audio clock (absolute, like the MPEG-TS PTS)
	dur    int64 // duration in the audio clock
	data   []byte
}

// loadClip reads an MPEG-TS file (H.264 or H.265 video, optional AAC or Opus audio)
// and, if g711Path is set, a raw µ-law 8 kHz mono file, and prepares a loopable clip.
func loadClip(path, g711Path string) (*clip, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxClipFileBytes {
		return nil, fmt.Errorf("%s: %d bytes is too large for a clip (max %d)", path, fi.Size(), maxClipFileBytes)
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}

	var (
		videoES, audioES *tsES
		isH265           bool
		td               timeUnwrapper
		video            []rawVideoAU
		audio            []rawAudioFrame
		audioClock       int64
		audioFormat      format.Format
	)
	onPMT := func(streams []*tsES) error {
		for _, es := range streams {
			switch {
			case videoES == nil && (es.streamType == tsStreamTypeH264 || es.streamType == tsStreamTypeH265):
				videoES = es
				isH265 = es.streamType == tsStreamTypeH265
			case audioES == nil && es.streamType == tsStreamTypeAAC:
				audioES = es
			case audioES == nil && es.isOpus():
				audioES = es
				audioClock = 48000
				channels := 2
				if ext := tsDescriptor(es.descriptors, 0x7f); len(ext) >= 2 && ext[0] == 0x80 {
					var d substructs.OpusAudioDescriptor
					if err := d.Unmarshal(ext[1:]); err == nil && d.ChannelCount() > 0 {
						channels = d.ChannelCount()
					}
				}
				audioFormat = &format.Opus{PayloadTyp: audioPT, ChannelCount: channels}
			}
		}
		if videoES == nil {
			return fmt.Errorf("no H.264 or H.265 track")
		}
		return nil
	}
	onPES := func(p *tsPES) error {
		switch p.es {
		case videoES:
			var au h264.AnnexB
			if err := au.Unmarshal(p.data); err != nil {
				return fmt.Errorf("video: %w", err)
			}
			nalus := make([][]byte, 0, len(au))
			for _, n := range au {
				if len(n) == 0 || isAUD(n, isH265) {
					continue
				}
				nalus = append(nalus, n)
			}
			if len(nalus) > 0 {
				video = append(video, rawVideoAU{pts: td.unwrap(p.pts), dts: td.unwrap(p.dts), au: nalus})
			}

		case audioES:
			pts := td.unwrap(p.pts)
			if audioES.isOpus() {
				t := floorDiv(pts*audioClock, tsClock)
				for buf := p.data; len(buf) > 0; {
					var au substructs.OpusAccessUnit
					n, err := au.Unmarshal(buf)
					if err != nil {
						return fmt.Errorf("opus: %w", err)
					}
					buf = buf[n:]
					if d := opus.PacketDuration2(au.Packet); d > 0 {
						audio = append(audio, rawAudioFrame{native: t, dur: d, data: au.Packet})
						t += d
					}
				}
				return nil
			}
			var pkts mpeg4audio.ADTSPackets
			if err := pkts.Unmarshal(p.data); err != nil {
				return fmt.Errorf("AAC: %w", err)
			}
			if audioFormat == nil {
				if pkts[0].SampleRate <= 0 {
					return fmt.Errorf("AAC: no sample rate")
				}
				audioClock = int64(pkts[0].SampleRate)
				audioFormat = &format.MPEG4Audio{
					PayloadTyp: audioPT,
					Config: &mpeg4audio.AudioSpecificConfig{
						Type:          pkts[0].Type,
						SampleRate:    pkts[0].SampleRate,
						ChannelConfig: pkts[0].ChannelConfig,
						ChannelCount:  pkts[0].ChannelCount, //nolint:staticcheck
					},
					SizeLength:       13,
					IndexLength:      3,
					IndexDeltaLength: 3,
				}
			}
			base := floorDiv(pts*audioClock, tsClock)
			for i, pkt := range pkts {
				audio = append(audio, rawAudioFrame{
					native: base + int64(i)*aacFrameSamples,
					dur:    aacFrameSamples,
					data:   pkt.AU,
				})
			}
		}
		return nil
	}
	if err := demuxTS(buf, onPMT, onPES); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}

	c := &clip{}
	ws, err := c.addVideo(video, isH265)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if audioFormat != nil {
		if err = c.addAudio(audio, audioFormat, audioClock, ws); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if g711Path != "" {
		raw, err := os.ReadFile(g711Path)
		if err != nil {
			return nil, err
		}
		if err = c.addPCMU(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", g711Path, err)
		}
	}

	c.wrapEvents()
	return c, nil
}

// wrapEvents moves the events that fall outside the video's send window [first video
// DTS, first video DTS + duration) by one loop period, so that send times stay in
// order across the loop point (e.g. audio that ends after the last B-frame is sent,
// or Opus that starts before the first video frame), then sorts them in send order.
func (c *clip) wrapEvents() {
	lo := int64(0)
	for _, e := range c.events {
		if c.tracks[e.track].mediaType == description.MediaTypeVideo {
			lo = e.dts
			break
		}
	}
	for i := range c.events {
		e := &c.events[i]
		clock := c.tracks[e.track].clock
		for e.dts >= lo+c.duration {
			e.dts -= c.duration
			e.pts -= c.duration
			e.rtp -= floorDiv(c.duration*clock, tsClock)
		}
		for e.dts < lo {
			e.dts += c.duration
			e.pts += c.duration
			e.rtp += floorDiv(c.duration*clock, tsClock)
		}
	}
	sort.SliceStable(c.events, func(i, j int) bool { return c.events[i].dts < c.events[j].dts })
}

// addVideo adds the video track and sets the loop period. It returns the window start
// (the smallest PTS), to which every timestamp of the clip is made relative.
func (c *clip) addVideo(aus []rawVideoAU, isH265 bool) (int64, error) {
	randomAccess := h264.IsRandomAccess
	if isH265 {
		randomAccess = h265.IsRandomAccess
	}

	// Start on the first random-access unit.
	first := -1
	for i, au := range aus {
		if randomAccess(au.au) {
			first = i
			break
		}
	}
	if first < 0 {
		return 0, fmt.Errorf("no keyframe in the video track")
	}
	aus = aus[first:]

	// Parameter sets from the first keyframe; they go in the SDP and in band.
	vps, sps, pps := paramSets(aus[0].au, isH265)
	if sps == nil || pps == nil || (isH265 && vps == nil) {
		return 0, fmt.Errorf("the first keyframe carries no parameter sets")
	}

	frameDur := int64(defaultFrameDur)
	if n := len(aus); n >= 2 {
		if d := (aus[n-1].dts - aus[0].dts) / int64(n-1); d > 0 {
			frameDur = d
		}
	}
	ws := aus[0].pts
	for _, au := range aus {
		ws = min(ws, au.pts)
	}
	c.duration = aus[len(aus)-1].dts - aus[0].dts + frameDur

	var f format.Format
	var encode func([][]byte) error
	if isH265 {
		hf := &format.H265{PayloadTyp: videoPT, VPS: vps, SPS: sps, PPS: pps}
		enc, err := hf.CreateEncoder()
		if err != nil {
			return 0, err
		}
		f = hf
		encode = func(au [][]byte) error {
			pkts, err := enc.Encode(au)
			if err == nil {
				for _, p := range pkts {
					c.packets = append(c.packets, rtpPayload{payload: p.Payload, marker: p.Marker})
				}
			}
			return err
		}
	} else {
		hf := &format.H264{PayloadTyp: videoPT, PacketizationMode: 1, SPS: sps, PPS: pps}
		enc, err := hf.CreateEncoder()
		if err != nil {
			return 0, err
		}
		f = hf
		encode = func(au [][]byte) error {
			pkts, err := enc.Encode(au)
			if err == nil {
				for _, p := range pkts {
					c.packets = append(c.packets, rtpPayload{payload: p.Payload, marker: p.Marker})
				}
			}
			return err
		}
	}
	track := len(c.tracks)
	c.tracks = append(c.tracks, clipTrack{mediaType: description.MediaTypeVideo, format: f, clock: tsClock})

	for _, au := range aus {
		key := randomAccess(au.au)
		nalus := au.au
		if key {
			nalus = withParams(nalus, isH265, vps, sps, pps)
		}
		start := len(c.packets)
		if err := encode(nalus); err != nil {
			return 0, err
		}
		c.events = append(c.events, event{
			dts:      au.dts - ws,
			pts:      au.pts - ws,
			rtp:      au.pts - ws,
			track:    track,
			key:      key,
			pktFirst: int32(start),
			pktCount: int32(len(c.packets) - start),
		})
	}
	for _, p := range c.packets {
		c.bytes += len(p.payload)
	}
	return ws, nil
}

// paramSets returns the parameter sets an access unit carries (nil where it
// carries none).
func paramSets(au [][]byte, isH265 bool) (vps, sps, pps []byte) {
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if isH265 {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				vps = n
			case h265.NALUType_SPS_NUT:
				sps = n
			case h265.NALUType_PPS_NUT:
				pps = n
			}
		} else {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = n
			case h264.NALUTypePPS:
				pps = n
			}
		}
	}
	return vps, sps, pps
}

// withParams returns the access unit with the parameter sets it lacks put in front.
func withParams(au [][]byte, isH265 bool, vps, sps, pps []byte) [][]byte {
	hv, hs, hp := paramSets(au, isH265)
	out := make([][]byte, 0, len(au)+3)
	if isH265 && hv == nil {
		out = append(out, vps)
	}
	if hs == nil {
		out = append(out, sps)
	}
	if hp == nil {
		out = append(out, pps)
	}
	if len(out) == 0 {
		return au
	}
	return append(out, au...)
}

// addAudio adds the AAC or Opus track. It keeps a run of consecutive frames that fills
// one loop period: from the first frame starting no earlier than half a frame before
// the window start, as long as the frame ends no later than one loop after the first
// frame starts (a quarter-frame tolerance). Encoder priming that precedes the video
// is dropped, and audio stays continuous across loops when the period is a whole
// number of frames (8 s of 1024-sample AAC or 20 ms Opus frames at 48 kHz is).
func (c *clip) addAudio(frames []rawAudioFrame, f format.Format, clock int64, ws int64) error {
	wsN := floorDiv(ws*clock, tsClock)
	periodN := c.duration * clock / tsClock

	first := -1
	for i, fr := range frames {
		if 2*(fr.native-wsN) >= -fr.dur {
			first = i
			break
		}
	}
	if first < 0 {
		return fmt.Errorf("no audio inside the video's time range")
	}
	relFirst := frames[first].native - wsN

	var aacEnc *rtpmpeg4audio.Encoder
	if af, ok := f.(*format.MPEG4Audio); ok {
		var err error
		if aacEnc, err = af.CreateEncoder(); err != nil {
			return err
		}
	}

	track := len(c.tracks)
	c.tracks = append(c.tracks, clipTrack{mediaType: description.MediaTypeAudio, format: f, clock: clock})

	for _, fr := range frames[first:] {
		rel := fr.native - wsN
		if 4*(rel+fr.dur) > 4*(relFirst+periodN)+fr.dur {
			break
		}
		var payloads []rtpPayload
		switch f.(type) {
		case *format.MPEG4Audio:
			pkts, err := aacEnc.Encode([][]byte{fr.data})
			if err != nil {
				return err
			}
			for _, p := range pkts {
				payloads = append(payloads, rtpPayload{payload: p.Payload, marker: p.Marker})
			}
		case *format.Opus:
			payloads = []rtpPayload{{payload: fr.data}}
		}
		start := len(c.packets)
		for _, p := range payloads {
			c.packets = append(c.packets, p)
			c.bytes += len(p.payload)
		}
		t := floorDiv(rel*tsClock, clock)
		c.events = append(c.events, event{
			dts:      t,
			pts:      t,
			rtp:      rel,
			track:    track,
			pktFirst: int32(start),
			pktCount: int32(len(c.packets) - start),
		})
	}
	return nil
}

// addPCMU adds a G.711 µ-law track from raw 8 kHz mono bytes, in 20 ms packets of
// 160 bytes, trimmed to one loop period.
func (c *clip) addPCMU(raw []byte) error {
	n := len(raw) / pcmuPacketBytes
	n = min(n, int(c.duration*pcmuClock/tsClock)/pcmuPacketBytes)
	if n == 0 {
		return fmt.Errorf("less than 20 ms of audio")
	}
	track := len(c.tracks)
	c.tracks = append(c.tracks, clipTrack{
		mediaType: description.MediaTypeAudio,
		format:    &format.G711{PayloadTyp: pcmuPT, MULaw: true, SampleRate: pcmuClock, ChannelCount: 1},
		clock:     pcmuClock,
	})
	for i := range n {
		start := len(c.packets)
		c.packets = append(c.packets, rtpPayload{
			payload: raw[i*pcmuPacketBytes : (i+1)*pcmuPacketBytes : (i+1)*pcmuPacketBytes],
		})
		c.bytes += pcmuPacketBytes
		rel := int64(i * pcmuPacketBytes)
		c.events = append(c.events, event{
			dts:      rel * tsClock / pcmuClock,
			pts:      rel * tsClock / pcmuClock,
			rtp:      rel,
			track:    track,
			pktFirst: int32(start),
			pktCount: 1,
		})
	}
	return nil
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// isAUD reports whether a NAL unit is an access unit delimiter.
func isAUD(n []byte, isH265 bool) bool {
	if isH265 {
		return h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT
	}
	return h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
}
