// Package camsim simulates RTSP cameras for the demo, tests and benchmarks.
//
// A Server serves any number of cameras on one RTSP listener (TCP, plus UDP unless
// TCPOnly is set). Each camera plays an MPEG-TS clip (H.264 or H.265 video, optional AAC
// or Opus audio) and optionally a raw G.711 µ-law file, looped forever in real time the
// way a live camera sends: packets in decode order, RTP timestamps from the PTS with a
// random start per track, continuous across loops, parameter sets in band before every
// keyframe, and RTCP sender reports whose NTP time is the wall clock of each access
// unit's PTS. Clips are demuxed and packetized once per Server and shared read-only by
// the cameras that play them; each camera costs one goroutine.
//
// The clips of testdata/ (see testdata/gen-clips.sh) are named by Presets.
package camsim

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
)

// DefaultAddr is the listen address of a Server whose Addr is empty.
const DefaultAddr = "127.0.0.1:8554"

// maxLag is how late a camera may fall behind its schedule (a stalled process, a
// suspended machine) before it re-anchors its schedule to now instead of bursting.
const maxLag = time.Second

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$`)

// Camera is one simulated camera.
type Camera struct {
	// Name is the RTSP path: the camera is served at rtsp://addr/Name. Required; it
	// follows the stream-name rule ^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$ and is unique.
	Name string
	// Clip is the path of an MPEG-TS clip: H.264 or H.265 video and optionally one AAC
	// or Opus audio track. Required.
	Clip string
	// G711 is the optional path of a raw G.711 µ-law 8 kHz mono file, served as an
	// extra PCMU track (payload type 0, 20 ms packets of 160 bytes) looped with the
	// clip and trimmed to its length. Default "": no PCMU track.
	G711 string
	// User and Pass, when User is set, are the credentials a client must give (RTSP
	// basic or digest MD5 authentication). Default "": no authentication.
	User, Pass string
	// ONVIF adds an ONVIF metadata track (RTP map vnd.onvif.metadata/90000,
	// payload type ONVIFPayloadType), as cameras with analytics send: every
	// ONVIFPeriod a tt:MetadataStream document on the video's clock, with a
	// video analytics frame (an object while ONVIFMotion) and the motion
	// detector's event when its state changes, split into packets of at
	// most 1000 bytes. Default false.
	ONVIF bool
	// ONVIFLag sends each metadata document this long after the video of
	// its time, as cameras whose analytics run after the encoder do.
	// Default 0.
	ONVIFLag time.Duration
	// StartAt starts the first loop this far into the clip, at the keyframe at or
	// before it (taken modulo the clip's duration). Default 0: from the beginning.
	// Tests use it to reach the loop point quickly.
	StartAt time.Duration
}

// Server serves simulated cameras over RTSP. Set the fields, then call Start; call
// Close to stop. A Server can not be started twice, but a new Server can be started on
// the address of a closed one at once.
type Server struct {
	// Addr is the TCP listen address of the RTSP server. Default DefaultAddr
	// ("127.0.0.1:8554"). Port 0 picks a free port (see ListenAddr).
	Addr string
	// UDPPort is the even UDP port of RTP for the UDP transport; RTCP uses UDPPort+1.
	// Default 0: the first even port above Addr's port (8556 and 8557 for the default
	// Addr), or a free pair when Addr's port is 0.
	UDPPort int
	// TCPOnly disables the UDP transport. Default false: clients choose TCP or UDP.
	TCPOnly bool
	// Cameras are the cameras to serve. At least one is required.
	Cameras []Camera
	// Stagger spreads the cameras' first packets evenly over two seconds (a
	// fragment's default duration), so that the keyframes of many cameras playing
	// the same clips do not all fall at the same instant, and a recorder cuts their
	// fragments at times spread as evenly as independent cameras' would be. Default
	// false: every camera starts when Start returns.
	Stagger bool
	// Logger receives connection and error messages. Default slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex // guards the lifecycle and the fields below, up to hmu
	started bool
	closed  bool
	rtsp    *gortsplib.Server
	order   []*camera
	addr    string
	udpRTP  int
	done    chan struct{}
	wg      sync.WaitGroup

	// hmu guards what the RTSP handler reads. The handler never takes mu, so Start
	// and Close may wait for gortsplib while holding mu.
	hmu     sync.Mutex
	cams    map[string]*camera // by "/"+Name; nil until the streams are ready
	readers map[*gortsplib.ServerSession]*camera
}

// CameraStats are counters of one camera since Start.
type CameraStats struct {
	// Name is the camera's name.
	Name string
	// Readers is the number of clients playing the camera now.
	Readers int
	// Loops is the number of times the clip has wrapped around.
	Loops uint64
	// AccessUnits is the number of access units and audio frames written to the stream.
	AccessUnits uint64
	// RTPPackets is the number of RTP packets sent to readers (one per reader).
	RTPPackets uint64
	// Bytes is the number of RTP bytes sent to readers (headers included, one copy per reader).
	Bytes uint64
	// WriteErrors counts packets dropped for a reader (a full write queue: a slow reader).
	WriteErrors uint64
}

// Start validates the cameras, loads their clips, listens and starts every camera.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("camsim: server already started")
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Addr == "" {
		s.Addr = DefaultAddr
	}
	if len(s.Cameras) == 0 {
		return errors.New("camsim: no cameras")
	}

	// Validate and load: each clip (with or without a G.711 file) once.
	type clipKey struct{ clip, g711 string }
	clips := map[clipKey]*clip{}
	cams := map[string]*camera{}
	order := make([]*camera, 0, len(s.Cameras))
	for i, cc := range s.Cameras {
		if !nameRE.MatchString(cc.Name) {
			return fmt.Errorf("camsim: camera %d: invalid name %q", i, cc.Name)
		}
		if _, dup := cams["/"+cc.Name]; dup {
			return fmt.Errorf("camsim: camera %q: duplicate name", cc.Name)
		}
		if cc.Clip == "" {
			return fmt.Errorf("camsim: camera %q: no clip", cc.Name)
		}
		if cc.Pass != "" && cc.User == "" {
			return fmt.Errorf("camsim: camera %q: password without user", cc.Name)
		}
		if cc.StartAt < 0 {
			return fmt.Errorf("camsim: camera %q: negative StartAt", cc.Name)
		}
		k := clipKey{cc.Clip, cc.G711}
		cl, ok := clips[k]
		if !ok {
			var err error
			if cl, err = loadClip(cc.Clip, cc.G711); err != nil {
				return fmt.Errorf("camsim: camera %q: %w", cc.Name, err)
			}
			clips[k] = cl
		}
		c := &camera{conf: cc, clip: cl, log: s.Logger.With("camera", cc.Name)}
		cams["/"+cc.Name] = c
		order = append(order, c)
	}

	tcpLn, rtpConn, rtcpConn, err := s.listen()
	if err != nil {
		return err
	}
	addr, udpRTP := tcpLn.Addr().String(), 0
	rs := &gortsplib.Server{
		Handler:     &handler{s: s},
		RTSPAddress: addr,
		Listen: func(string, string) (net.Listener, error) {
			return tcpLn, nil
		},
	}
	if rtpConn != nil {
		udpRTP = rtpConn.LocalAddr().(*net.UDPAddr).Port
		rs.UDPRTPAddress = rtpConn.LocalAddr().String()
		rs.UDPRTCPAddress = rtcpConn.LocalAddr().String()
		rs.ListenPacket = func(_, address string) (net.PacketConn, error) {
			switch address {
			case rs.UDPRTPAddress:
				return rtpConn, nil
			case rs.UDPRTCPAddress:
				return rtcpConn, nil
			}
			return nil, fmt.Errorf("camsim: unexpected UDP listen address %s", address)
		}
	}
	if err = rs.Start(); err != nil {
		tcpLn.Close()
		if rtpConn != nil {
			rtpConn.Close()
			rtcpConn.Close()
		}
		return fmt.Errorf("camsim: %w", err)
	}

	for _, c := range order {
		if err = c.init(rs); err != nil {
			for _, c2 := range order {
				if c2.stream != nil {
					c2.stream.Close()
				}
			}
			rs.Close()
			return fmt.Errorf("camsim: camera %q: %w", c.conf.Name, err)
		}
	}

	s.rtsp = rs
	s.addr, s.udpRTP = addr, udpRTP
	s.order = order
	s.done = make(chan struct{})
	s.started = true
	s.hmu.Lock()
	s.cams = cams
	s.readers = map[*gortsplib.ServerSession]*camera{}
	s.hmu.Unlock()

	now := time.Now()
	for i, c := range order {
		start := now
		if s.Stagger {
			start = now.Add(time.Duration(i) * staggerOver / time.Duration(len(order)))
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.run(start, s.done)
		}()
	}
	s.Logger.Info("camsim: serving", "addr", s.addr, "udp_rtp_port", s.udpRTP, "cameras", len(order), "clips", len(clips))
	return nil
}

// staggerOver is the time over which Stagger spreads the cameras' starts.
const staggerOver = 2 * time.Second

// listen binds the TCP listener and, unless TCPOnly, the UDP RTP/RTCP pair.
func (s *Server) listen() (net.Listener, net.PacketConn, net.PacketConn, error) {
	host, portStr, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("camsim: Addr: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, nil, nil, fmt.Errorf("camsim: Addr: bad port %q", portStr)
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("camsim: %w", err)
	}
	if s.TCPOnly {
		return ln, nil, nil, nil
	}
	udpPort := s.UDPPort
	switch {
	case udpPort == 0 && port == 0:
		rtp, rtcp, err := listenUDPPair(host)
		if err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
		return ln, rtp, rtcp, nil
	case udpPort == 0:
		udpPort = port + 1 + (port+1)%2
	}
	if udpPort%2 != 0 || udpPort+1 > 65535 {
		ln.Close()
		return nil, nil, nil, fmt.Errorf("camsim: UDPPort %d must be even and below 65535", udpPort)
	}
	rtp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(udpPort)))
	if err != nil {
		ln.Close()
		return nil, nil, nil, fmt.Errorf("camsim: %w", err)
	}
	rtcp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(udpPort+1)))
	if err != nil {
		ln.Close()
		rtp.Close()
		return nil, nil, nil, fmt.Errorf("camsim: %w", err)
	}
	return ln, rtp, rtcp, nil
}

// listenUDPPair binds a free even UDP port and the odd port after it.
func listenUDPPair(host string) (net.PacketConn, net.PacketConn, error) {
	for range 100 {
		probe, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("camsim: %w", err)
		}
		p := probe.LocalAddr().(*net.UDPAddr).Port
		var rtp net.PacketConn
		if p%2 == 0 && p < 65535 {
			rtp = probe
		} else {
			probe.Close()
			if p++; p >= 65535 {
				continue
			}
			if rtp, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p))); err != nil {
				continue
			}
		}
		rtcp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p+1)))
		if err != nil {
			rtp.Close()
			continue
		}
		return rtp, rtcp, nil
	}
	return nil, nil, errors.New("camsim: no free UDP port pair")
}

// Close stops every camera, disconnects the clients and closes the listeners. It
// waits for all the goroutines it started. Calling it again does nothing.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	s.wg.Wait()
	for _, c := range s.order {
		c.stream.Close()
	}
	s.rtsp.Close()
}

// ListenAddr returns the address the RTSP server listens on (host:port), known after
// Start; before, it returns Addr.
func (s *Server) ListenAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr != "" {
		return s.addr
	}
	return s.Addr
}

// UDPRTPPort returns the UDP port of RTP (RTCP is the next one), 0 when UDP is off or
// before Start.
func (s *Server) UDPRTPPort() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpRTP
}

// URL returns rtsp://[user:pass@]addr/name for a camera, with its credentials if it
// has some. It works for any name, even one not served.
func (s *Server) URL(name string) string {
	u := url.URL{Scheme: "rtsp", Host: s.ListenAddr(), Path: "/" + name}
	for _, c := range s.Cameras {
		if c.Name == name && c.User != "" {
			u.User = url.UserPassword(c.User, c.Pass)
		}
	}
	return u.String()
}

// Stats returns the counters of every camera, in the order of Cameras (nil before Start).
func (s *Server) Stats() []CameraStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	out := make([]CameraStats, len(s.order))
	for i, c := range s.order {
		st := c.stream.Stats()
		out[i] = CameraStats{
			Name:        c.conf.Name,
			Readers:     int(c.readers.Load()),
			Loops:       c.loops.Load(),
			AccessUnits: c.aus.Load(),
			RTPPackets:  st.OutboundRTPPackets,
			Bytes:       st.OutboundBytes,
			WriteErrors: c.writeErrors.Load(),
		}
	}
	return out
}

// handler answers the RTSP requests of a Server.
type handler struct {
	s *Server
}

func (h *handler) camera(path string) *camera {
	h.s.hmu.Lock()
	defer h.s.hmu.Unlock()
	return h.s.cams[path]
}

// authorize finds the camera and checks the credentials. It returns a response and
// error to send when the request must be refused.
func (h *handler) authorize(conn *gortsplib.ServerConn, req *base.Request, path string) (*camera, *base.Response, error) {
	c := h.camera(path)
	if c == nil {
		return nil, &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	if c.conf.User != "" && !conn.VerifyCredentials(req, c.conf.User, c.conf.Pass) {
		return nil, &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	return c, nil, nil
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.s.Logger.Debug("camsim: connection opened", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.Logger.Debug("camsim: connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.s.hmu.Lock()
	c := h.s.readers[ctx.Session]
	delete(h.s.readers, ctx.Session)
	h.s.hmu.Unlock()
	if c != nil {
		c.readers.Add(-1)
		c.log.Debug("camsim: reader left", "err", ctx.Error)
	}
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path)
	if c == nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path)
	if c == nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.s.hmu.Lock()
	c := h.s.cams[ctx.Session.Path()]
	if c != nil {
		if _, ok := h.s.readers[ctx.Session]; !ok {
			h.s.readers[ctx.Session] = c
			c.readers.Add(1)
		}
	}
	h.s.hmu.Unlock()
	if c != nil {
		proto := "?"
		if tr := ctx.Session.Transport(); tr != nil {
			proto = tr.Protocol.String()
		}
		c.log.Debug("camsim: reader joined", "transport", proto)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnAnnounce implements gortsplib.ServerHandlerOnAnnounce: cameras do not accept publishers.
func (h *handler) OnAnnounce(*gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusMethodNotAllowed}, nil
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError.
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.hmu.Lock()
	c := h.s.readers[ctx.Session]
	h.s.hmu.Unlock()
	if c == nil {
		return
	}
	if n := c.writeErrors.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th… only
		c.log.Warn("camsim: dropping packets for a slow reader", "err", ctx.Error, "dropped", n)
	}
}

// OnPacketsLost implements gortsplib.ServerHandlerOnPacketsLost (quiets gortsplib's default log).
func (h *handler) OnPacketsLost(*gortsplib.ServerHandlerOnPacketsLostCtx) {}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError.
func (h *handler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.Logger.Debug("camsim: decode error", "err", ctx.Error)
}

// cameraAtomic keeps the counters that Stats reads while the camera runs.
type cameraAtomic struct {
	readers     atomic.Int64
	loops       atomic.Uint64
	aus         atomic.Uint64
	writeErrors atomic.Uint64
}
