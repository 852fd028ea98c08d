// Package rtsp pulls media from RTSP cameras: gortsplib speaks RTSP, and
// over TCP the connection itself (pacedConn) takes the interleaved RTP
// frames out of its read buffer so that packets reach the depacketizers
// without a copy or an allocation, and once playing, a poller goroutine
// shared by many cameras reads their sockets once per pacing interval.
// Package rtpmedia depacketizes H.264, H.265, AAC, Opus and G.711 into
// access units with decode timestamps; this package maps them to producer
// time (RTCP sender reports when present, else the receive clock) and
// feeds an ingest.Sink. One Source.Run is one session; an
// ingest.Supervisor runs sessions one after another with backoff.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
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
	ErrNoSupportedTracks = errors.New("camera offers no supported track (H264, H265, VP8, VP9, AV1, AAC, Opus, G711)")
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
	// ReadPacing, on TCP, is how often the connection is read once
	// playing, so that packets are read in batches rather than one wakeup
	// each: by a poller shared with other cameras' connections (see
	// pacedConn). Default DefaultReadPacing (40 ms); negative turns it off
	// (a read per packet, on the connection's own goroutine).
	ReadPacing time.Duration
	// MaxClockSkew is passed to the producer Clock. Default 10 min.
	MaxClockSkew time.Duration
	// ONVIFMetadata records the camera's ONVIF metadata media
	// (vnd.onvif.metadata: analytics and events as XML) as a data track of
	// the stream, whose fragments are then MKV. Default false: it is
	// ignored (and named in the session's ignored formats).
	ONVIFMetadata bool
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
	tracks, deps, ignored := rtpmedia.Build(desc, s.Counters, rtpmedia.Options{ONVIFMetadata: s.ONVIFMetadata})
	defer func() {
		// once the client and its readers have stopped, nothing uses the
		// depacketizers' buffers
		cancel()
		<-closed
		for _, d := range deps {
			d.Release()
		}
	}()
	if len(fragment.MediaTracks(tracks)) == 0 {
		// metadata alone (no video to cut it on) is not recorded either
		offered := ignored
		for _, t := range tracks {
			offered = append(offered, string(t.Codec))
		}
		return fmt.Errorf("%w; offered: %s", ErrNoSupportedTracks, strings.Join(offered, ", "))
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
		if sess.Stop() {
			sink.EndSession(err)
		}
		return classify(ctx, err)
	}
	sess.Touch() // PLAY may have taken a while: no stall yet
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

	err = sess.Wait(ctx, waitErr, s.StallTimeout, func(err error) error { return classify(ctx, err) })
	if sess.Stop() {
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
	rtpmedia.Session
	src     *Source
	byMedia map[*description.Media]*rtpmedia.Media
	// byChannel finds the media of an interleaved RTP channel
	byChannel [256]*channel
	pkt       rtp.Packet // onFrame's, reused
}

// channel is an interleaved RTP channel of the session's connection.
type channel struct {
	m        *rtpmedia.Media
	seqKnown bool
	nextSeq  uint16
}

func (ss *session) init(s *Source, tracks []fragment.Track, deps []*rtpmedia.Media, channels []int, sink ingest.Sink, started func(), info ingest.Session) {
	ss.src = s
	ss.Counters, ss.Logger, ss.MaxClockSkew, ss.Stalled = s.Counters, s.Logger, s.MaxClockSkew, ErrStalled
	ss.Init(tracks, sink, started, info)
	ss.byMedia = make(map[*description.Media]*rtpmedia.Media, len(deps))
	for i, d := range deps {
		ss.byMedia[d.Desc()] = d
		if i < len(channels) && channels[i] >= 0 && channels[i] < 256 {
			ss.byChannel[channels[i]] = &channel{m: d}
		}
	}
}

// onPacket runs on gortsplib's reader goroutines (one per media with UDP),
// and interleaved RTP (onFrame) on the connection's poller, or on its
// reader when it has none. It depacketizes and hands access units to the
// sink right there: a handoff to another goroutine per access unit would
// cost a wakeup each, more than the work itself.
func (ss *session) onPacket(medi *description.Media, forma format.Format, pkt *rtp.Packet) {
	ss.packet(ss.byMedia[medi], forma, pkt, time.Now())
}

// packet counts and depacketizes a packet of media d received at recv.
func (ss *session) packet(d *rtpmedia.Media, forma format.Format, pkt *rtp.Packet, recv time.Time) {
	ctr := ss.src.Counters
	ctr.Packets.Add(1)
	ctr.Bytes.Add(uint64(len(pkt.Payload)))
	if d == nil || d.Format() != forma {
		return
	}
	ss.Packet(d, pkt, recv)
}

// onFrame takes an interleaved frame from the RTSP connection, received
// at recv: the RTP packets of the session's media, parsed in place. It
// reports whether the frame was one.
func (ss *session) onFrame(channel byte, payload []byte, recv time.Time) bool {
	ch := ss.byChannel[channel]
	if ch == nil {
		return false
	}
	d := ch.m
	pkt := &ss.pkt
	if err := rtpmedia.ParseRTP(pkt, payload); err != nil {
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
	ss.packet(d, d.Format(), pkt, recv)
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
	ss.SenderReport(d, sr.NTPTime, sr.RTPTime)
}
