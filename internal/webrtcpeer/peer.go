// Package webrtcpeer is a pion WebRTC peer that sends a recorded clip, as a
// WHIP publisher or a WHEP server would: paced in real time, in a loop,
// with optional loss and reordering, counting the PLIs it receives. Tests
// and the bench use it; it is not part of the product.
package webrtcpeer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/tributary-io/tributary/internal/camsim"
)

// H264Fmtp is Constrained High, what browsers offer.
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"

// Peer sends a clip over one peer connection.
type Peer struct {
	// Drop is the probability of not sending a packet; Reorder of sending
	// one after the next. Set before Start.
	Drop, Reorder float64
	// PLIs counts the picture loss indications received; Sent the RTP
	// packets sent.
	PLIs, Sent atomic.Int64
	// Stopped pauses sending (a publisher that vanishes).
	Stopped atomic.Bool

	pc     *webrtc.PeerConnection
	rec    *camsim.Recording // RTP clip (H.264/H.265 + Opus)
	ivf    [][]byte          // frames of an IVF clip (VP8, VP9, AV1)
	ivfDur time.Duration     // frame duration of the IVF clip
	rtp    []*webrtc.TrackLocalStaticRTP
	media  []int // track of each media of rec, -1 if skipped
	sample *webrtc.TrackLocalStaticSample
	clocks []uint32
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Options of a peer.
type Options struct {
	// Codecs override the negotiated codec of each media of an RTP clip
	// (to offer something Tributary does not take, say).
	Codecs []webrtc.RTPCodecCapability
	// Loopback offers loopback candidates. Default false.
	Loopback bool
	// SkipUnsupported leaves out the media WebRTC cannot carry (AAC)
	// instead of failing.
	SkipUnsupported bool
}

// New makes a peer sending path: an MPEG-TS clip (H.264 or H.265, Opus)
// packetized by camsim, or an IVF file (VP8, VP9, AV1) sent as samples.
func New(path string, o Options) (*Peer, error) {
	p := &Peer{done: make(chan struct{})}
	m := &webrtc.MediaEngine{}
	type addTrack struct {
		tr   webrtc.TrackLocal
		kind webrtc.RTPCodecType
	}
	var tracks []addTrack
	if strings.HasSuffix(path, ".ivf") {
		c, err := p.loadIVF(path)
		if err != nil {
			return nil, err
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		p.sample, err = webrtc.NewTrackLocalStaticSample(c, "video", "tributary-peer")
		if err != nil {
			return nil, err
		}
		tracks = append(tracks, addTrack{p.sample, webrtc.RTPCodecTypeVideo})
	} else {
		rec, err := camsim.Record(path)
		if err != nil {
			return nil, err
		}
		p.rec = rec
		p.media = make([]int, len(rec.Desc.Medias))
		for i, md := range rec.Desc.Medias {
			p.media[i] = -1
			f := md.Formats[0]
			c := webrtc.RTPCodecCapability{ClockRate: uint32(f.ClockRate())}
			kind := webrtc.RTPCodecTypeVideo
			switch f.Codec() {
			case "H264":
				c.MimeType, c.SDPFmtpLine = webrtc.MimeTypeH264, H264Fmtp
			case "H265":
				c.MimeType = webrtc.MimeTypeH265
			case "Opus":
				c.MimeType, c.Channels, c.SDPFmtpLine = webrtc.MimeTypeOpus, 2, "minptime=10;useinbandfec=1"
				kind = webrtc.RTPCodecTypeAudio
			default:
				if o.SkipUnsupported {
					continue
				}
				return nil, fmt.Errorf("%s: codec %s cannot be sent over WebRTC", path, f.Codec())
			}
			if kind == webrtc.RTPCodecTypeVideo {
				c.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
			}
			if i < len(o.Codecs) {
				c = o.Codecs[i]
			}
			if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: webrtc.PayloadType(96 + i)}, kind); err != nil {
				return nil, err
			}
			tr, err := webrtc.NewTrackLocalStaticRTP(c, kind.String(), "tributary-peer")
			if err != nil {
				return nil, err
			}
			p.media[i] = len(p.rtp)
			p.rtp = append(p.rtp, tr)
			p.clocks = append(p.clocks, c.ClockRate)
			tracks = append(tracks, addTrack{tr, kind})
		}
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, err
	}
	s := webrtc.SettingEngine{}
	if o.Loopback {
		s.SetIncludeLoopbackCandidate(true)
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s))
	var err error
	p.pc, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	for _, t := range tracks {
		sender, err := p.pc.AddTrack(t.tr)
		if err != nil {
			p.pc.Close()
			return nil, err
		}
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if _, ok := pk.(*rtcp.PictureLossIndication); ok {
						p.PLIs.Add(1)
					}
				}
			}
		}()
	}
	return p, nil
}

// loadIVF reads the frames of an IVF file and returns its codec.
func (p *Peer) loadIVF(path string) (webrtc.RTPCodecCapability, error) {
	var c webrtc.RTPCodecCapability
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	r, hdr, err := ivfreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	switch hdr.FourCC {
	case "VP80":
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	case "VP90":
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}
	case "AV01":
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}
	default:
		return c, fmt.Errorf("%s: IVF of %q", path, hdr.FourCC)
	}
	c.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if hdr.TimebaseNumerator == 0 || hdr.TimebaseDenominator == 0 {
		return c, fmt.Errorf("%s: IVF without a time base", path)
	}
	p.ivfDur = time.Duration(int64(time.Second) * int64(hdr.TimebaseNumerator) / int64(hdr.TimebaseDenominator))
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
		p.ivf = append(p.ivf, f)
	}
	if len(p.ivf) == 0 {
		return c, fmt.Errorf("%s: no frames", path)
	}
	return c, nil
}

// Offer returns the peer's complete offer (a WHIP publisher's).
func (p *Peer) Offer() (string, error) {
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	g := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		return "", err
	}
	<-g
	return p.pc.LocalDescription().SDP, nil
}

// SetAnswer takes the answer to the peer's offer.
func (p *Peer) SetAnswer(sdp string) error {
	return p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

// Answer takes an offer and returns the complete answer (a WHEP server's).
func (p *Peer) Answer(offer string) (string, error) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	a, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	g := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(a); err != nil {
		return "", err
	}
	<-g
	return p.pc.LocalDescription().SDP, nil
}

// Publish does a WHIP exchange with url (bearer token optional) and
// starts sending. It returns the session's Location.
func (p *Peer) Publish(ctx context.Context, url, token string) (string, error) {
	offer, err := p.Offer()
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(offer))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("WHIP POST: %s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	if err := p.SetAnswer(string(body)); err != nil {
		return "", err
	}
	p.Start()
	return res.Header.Get("Location"), nil
}

// Start sends the clip in a loop until Close.
func (p *Peer) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		if p.sample != nil {
			p.sendIVF(ctx)
		} else {
			p.sendRTP(ctx)
		}
	}()
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil
}

func (p *Peer) sendIVF(ctx context.Context) {
	start := time.Now()
	for i := 0; ; i++ {
		if !sleepUntil(ctx, start.Add(time.Duration(i)*p.ivfDur)) {
			return
		}
		if p.Stopped.Load() {
			continue
		}
		if err := p.sample.WriteSample(media.Sample{Data: p.ivf[i%len(p.ivf)], Duration: p.ivfDur}); err == nil {
			p.Sent.Add(1)
		}
	}
}

func (p *Peer) sendRTP(ctx context.Context) {
	rec := p.rec
	rnd := rand.New(rand.NewPCG(1, 2))
	first := make([]uint32, len(p.rtp))
	seen := make([]bool, len(p.rtp))
	start := time.Now()
	var held *rtp.Packet
	var heldTrack int
	for loop := 0; ; loop++ {
		for _, fr := range rec.Frames {
			n := int(binary.BigEndian.Uint16(rec.Stream[fr.Header-2:]))
			var pkt rtp.Packet
			if err := pkt.Unmarshal(rec.Stream[fr.Header : fr.Header+n]); err != nil {
				return
			}
			m := p.media[fr.Media]
			if m < 0 {
				continue
			}
			clock := p.clocks[m]
			if !seen[m] {
				seen[m], first[m] = true, pkt.Timestamp
			}
			pkt.SequenceNumber += uint16(loop * rec.Packets[fr.Media])
			pkt.Timestamp += uint32(int64(loop) * int64(rec.Duration) * int64(clock) / int64(time.Second))
			at := start.Add(time.Duration(int64(pkt.Timestamp-first[m]) * int64(time.Second) / int64(clock)))
			if !sleepUntil(ctx, at) {
				return
			}
			if p.Stopped.Load() || rnd.Float64() < p.Drop {
				continue
			}
			if held == nil && rnd.Float64() < p.Reorder {
				held, heldTrack = &pkt, m
				continue
			}
			if p.rtp[m].WriteRTP(&pkt) == nil {
				p.Sent.Add(1)
			}
			if held != nil {
				if p.rtp[heldTrack].WriteRTP(held) == nil {
					p.Sent.Add(1)
				}
				held = nil
			}
		}
	}
}

// Close stops sending and closes the connection. It may be called more
// than once, from any goroutine.
func (p *Peer) Close() {
	p.once.Do(func() {
		if p.cancel != nil {
			p.cancel()
			<-p.done
		}
		p.pc.Close()
	})
}
