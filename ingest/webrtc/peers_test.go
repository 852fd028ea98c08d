package webrtc

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/camsim"
)

// testPeer is a pion peer that sends a recorded clip (camsim.Recording)
// as a WHIP publisher or a WHEP server would, paced in real time, with
// optional loss and reordering, and counts the PLIs it receives.
type testPeer struct {
	t       testing.TB
	pc      *webrtc.PeerConnection
	rec     *camsim.Recording
	tracks  []*webrtc.TrackLocalStaticRTP
	clocks  []uint32
	drop    float64 // probability of not sending a packet
	reorder float64 // probability of sending a packet after the next one
	plis    atomic.Int64
	sent    atomic.Int64
	stopped atomic.Bool // stop sending (a publisher that vanishes)
	cancel  context.CancelFunc
	done    chan struct{}
}

// h264Fmtp is Constrained High, what browsers offer: Tributary must
// match it.
const h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"

// newTestPeer makes a peer with one sendonly track per media of the clip
// at path. codecs override the negotiated codec of each media.
func newTestPeer(t testing.TB, path string, codecs ...webrtc.RTPCodecCapability) *testPeer {
	t.Helper()
	rec, err := camsim.Record(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	p := &testPeer{t: t, rec: rec, done: make(chan struct{})}
	for i, md := range rec.Desc.Medias {
		f := md.Formats[0]
		c := webrtc.RTPCodecCapability{ClockRate: uint32(f.ClockRate())}
		kind := webrtc.RTPCodecTypeVideo
		switch f.Codec() {
		case "H264":
			c.MimeType, c.SDPFmtpLine = webrtc.MimeTypeH264, h264Fmtp
			c.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
		case "Opus":
			c.MimeType, c.Channels, c.SDPFmtpLine = webrtc.MimeTypeOpus, 2, "minptime=10;useinbandfec=1"
			kind = webrtc.RTPCodecTypeAudio
		default:
			t.Fatalf("clip codec %s", f.Codec())
		}
		if i < len(codecs) {
			c = codecs[i]
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: webrtc.PayloadType(96 + i)}, kind); err != nil {
			t.Fatal(err)
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(c, kind.String(), "tributary-test")
		if err != nil {
			t.Fatal(err)
		}
		p.tracks = append(p.tracks, tr)
		p.clocks = append(p.clocks, c.ClockRate)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	s := webrtc.SettingEngine{}
	s.SetIncludeLoopbackCandidate(true)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s))
	p.pc, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range p.tracks {
		sender, err := p.pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if _, ok := pk.(*rtcp.PictureLossIndication); ok {
						p.plis.Add(1)
					}
				}
			}
		}()
	}
	t.Cleanup(p.close)
	return p
}

// offer returns the peer's complete offer (WHIP).
func (p *testPeer) offer() string {
	p.t.Helper()
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		p.t.Fatal(err)
	}
	<-g
	return p.pc.LocalDescription().SDP
}

// answer takes an offer and returns the complete answer (WHEP server).
func (p *testPeer) answer(offer string) (string, error) {
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

// start sends the clip in a loop until close.
func (p *testPeer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.send(ctx)
	}()
}

func (p *testPeer) send(ctx context.Context) {
	rec := p.rec
	rnd := rand.New(rand.NewPCG(1, 2))
	first := make([]uint32, len(p.tracks))
	seen := make([]bool, len(p.tracks))
	start := time.Now()
	var held *rtp.Packet
	var heldTrack int
	for loop := 0; ; loop++ {
		for _, fr := range rec.Frames {
			n := int(binary.BigEndian.Uint16(rec.Stream[fr.Header-2:]))
			var pkt rtp.Packet
			if err := pkt.Unmarshal(rec.Stream[fr.Header : fr.Header+n]); err != nil {
				p.t.Error(err)
				return
			}
			m := fr.Media
			clock := p.clocks[m]
			if !seen[m] {
				seen[m], first[m] = true, pkt.Timestamp
			}
			pkt.SequenceNumber += uint16(loop * rec.Packets[m])
			loopTicks := uint32(int64(loop) * int64(rec.Duration) * int64(clock) / int64(time.Second))
			pkt.Timestamp += loopTicks
			at := start.Add(time.Duration(int64(pkt.Timestamp-first[m]) * int64(time.Second) / int64(clock)))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			if ctx.Err() != nil {
				return
			}
			if p.stopped.Load() {
				continue
			}
			if rnd.Float64() < p.drop {
				continue
			}
			if held == nil && rnd.Float64() < p.reorder {
				held, heldTrack = &pkt, m
				continue
			}
			p.tracks[m].WriteRTP(&pkt)
			p.sent.Add(1)
			if held != nil {
				p.tracks[heldTrack].WriteRTP(held)
				p.sent.Add(1)
				held = nil
			}
		}
	}
}

func (p *testPeer) close() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
	p.pc.Close()
}

// testSink cuts fragments and keeps each as a self-contained MKV.
type testSink struct {
	mu        sync.Mutex
	cutter    fragment.Cutter
	mkv       fragment.MKVWriter
	frags     [][]byte
	meta      []fragment.Metadata
	tracks    []fragment.Track
	sessions  int
	ended     []error
	clockFrom []string
}

func newTestSink() *testSink {
	s := &testSink{}
	s.cutter.Target = time.Second
	s.cutter.Emit = func(f *fragment.Fragment) {
		b, err := s.mkv.Append(nil, f)
		if err != nil {
			panic(err)
		}
		s.frags = append(s.frags, b)
		s.meta = append(s.meta, f.Metadata)
	}
	return s
}

func (s *testSink) StartSession(ss ingest.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions++
	s.tracks = append([]fragment.Track(nil), ss.Tracks...)
	s.cutter.Reset(ss.Tracks, s.sessions > 1)
}

func (s *testSink) WriteSample(i int, smp fragment.Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutter.Write(i, smp)
}

func (s *testSink) UpdateTracks(tracks []fragment.Track) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutter.SetTracks(tracks)
}

func (s *testSink) ClockChanged(from, to string, diff time.Duration, stepped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clockFrom = append(s.clockFrom, from+"->"+to)
	s.cutter.SetClockSource(to)
}

func (s *testSink) EndSession(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutter.Flush()
	s.ended = append(s.ended, err)
}

func (s *testSink) fragments() ([][]byte, []fragment.Metadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frags...), append([]fragment.Metadata(nil), s.meta...)
}

// testTargets hands out testSinks as WHIP targets.
type testTargets struct {
	mu       sync.Mutex
	sinks    map[string]*testSink
	counters map[string]*ingest.Counters
	busy     map[string]bool
	done     chan struct{}
}

func newTestTargets() *testTargets {
	return &testTargets{sinks: map[string]*testSink{}, counters: map[string]*ingest.Counters{}, busy: map[string]bool{}, done: make(chan struct{})}
}

type testTarget struct {
	*testSink
	tt     *testTargets
	stream string
}

func (t testTarget) Counters() *ingest.Counters { return t.tt.counters[t.stream] }
func (t testTarget) Done() <-chan struct{}      { return t.tt.done }
func (t testTarget) Release() {
	t.tt.mu.Lock()
	t.tt.busy[t.stream] = false
	t.tt.mu.Unlock()
}

func (tt *testTargets) Acquire(_ context.Context, stream string) (Target, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if stream == "pulled" {
		return nil, ErrForbidden
	}
	if tt.busy[stream] {
		return nil, ErrBusy
	}
	if tt.sinks[stream] == nil {
		tt.sinks[stream] = newTestSink()
		tt.counters[stream] = &ingest.Counters{}
	}
	tt.busy[stream] = true
	return testTarget{tt.sinks[stream], tt, stream}, nil
}

func (tt *testTargets) sink(stream string) (*testSink, *ingest.Counters) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.sinks[stream], tt.counters[stream]
}

// whipServer serves a Server at /whip/{stream} and /whip/{stream}/{id}.
func whipServer(srv *Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/whip/{stream}", func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r, r.PathValue("stream"))
	})
	mux.HandleFunc("/whip/{stream}/{id}", func(w http.ResponseWriter, r *http.Request) {
		srv.ServeSession(w, r, r.PathValue("stream"), r.PathValue("id"))
	})
	return mux
}

// post sends body to url with the content type and returns status, body
// and Location.
func post(t testing.TB, url, ctype, token, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header.Get("Location")
}
