// Package rtsp pulls media from RTSP cameras: gortsplib speaks RTSP, and
// over TCP the connection itself (pacedConn) takes the interleaved RTP
// frames out of its read buffer so that packets reach the depacketizers
// without a copy or an allocation. Package rtpmedia depacketizes H.264,
// H.265, AAC, Opus and G.711 into access units with decode timestamps;
// this package maps them to producer time (RTCP sender reports when
// present, else the receive clock) and feeds an ingest.Sink. One
// Source.Run is one session; an ingest.Supervisor runs sessions one after
// another with backoff.
package rtsp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v5/pkg/rtptime"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/rtpmedia"
)

// Transports.
const (
	TransportAuto = "auto"
	TransportTCP  = "tcp"
	TransportUDP  = "udp"
)

// Errors of a session. Errors that retrying cannot fix are returned
// wrapped by ingest.Permanent; unreachable cameras wrap
// ingest.ErrUnreachable, for the Supervisor.
var (
	ErrUnsupportedScheme = errors.New("URL scheme is not rtsp or rtsps")
	ErrBadURL            = errors.New("bad URL")
	ErrBadTransport      = errors.New("transport must be auto, tcp or udp")
	ErrUnauthorized      = errors.New("camera refused the credentials (401)")
	ErrNoSupportedTracks = errors.New("camera offers no supported track (H264, H265, AAC, Opus, G711)")
	ErrStalled           = errors.New("no media from the camera")
	ErrQueueOverflow     = errors.New("ingest queue overflow")
)

// Source pulls one RTSP camera.
type Source struct {
	// URL of the camera, rtsp:// or rtsps://. Credentials may be in it; they
	// are never logged.
	URL string
	// Transport is auto (UDP, then TCP when UDP gets nothing), tcp or udp.
	// Default auto.
	Transport string
	// StallTimeout ends a session that receives no media for this long.
	// Default 5 s.
	StallTimeout time.Duration
	// Timeout of connecting and of each RTSP request. Default 10 s.
	Timeout time.Duration
	// ReadPacing, on TCP, pauses this long after a read that found little
	// data, so that packets are read in batches rather than one wakeup
	// each (see pacedConn). Default DefaultReadPacing (40 ms); negative
	// turns it off.
	ReadPacing time.Duration
	// MaxClockSkew is passed to the producer Clock. Default 10 min.
	MaxClockSkew time.Duration
	// Counters receive the source's counts. Required.
	Counters *ingest.Counters
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Validate checks the URL and transport without connecting. Its errors
// wrap ingest.ErrPermanent.
func (s *Source) Validate() error {
	_, err := s.parse()
	if err != nil {
		return err
	}
	switch s.Transport {
	case "", TransportAuto, TransportTCP, TransportUDP:
		return nil
	}
	return ingest.Permanent(fmt.Errorf("%w: %q", ErrBadTransport, s.Transport))
}

func (s *Source) parse() (*base.URL, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, ingest.Permanent(fmt.Errorf("%w: %s", ErrBadURL, Redact(s.URL)))
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, ingest.Permanent(fmt.Errorf("%w: %q", ErrUnsupportedScheme, u.Scheme))
	}
	if u.Host == "" {
		return nil, ingest.Permanent(fmt.Errorf("%w: no host in %s", ErrBadURL, Redact(s.URL)))
	}
	bu, err := base.ParseURL(s.URL)
	if err != nil {
		return nil, ingest.Permanent(fmt.Errorf("%w: %s", ErrBadURL, Redact(s.URL)))
	}
	return bu, nil
}

// Redact returns raw with any credentials replaced, for logs and status.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.User == nil && strings.Contains(raw, "@")) {
		// do not echo what we cannot parse: it may hold a password
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "REDACTED@" + raw[i+1:]
			}
			return "REDACTED@" + raw[i+1:]
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}

func (s *Source) hostPort() (string, error) {
	u, err := s.parse()
	if err != nil {
		return "", err
	}
	host := u.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		if u.Scheme == "rtsps" {
			host = net.JoinHostPort(host, "322")
		} else {
			host = net.JoinHostPort(host, "554")
		}
	}
	return host, nil
}

// Probe reports whether the camera's port accepts TCP connections. The
// Supervisor polls it while waiting out a backoff after the camera was
// unreachable, so a camera that comes back is picked up at once.
func (s *Source) Probe(ctx context.Context) bool {
	hp, err := s.hostPort()
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", hp)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (s *Source) defaults() {
	if s.Transport == "" {
		s.Transport = TransportAuto
	}
	if s.StallTimeout <= 0 {
		s.StallTimeout = 5 * time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.ReadPacing == 0 {
		s.ReadPacing = DefaultReadPacing
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Counters == nil {
		s.Counters = &ingest.Counters{}
	}
}

// Run runs one session: connect, describe, set up, play, and feed sink
// until the connection fails, media stalls or ctx ends. started is called
// when the first sample reaches the sink.
func (s *Source) Run(ctx context.Context, sink ingest.Sink, started func()) error {
	s.defaults()
	if err := s.Validate(); err != nil {
		return err
	}
	u, _ := s.parse()
	log := s.Logger

	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  s.Timeout,
		WriteTimeout: s.Timeout,
		// a UDP socket is not read while a closing fragment is encoded on
		// the reader goroutine (a few ms): room for a second at 8 Mbit/s
		UDPReadBufferSize: 1 << 20,
		OnPacketsLost: func(lost uint64) {
			s.Counters.PacketsLost.Add(lost)
		},
		OnDecodeError: func(error) {
			s.Counters.DecodeErrors.Add(1)
		},
	}
	// the RTSP connection, dialled by the client's goroutine: again when
	// auto transport falls back from UDP to TCP after PLAY, when it is
	// paced from the start (without the interleaved fast path: the channels
	// of that SETUP are gortsplib's)
	var paced atomic.Pointer[pacedConn]
	var playing atomic.Bool
	c.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		pc := newPacedConn(nc, max(s.ReadPacing, 0), u.Scheme == "rtsp")
		if playing.Load() {
			pc.start(nil, 0)
		}
		paced.Store(pc)
		return pc, nil
	}
	switch s.Transport {
	case TransportTCP:
		p := gortsplib.ProtocolTCP
		c.Protocol = &p
	case TransportUDP:
		p := gortsplib.ProtocolUDP
		c.Protocol = &p
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("rtsp client: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		<-ctx.Done()
		c.Close()
		close(closed)
	}()
	defer func() { cancel(); <-closed }()

	desc, _, err := c.Describe(u)
	if err != nil {
		return classify(ctx, err)
	}
	tracks, deps, ignored := rtpmedia.Build(desc, s.Counters)
	defer func() {
		// once the client and its readers have stopped, nothing uses the
		// depacketizers' buffers
		cancel()
		<-closed
		for _, d := range deps {
			d.Release()
		}
	}()
	if len(deps) == 0 {
		return fmt.Errorf("%w; offered: %s", ErrNoSupportedTracks, strings.Join(ignored, ", "))
	}
	channels := make([]int, len(deps)) // interleaved RTP channel per media, -1 if none
	for i, d := range deps {
		res, err := c.Setup(desc.BaseURL, d.Desc(), 0, 0)
		if err != nil {
			return classify(ctx, err)
		}
		channels[i] = -1
		var th headers.Transport
		if th.Unmarshal(res.Header["Transport"]) == nil && th.InterleavedIDs != nil {
			channels[i] = th.InterleavedIDs[0]
		}
	}

	transport := "unknown"
	if tr := c.Transport(); tr != nil && tr.Session != nil {
		transport = strings.ToLower(tr.Session.Protocol.String())
	}
	var sess session
	sess.init(s, tracks, deps, channels, sink, started, ingest.Session{Tracks: tracks, Ignored: ignored, Transport: transport, Started: time.Now()})
	c.OnPacketRTPAny(sess.onPacket)
	c.OnPacketRTCPAny(sess.onRTCP)

	if _, err := c.Play(nil); err != nil {
		// packets may have reached the sink before the error
		if sess.stop() {
			sink.EndSession(err)
		}
		return classify(ctx, err)
	}
	sess.last.Store(time.Now().UnixNano()) // PLAY may have taken a while: no stall yet
	playing.Store(true)
	if pc := paced.Load(); pc != nil {
		if transport == "tcp" {
			pc.start(sess.onFrame, sess.rtcpChannel())
		} else {
			pc.start(nil, 0)
		}
	}
	log.Info("camera connected", "url", Redact(s.URL), "transport", transport, "tracks", trackNames(tracks), "ignored", ignored)

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()

	err = sess.loop(ctx, waitErr)
	if sess.stop() {
		sink.EndSession(err)
	}
	return err
}

func trackNames(ts []fragment.Track) []string {
	out := make([]string, len(ts))
	for i := range ts {
		out[i] = ts[i].String()
	}
	return out
}

// classify maps client errors to the sentinels the Supervisor understands.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		if bad.Code == base.StatusUnauthorized {
			return ErrUnauthorized
		}
		return fmt.Errorf("camera answered %d %s", bad.Code, bad.Message)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %v", ingest.ErrUnreachable, err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%w: %v", ingest.ErrUnreachable, err)
	}
	return err
}

// session is the state of one connection.
type session struct {
	src *Source
	// dec gives packets their PTS on a timeline common to the session's
	// media; its own, not the client's (Client.PacketPTS), which the client
	// drops when it closes while the connection's reader may still be
	// handing over a frame
	dec     rtptime.GlobalDecoder
	tracks  []fragment.Track
	byMedia map[*description.Media]*rtpmedia.Media
	// byChannel finds the media of an interleaved RTP channel
	byChannel [256]*channel
	pkt       rtp.Packet   // onFrame's, reused
	last      atomic.Int64 // unix ns of the latest access unit, for stall detection

	// mu serializes the access units of the media (gortsplib reads each
	// UDP media on its own goroutine) and guards what follows.
	mu      sync.Mutex
	sink    ingest.Sink
	onStart func()
	info    ingest.Session
	clock   ingest.Clock
	started bool
	stopped bool // the session ended: no more samples reach the sink
}

// channel is an interleaved RTP channel of the session's connection.
type channel struct {
	m        *rtpmedia.Media
	seqKnown bool
	nextSeq  uint16
}

func (ss *session) init(s *Source, tracks []fragment.Track, deps []*rtpmedia.Media, channels []int, sink ingest.Sink, started func(), info ingest.Session) {
	ss.src, ss.tracks = s, tracks
	ss.dec.Initialize()
	ss.sink, ss.onStart, ss.info = sink, started, info
	ss.last.Store(time.Now().UnixNano())
	ss.byMedia = make(map[*description.Media]*rtpmedia.Media, len(deps))
	for i, d := range deps {
		ss.byMedia[d.Desc()] = d
		if i < len(channels) && channels[i] >= 0 && channels[i] < 256 {
			ss.byChannel[channels[i]] = &channel{m: d}
		}
	}
	ss.clock.MaxClockSkew = s.MaxClockSkew
}

// onPacket runs on gortsplib's reader goroutines (one per media with UDP),
// and on the RTSP connection's reader for interleaved RTP (onFrame). It
// depacketizes and hands access units to the sink right there: a handoff
// to another goroutine per access unit would cost a wakeup each, more than
// the work itself.
func (ss *session) onPacket(medi *description.Media, forma format.Format, pkt *rtp.Packet) {
	ctr := ss.src.Counters
	ctr.Packets.Add(1)
	ctr.Bytes.Add(uint64(len(pkt.Payload)))
	d := ss.byMedia[medi]
	if d == nil || d.Format() != forma {
		return
	}
	pts, ok := ss.dec.Decode(d.Format(), pkt)
	if !ok {
		return // waiting for the first random access point
	}
	recv := time.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ntp, ntpOK := d.PacketNTP(pkt.Timestamp)
	d.Decode(pkt, pts, func(u rtpmedia.Unit) {
		u.Recv, u.NTP, u.NTPOK = recv, ntp, ntpOK
		ss.handle(u)
	})
}

// onFrame takes an interleaved frame from the RTSP connection: the RTP
// packets of the session's media, parsed in place. It reports whether the
// frame was one.
func (ss *session) onFrame(channel byte, payload []byte) bool {
	ch := ss.byChannel[channel]
	if ch == nil {
		return false
	}
	d := ch.m
	pkt := &ss.pkt
	if err := parseRTP(pkt, payload); err != nil {
		ss.src.Counters.DecodeErrors.Add(1)
		return true
	}
	if pkt.PayloadType != d.Format().PayloadType() {
		return true // a format of the media we did not pick
	}
	if ch.seqKnown && pkt.SequenceNumber != ch.nextSeq {
		if gap := pkt.SequenceNumber - ch.nextSeq; gap < 0x8000 {
			ss.src.Counters.PacketsLost.Add(uint64(gap))
		}
	}
	ch.seqKnown, ch.nextSeq = true, pkt.SequenceNumber+1
	ss.onPacket(d.Desc(), d.Format(), pkt)
	return true
}

// rtcpChannel is the first media's RTCP channel, for the connection's
// keepalive reports.
func (ss *session) rtcpChannel() byte {
	for ch, d := range ss.byChannel {
		if d != nil {
			return byte(ch + 1)
		}
	}
	return 1
}

// onRTCP keeps the sender reports that map a media's RTP time to the
// camera's wall clock.
func (ss *session) onRTCP(medi *description.Media, pkt rtcp.Packet) {
	sr, ok := pkt.(*rtcp.SenderReport)
	if !ok {
		return
	}
	d := ss.byMedia[medi]
	if d == nil {
		return
	}
	ss.mu.Lock()
	d.SenderReport(sr.NTPTime, sr.RTPTime)
	ss.mu.Unlock()
}

// parseRTP parses an RTP packet into p without allocating: p.Payload is a
// view into b, and the CSRCs and header extensions are skipped.
func parseRTP(p *rtp.Packet, b []byte) error {
	if len(b) < 12 || b[0]>>6 != 2 {
		return errBadRTP
	}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return errBadRTP
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		end -= int(b[end-1])
	}
	if off > end {
		return errBadRTP
	}
	p.Marker = b[1]&0x80 != 0
	p.PayloadType = b[1] & 0x7f
	p.SequenceNumber = binary.BigEndian.Uint16(b[2:])
	p.Timestamp = binary.BigEndian.Uint32(b[4:])
	p.SSRC = binary.BigEndian.Uint32(b[8:])
	p.Payload = b[off:end]
	return nil
}

var errBadRTP = errors.New("malformed RTP packet")

// handle feeds one access unit to the sink. The caller holds mu.
func (ss *session) handle(u rtpmedia.Unit) {
	if ss.stopped {
		return
	}
	ss.last.Store(u.Recv.UnixNano())
	sink, log := ss.sink, ss.src.Logger
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
			ss.src.Counters.DroppedNoParams.Add(1)
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
	mediaNs := ticksToNs(u.PTS, t.TimeScale)
	src := ss.clock.Source
	wall, ev := ss.clock.Map(mediaNs, u.Recv, u.NTP, u.NTPOK)
	if ev.Switched || ev.Stepped {
		from, to := ev.From, ev.To
		if !ev.Switched {
			from, to = src, src
		}
		log.Info("producer clock changed", "from", from, "to", to, "diff", ev.Diff, "stepped", ev.Stepped)
		sink.ClockChanged(from, to, ev.Diff, ev.Stepped)
	}
	if ss.clock.Untrusted != 0 {
		log.Warn("camera clock is too far from the agent's; using the receive clock", "skew", ss.clock.Untrusted)
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
	ss.src.Counters.Samples.Add(1)
}

// stop ends the session's samples and reports whether it had started.
func (ss *session) stop() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.stopped = true
	return ss.started
}

func (ss *session) complete() bool {
	for i := range ss.tracks {
		t := &ss.tracks[i]
		switch t.Codec {
		case fragment.CodecH264:
			if t.SPS == nil || t.PPS == nil {
				return false
			}
		case fragment.CodecH265:
			if t.VPS == nil || t.SPS == nil || t.PPS == nil {
				return false
			}
		}
	}
	return true
}

// loop waits for the end of the session: ctx, the client's failure, or a
// stall (no access unit for StallTimeout).
func (ss *session) loop(ctx context.Context, waitErr chan error) error {
	stall := ss.src.StallTimeout
	tick := time.NewTicker(min(stall/4, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-waitErr:
			return classify(ctx, err)
		case now := <-tick.C:
			if now.Sub(time.Unix(0, ss.last.Load())) > stall {
				return fmt.Errorf("%w for %v", ErrStalled, stall)
			}
		}
	}
}

func ticksToNs(v int64, ts uint32) int64 {
	t := int64(ts)
	return (v/t)*int64(time.Second) + (v%t)*int64(time.Second)/t
}
