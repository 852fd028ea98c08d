package rtpmedia

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/rtptime"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// ErrStalled ends a session that received no media for its stall timeout.
var ErrStalled = errors.New("no media from the producer")

// Session feeds the access units of one session's media to an
// ingest.Sink: it gives packets a PTS on a timeline common to the media,
// maps media time to producer time (ingest.Clock), starts the sink's
// session once every track has its parameter sets, and reports codec
// configuration and clock changes. Packet and SenderReport may be called
// from several goroutines (one per media, as with RTSP over UDP and
// WebRTC); they are serialized.
type Session struct {
	// Counters receive the session's counts. Required.
	Counters *ingest.Counters
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxClockSkew is passed to the Clock. Default 10 min.
	MaxClockSkew time.Duration
	// Stalled is the error Wait returns for a stall. Default ErrStalled.
	Stalled error

	// dec gives packets their PTS on a timeline common to the session's
	// media; it has its own lock
	dec    rtptime.GlobalDecoder
	tracks []fragment.Track
	last   atomic.Int64 // unix ns of the latest access unit, for stall detection

	// mu serializes the access units of the media and guards what follows.
	mu      sync.Mutex
	sink    ingest.Sink
	onStart func()
	info    ingest.Session
	clock   ingest.Clock
	told    string // the clock source the sink knows
	started bool
	stopped bool // the session ended: no more samples reach the sink
	// ref is the last audio or video unit, which places data units;
	// lastData the last data unit's time (ns on the session's timeline)
	ref      mediaRef
	lastData int64
	dataOK   bool
	hasData  bool // a track is a data track: ref is kept
}

// Init prepares the session for its tracks (as built with their Media).
// started is called when the first sample reaches the sink; info is what
// StartSession will be given, with the tracks as they are then.
func (ss *Session) Init(tracks []fragment.Track, sink ingest.Sink, started func(), info ingest.Session) {
	if ss.Logger == nil {
		ss.Logger = slog.Default()
	}
	if ss.Counters == nil {
		ss.Counters = &ingest.Counters{}
	}
	if started == nil {
		started = func() {}
	}
	ss.tracks = tracks
	ss.hasData = len(fragment.MediaTracks(tracks)) < len(tracks)
	ss.dec.Initialize()
	ss.sink, ss.onStart, ss.info = sink, started, info
	ss.last.Store(time.Now().UnixNano())
	ss.clock.MaxClockSkew = ss.MaxClockSkew
	ss.told = fragment.ClockReceive
}

// Packet depacketizes one RTP packet of media d, received now, and hands
// its access units to the sink right there: a handoff to another
// goroutine per access unit would cost a wakeup each, more than the work
// itself. The packet is not used after the call.
func (ss *Session) Packet(d *Media, pkt *rtp.Packet, recv time.Time) {
	var pts int64
	if d.onvif == nil {
		// a data media's time comes from the audio and video's (placeData),
		// not from the decoder, which would fix it by when its first packet
		// came and wrap a sparse one's after 6.6 h
		var ok bool
		if pts, ok = ss.dec.Decode(d.Format(), pkt); !ok {
			return // waiting for the first random access point
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ntp, ntpOK := d.PacketNTP(pkt.Timestamp)
	d.Decode(pkt, pts, func(u Unit) {
		u.Recv, u.NTP, u.NTPOK = recv, ntp, ntpOK
		ss.handle(u)
	})
}

// SenderReport records an RTCP sender report of media d.
func (ss *Session) SenderReport(d *Media, ntp uint64, rtpTime uint32) {
	ss.mu.Lock()
	d.SenderReport(ntp, rtpTime)
	ss.mu.Unlock()
}

// Touch resets the stall timer (after a slow setup, say).
func (ss *Session) Touch() { ss.last.Store(time.Now().UnixNano()) }

// Started reports whether the sink's session has started.
func (ss *Session) Started() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.started
}

// ClockSource is the producer clock in use (fragment.ClockReceive or
// fragment.ClockRTCP), "" before the first sample.
func (ss *Session) ClockSource() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.clock.Source
}

// handle feeds one access unit to the sink. The caller holds mu.
func (ss *Session) handle(u Unit) {
	if ss.stopped {
		return
	}
	data := ss.tracks[u.Track].Kind == fragment.KindData
	if !data {
		// data (a camera's metadata) going on while its video stopped is
		// a stall all the same
		ss.last.Store(u.Recv.UnixNano())
	}
	sink, log := ss.sink, ss.Logger
	if u.Params != nil {
		changed := !ss.tracks[u.Track].Equal(u.Params)
		ss.tracks[u.Track] = *u.Params
		if changed && ss.started {
			log.Info("codec configuration changed", "track", u.Params.String())
			sink.UpdateTracks(append([]fragment.Track(nil), ss.tracks...))
		}
	}
	if !ss.started {
		if !ss.complete() {
			ss.Counters.DroppedNoParams.Add(1)
			return
		}
		ss.info.Tracks = append([]fragment.Track(nil), ss.tracks...)
		sink.StartSession(ss.info)
		ss.started = true
		ss.onStart()
	}
	if len(u.Payload) == 0 {
		return // parameter sets only
	}
	t := &ss.tracks[u.Track]
	var mediaNs int64
	if data {
		var ok bool
		if mediaNs, ok = ss.placeData(&u); !ok {
			return
		}
	} else {
		mediaNs = TicksToNs(u.PTS, t.TimeScale)
		// video places data (the decoder lines tracks up by their first
		// packets, so audio may be offset from it); audio only without video
		if video := t.Kind == fragment.KindVideo; ss.hasData && (video || !ss.ref.video) {
			ss.ref = mediaRef{ns: mediaNs, recv: u.Recv, ntp: u.NTP, ntpOK: u.NTPOK, ok: true, video: video}
		}
	}
	src := ss.clock.Source
	wall, ev := ss.clock.Map(mediaNs, u.Recv, u.NTP, u.NTPOK)
	if ev.Switched || ev.Stepped {
		from, to := ev.From, ev.To
		if !ev.Switched {
			from, to = src, src
		}
		log.Info("producer clock changed", "from", from, "to", to, "diff", ev.Diff, "stepped", ev.Stepped)
		sink.ClockChanged(from, to, ev.Diff, ev.Stepped)
	} else if ss.clock.Source != ss.told {
		// the clock started on RTCP (a sender report came before the first
		// sample): sinks start on the receive clock
		log.Info("producer clock", "from", ss.told, "to", ss.clock.Source)
		sink.ClockChanged(ss.told, ss.clock.Source, 0, false)
	}
	ss.told = ss.clock.Source
	if ss.clock.Untrusted != 0 {
		log.Warn("producer clock is too far from the agent's; using the receive clock", "skew", ss.clock.Untrusted)
		ss.clock.Untrusted = 0
	}
	sink.WriteSample(u.Track, fragment.Sample{
		DTS:       u.DTS,
		PTSOffset: int32(u.PTS - u.DTS),
		Duration:  u.Dur,
		Keyframe:  u.Key,
		Time:      wall,
		Payload:   u.Payload,
	})
	ss.Counters.Samples.Add(1)
}

// mediaRef is an audio or video unit's time on the session's timeline,
// and when it came and was captured (the camera's clock, when known).
type mediaRef struct {
	ns    int64
	recv  time.Time
	ntp   time.Time
	ntpOK bool
	ok    bool
	video bool // a video unit's
}

// maxDataLag bounds how far a data unit's camera time may be from its
// arrival, relative to the audio or video that places it, for placeData
// to trust it.
const maxDataLag = 10 * time.Second

// placeData puts a data unit on the session's timeline from the last
// video unit (audio unit, without video): by the camera's clock when both
// have sender reports (a camera sends its metadata later than the video
// of the same instant), else by when they came. Its PTS and DTS are set in its track's clock
// rate, never before the previous data unit's. It reports false before
// any audio or video.
func (ss *Session) placeData(u *Unit) (int64, bool) {
	ref := &ss.ref
	if !ref.ok {
		return 0, false
	}
	arrival := u.Recv.Sub(ref.recv)
	ns := ref.ns + int64(arrival)
	if u.NTPOK && ref.ntpOK {
		// the camera's clock, unless it disagrees with the arrival by more
		// than a lag explains: a camera idle for hours sends no sender
		// reports, and the RTP difference from an old one wraps
		if d := u.NTP.Sub(ref.ntp) - arrival; d > -maxDataLag && d < maxDataLag {
			ns = ref.ns + int64(u.NTP.Sub(ref.ntp))
		}
	}
	if ss.dataOK {
		ns = max(ns, ss.lastData)
	}
	ss.lastData, ss.dataOK = ns, true
	u.PTS = NsToTicks(ns, ss.tracks[u.Track].TimeScale)
	u.DTS = u.PTS
	return ns, true
}

// Stop ends the session's samples and reports whether the sink's session
// had started (and so needs EndSession).
func (ss *Session) Stop() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.stopped = true
	return ss.started
}

// complete reports whether every track has the parameter sets it needs
// (and, for codecs whose configuration comes from the first keyframe, its
// configuration).
func (ss *Session) complete() bool {
	for i := range ss.tracks {
		if !trackComplete(&ss.tracks[i]) {
			return false
		}
	}
	return true
}

func trackComplete(t *fragment.Track) bool {
	switch t.Codec {
	case fragment.CodecH264:
		return t.SPS != nil && t.PPS != nil
	case fragment.CodecH265:
		return t.VPS != nil && t.SPS != nil && t.PPS != nil
	case fragment.CodecVP8, fragment.CodecVP9:
		return t.Width > 0
	case fragment.CodecAV1:
		return t.Config != nil
	}
	return true
}

// Wait waits for the end of the session: ctx (nil error), an error from
// failed, or a stall (no access unit for stall: Stalled). classify maps
// failed's errors.
func (ss *Session) Wait(ctx context.Context, failed <-chan error, stall time.Duration, classify func(error) error) error {
	tick := time.NewTicker(min(stall/4, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return classify(err)
		case now := <-tick.C:
			if now.Sub(time.Unix(0, ss.last.Load())) > stall {
				if ss.Stalled == nil {
					ss.Stalled = ErrStalled
				}
				return fmt.Errorf("%w for %v", ss.Stalled, stall)
			}
		}
	}
}

// TicksToNs converts ticks of a clock rate to nanoseconds without overflow.
func TicksToNs(v int64, rate uint32) int64 {
	t := int64(rate)
	return (v/t)*int64(time.Second) + (v%t)*int64(time.Second)/t
}

// NsToTicks converts nanoseconds to ticks of a clock rate without
// overflow.
func NsToTicks(ns int64, rate uint32) int64 {
	sec := int64(time.Second)
	return (ns/sec)*int64(rate) + (ns%sec)*int64(rate)/sec
}

// ParseRTP parses an RTP packet into p without allocating: p.Payload is a
// view into b, and the CSRCs and header extensions are skipped.
func ParseRTP(p *rtp.Packet, b []byte) error {
	if len(b) < 12 || b[0]>>6 != 2 {
		return ErrBadRTP
	}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return ErrBadRTP
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		end -= int(b[end-1])
	}
	if off > end {
		return ErrBadRTP
	}
	p.Marker = b[1]&0x80 != 0
	p.PayloadType = b[1] & 0x7f
	p.SequenceNumber = binary.BigEndian.Uint16(b[2:])
	p.Timestamp = binary.BigEndian.Uint32(b[4:])
	p.SSRC = binary.BigEndian.Uint32(b[8:])
	p.Payload = b[off:end]
	return nil
}

// ErrBadRTP is a packet ParseRTP cannot parse.
var ErrBadRTP = errors.New("malformed RTP packet")
