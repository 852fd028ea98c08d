package camsim

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// camera is one running camera: its stream and per-track RTP state.
type camera struct {
	conf   Camera
	clip   *clip
	log    *slog.Logger
	stream *gortsplib.ServerStream
	tracks []camTrack
	onvif  *onvifTrack // nil without Camera.ONVIF
	cameraAtomic
}

// camTrack is the RTP state of one track of one camera.
type camTrack struct {
	media    *description.Media
	clock    int64
	rtpStart uint32
	pkt      rtp.Packet // reused for every packet of the track
}

// init creates the camera's stream on the RTSP server.
func (c *camera) init(rs *gortsplib.Server) error {
	desc := &description.Session{}
	c.tracks = make([]camTrack, len(c.clip.tracks))
	for i, t := range c.clip.tracks {
		m := &description.Media{Type: t.mediaType, Formats: []format.Format{cloneFormat(t.format)}}
		desc.Medias = append(desc.Medias, m)
		c.tracks[i] = camTrack{
			media:    m,
			clock:    t.clock,
			rtpStart: rand.Uint32(),
			pkt: rtp.Packet{Header: rtp.Header{
				Version:        2,
				PayloadType:    t.format.PayloadType(),
				SequenceNumber: uint16(rand.Uint32()),
			}},
		}
	}
	if c.conf.ONVIF {
		o, err := newONVIFTrack()
		if err != nil {
			return err
		}
		c.onvif = o
		desc.Medias = append(desc.Medias, o.media)
	}
	c.stream = &gortsplib.ServerStream{Server: rs, Desc: desc}
	if err := c.stream.Initialize(); err != nil {
		c.stream = nil
		return err
	}
	return nil
}

// cloneFormat copies a format template so that each camera owns its SDP formats.
func cloneFormat(f format.Format) format.Format {
	switch v := f.(type) {
	case *format.H264:
		return &format.H264{PayloadTyp: v.PayloadTyp, PacketizationMode: v.PacketizationMode, SPS: v.SPS, PPS: v.PPS}
	case *format.H265:
		return &format.H265{PayloadTyp: v.PayloadTyp, VPS: v.VPS, SPS: v.SPS, PPS: v.PPS}
	case *format.MPEG4Audio:
		conf := *v.Config
		return &format.MPEG4Audio{
			PayloadTyp: v.PayloadTyp, Config: &conf,
			SizeLength: v.SizeLength, IndexLength: v.IndexLength, IndexDeltaLength: v.IndexDeltaLength,
		}
	case *format.Opus:
		return &format.Opus{PayloadTyp: v.PayloadTyp, ChannelCount: v.ChannelCount}
	case *format.G711:
		return &format.G711{PayloadTyp: v.PayloadTyp, MULaw: v.MULaw, SampleRate: v.SampleRate, ChannelCount: v.ChannelCount}
	}
	panic("camsim: unexpected format")
}

// ticks converts 90 kHz ticks to a duration without overflow for ~30 years.
func ticks(t int64) time.Duration {
	return time.Duration(t * 100000 / 9)
}

// cursor walks a clip forever: the event index and the loop number.
type cursor struct {
	clip *clip
	i    int
	loop int64
}

// startCursor returns the cursor of the keyframe at or before offset (modulo the clip
// duration) and the time of that keyframe on the clip's time line (90 kHz ticks).
func startCursor(cl *clip, offset time.Duration) (cursor, int64) {
	off := int64(offset / time.Microsecond * 9 / 100) // 90 kHz ticks
	off %= cl.duration
	best := -1
	for i, e := range cl.events {
		if !e.key {
			continue
		}
		if best >= 0 && e.dts > off {
			break
		}
		best = i
	}
	if best < 0 {
		best = 0
	}
	return cursor{clip: cl, i: best}, cl.events[best].dts
}

// event returns the current event and its send time and presentation time on the
// camera's continuous time line (90 kHz ticks, loops included).
func (k *cursor) event() (e *event, dts, pts int64) {
	e = &k.clip.events[k.i]
	base := k.loop * k.clip.duration
	return e, base + e.dts, base + e.pts
}

// next moves to the following event, wrapping to the next loop after the last one.
// It reports whether it wrapped.
func (k *cursor) next() bool {
	k.i++
	if k.i == len(k.clip.events) {
		k.i = 0
		k.loop++
		return true
	}
	return false
}

// rtpTimestamp is the RTP timestamp of event e in loop `loop` of a track.
func (t *camTrack) rtpTimestamp(e *event, loop, duration int64) uint32 {
	return t.rtpStart + uint32(e.rtp+loop*duration*t.clock/tsClock)
}

// run sends the clip in real time until done is closed. start is the wall and
// monotonic time at which the first event is due.
func (c *camera) run(start time.Time, done <-chan struct{}) {
	k, t0 := startCursor(c.clip, c.conf.StartAt)
	// anchor is the time of tick 0 of the camera's time line; every send time is
	// anchor + ticks, so sleeping late never accumulates drift.
	anchor := start.Add(-ticks(t0))
	if c.onvif != nil {
		c.onvif.next = t0
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		e, dts, pts := k.event()
		due := anchor.Add(ticks(dts))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-done:
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-done:
				return
			default:
			}
			if -wait > maxLag {
				// Send what is due now and shift the schedule rather than burst:
				// timestamps stay continuous, the NTP mapping moves by the lag.
				c.log.Warn("camsim: camera fell behind; shifting its schedule", "late", -wait)
				anchor = anchor.Add(-wait)
			}
		}
		c.send(e, k.loop, anchor.Add(ticks(pts)))
		if c.onvif != nil {
			c.sendONVIF(dts-int64(c.conf.ONVIFLag/(time.Second/tsClock)), anchor)
		}
		if k.next() {
			c.loops.Add(1)
		}
	}
}

// send writes the RTP packets of one event.
func (c *camera) send(e *event, loop int64, ntp time.Time) {
	t := &c.tracks[e.track]
	ts := t.rtpTimestamp(e, loop, c.clip.duration)
	for _, p := range c.clip.packets[e.pktFirst : e.pktFirst+e.pktCount] {
		t.pkt.Timestamp = ts
		t.pkt.Marker = p.marker
		t.pkt.Payload = p.payload
		if err := c.stream.WritePacketRTPWithNTP(t.media, &t.pkt, ntp); err != nil {
			// only after the stream is closed, when the camera is stopping
			return
		}
		t.pkt.SequenceNumber++
	}
	c.aus.Add(1)
}
