// Package webrtc takes media over WebRTC (pion/webrtc): a Source pulls a
// WHEP endpoint (a camera, a gateway, another media server), and a Server
// answers WHIP publishers (browsers, OBS, GStreamer, devices). Both receive
// the peer's tracks through the same Receiver: SRTP-decrypted RTP is put
// back in order by a small reorder buffer (NACKs are sent by pion's
// interceptor for what is missing), depacketized by package rtpmedia and
// fed to an ingest.Sink with producer time from RTCP sender reports once
// they come, the receive clock before. A PLI asks the publisher for a
// keyframe at the start and after every loss.
package webrtc

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	// URLs such as "stun:stun.example.net:3478" or
	// "turn:turn.example.net:3478?transport=udp".
	URLs []string `yaml:"urls" json:"urls"`
	// Username and Credential of a TURN server.
	Username   string `yaml:"username" json:"username,omitempty"`
	Credential string `yaml:"credential" json:"credential,omitempty"`
}

// Engine makes peer connections with Tributary's codecs, interceptors and
// network settings. One Engine serves any number of connections; set its
// fields before the first.
type Engine struct {
	// ICEServers (STUN, TURN) used to gather candidates. Default none:
	// host candidates only, enough on a LAN.
	ICEServers []ICEServer
	// PublicIPs are announced as host candidates in place of the local
	// addresses (a gateway behind 1:1 NAT). Default none.
	PublicIPs []string
	// UDPPortMin and UDPPortMax bound the UDP ports of the connections, for
	// firewalls. Default: any port.
	UDPPortMin, UDPPortMax uint16
	// Loopback includes loopback candidates (tests, and peers on the same
	// host). Default false.
	Loopback bool
	// DisconnectedTimeout is how long without ICE traffic makes a
	// connection disconnected; FailedTimeout, failed. Defaults 5 s and 10 s.
	DisconnectedTimeout, FailedTimeout time.Duration

	once sync.Once
	api  *webrtc.API
	err  error
}

// Extra H.264 profiles registered beside pion's defaults, so that an offer
// of Constrained High (640c1f, what browsers offer) finds a match.
var extraH264 = []struct {
	pt, rtx uint8
	fmtp    string
}{
	{114, 115, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"},
	{118, 119, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c01f"},
}

// build makes the API once.
func (e *Engine) build() (*webrtc.API, error) {
	e.once.Do(func() { e.api, e.err = e.newAPI() })
	return e.api, e.err
}

func (e *Engine) newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	for _, c := range extraH264 {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: c.fmtp, RTCPFeedback: fb},
			PayloadType:        webrtc.PayloadType(c.pt),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", c.pt)},
			PayloadType:        webrtc.PayloadType(c.rtx),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	reg := &interceptor.Registry{}
	// NACKs for missing packets, receiver reports, and transport-wide
	// congestion feedback so that a browser raises its bitrate
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
		return nil, err
	}
	s := webrtc.SettingEngine{}
	s.SetIncludeLoopbackCandidate(e.Loopback)
	if e.Loopback {
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if len(e.PublicIPs) > 0 {
		for _, ip := range e.PublicIPs {
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("public IP %q is not an IP address", ip)
			}
		}
		s.SetNAT1To1IPs(e.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if e.UDPPortMin != 0 || e.UDPPortMax != 0 {
		if err := s.SetEphemeralUDPPortRange(e.UDPPortMin, e.UDPPortMax); err != nil {
			return nil, fmt.Errorf("UDP port range: %w", err)
		}
	}
	disc, failed := e.DisconnectedTimeout, e.FailedTimeout
	if disc <= 0 {
		disc = 5 * time.Second
	}
	if failed <= 0 {
		failed = 10 * time.Second
	}
	s.SetICETimeouts(disc, failed, time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s)), nil
}

// newPeer makes a peer connection.
func (e *Engine) newPeer() (*webrtc.PeerConnection, error) {
	api, err := e.build()
	if err != nil {
		return nil, err
	}
	cfg := webrtc.Configuration{}
	for _, s := range e.ICEServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return api.NewPeerConnection(cfg)
}
