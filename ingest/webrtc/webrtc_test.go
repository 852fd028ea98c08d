package webrtc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/testenv"
	"github.com/tributary-io/tributary/internal/webrtcpeer"
)

const clipH264Opus = "../../testdata/h264_opus.ts"

// checkFragments has ffmpeg decode every fragment strictly.
func checkFragments(t *testing.T, frags [][]byte, meta []fragment.Metadata) {
	t.Helper()
	testenv.RequireFFmpeg(t)
	for i, b := range frags {
		if err := testenv.CheckMedia(context.Background(), b); err != nil {
			t.Errorf("fragment %d (%v, %d keyframes): %v", i, meta[i].Duration, meta[i].Keyframes, err)
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWHIPPion(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tt, srv, url, stop := startWHIP(func(s *Server) { s.StallTimeout = 2 * time.Second })
	defer stop()

	pub := newTestPeer(t, clipH264Opus)
	loc := publishTo(t, url, "cam1", pub)
	if !strings.HasPrefix(loc, "/whip/cam1/") {
		t.Fatalf("Location %q", loc)
	}
	sink, ctr := tt.sink("cam1")
	waitFor(t, "4 fragments", 30*time.Second, func() bool { f, _ := sink.fragments(); return len(f) >= 4 })

	// a second publisher to the same stream is refused while the first holds it
	pub2 := newTestPeer(t, clipH264Opus)
	if code, body, _ := post(t, url+"/whip/cam1", "application/sdp", "", offer(t, pub2)); code != http.StatusConflict {
		t.Errorf("second publisher: %d %s", code, body)
	}
	pub2.Close()

	req, _ := http.NewRequest(http.MethodDelete, url+loc, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %v %v", res, err)
	}
	res.Body.Close()
	waitFor(t, "the session to end", 5*time.Second, func() bool { return srv.Active() == 0 })
	pub.Close()

	frags, meta := sink.fragments()
	sink.mu.Lock()
	tracks, ended, clock := sink.tracks, sink.ended, sink.clockFrom
	sink.mu.Unlock()
	// producer time: the receive clock until pion's sender reports come,
	// then RTCP, the switch recorded
	if len(clock) == 0 || clock[0] != "receive->rtcp" {
		t.Errorf("clock changes %v, want receive->rtcp", clock)
	}
	if len(tracks) != 2 || tracks[0].Codec != fragment.CodecH264 || tracks[1].Codec != fragment.CodecOpus || tracks[0].Width != 640 {
		t.Errorf("tracks %v", tracks)
	}
	if len(ended) != 1 {
		t.Errorf("sessions ended %v", ended)
	}
	for i, m := range meta {
		if m.Keyframes < 1 {
			t.Errorf("fragment %d has no keyframe", i)
		}
	}
	if ctr.Packets.Load() == 0 || ctr.Samples.Load() == 0 || ctr.KeyframeRequests.Load() == 0 {
		t.Errorf("counters: packets %d samples %d PLIs %d", ctr.Packets.Load(), ctr.Samples.Load(), ctr.KeyframeRequests.Load())
	}
	if pub.PLIs.Load() == 0 {
		t.Error("the publisher received no PLI")
	}
	t.Logf("%d fragments, %d packets, %d samples, %d lost, %d PLIs", len(frags), ctr.Packets.Load(), ctr.Samples.Load(), ctr.PacketsLost.Load(), pub.PLIs.Load())
	checkFragments(t, frags, meta)
}

// TestWHIPLossReorder sends with 2% of packets dropped and 5% reordered:
// fragments stay valid, losses are counted, and PLIs ask for keyframes.
func TestWHIPLossReorder(t *testing.T) {
	tt, srv, url, stop := startWHIP(nil)
	defer stop()

	pub := newTestPeer(t, clipH264Opus)
	pub.Drop, pub.Reorder = 0.02, 0.05
	publishTo(t, url, "lossy", pub)
	sink, ctr := tt.sink("lossy")
	waitFor(t, "5 fragments", 20*time.Second, func() bool { f, _ := sink.fragments(); return len(f) >= 5 })
	pub.Close()
	waitFor(t, "the session to end", 15*time.Second, func() bool { return srv.Active() == 0 })
	frags, meta := sink.fragments()
	lost, plis := ctr.PacketsLost.Load(), ctr.KeyframeRequests.Load()
	t.Logf("%d fragments, %d packets sent, %d received, %d lost, %d PLIs sent, %d PLIs received", len(frags), pub.Sent.Load(), ctr.Packets.Load(), lost, plis, pub.PLIs.Load())
	if lost == 0 {
		t.Error("no loss counted")
	}
	if plis < 2 || pub.PLIs.Load() < 2 {
		t.Errorf("PLIs: sent %d, received %d", plis, pub.PLIs.Load())
	}
	checkFragments(t, frags, meta)
}

// TestWHEPPion pulls from a pion WHEP endpoint with a bearer token.
func TestWHEPPion(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var deleted atomic.Int32
	var peer atomic.Pointer[webrtcpeer.Peer]
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whep/cam", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		b := make([]byte, 64<<10)
		n, _ := r.Body.Read(b)
		for n < len(b) {
			m, err := r.Body.Read(b[n:])
			n += m
			if err != nil {
				break
			}
		}
		p := newTestPeer(t, clipH264Opus)
		ans, err := p.Answer(string(b[:n]))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		peer.Store(p)
		p.Start()
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/whep/cam/session-1")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(ans))
	})
	mux.HandleFunc("DELETE /whep/cam/session-1", func(w http.ResponseWriter, r *http.Request) {
		deleted.Add(1)
		if p := peer.Load(); p != nil {
			go p.Close()
		}
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()

	url := "whep://" + strings.TrimPrefix(hs.URL, "http://") + "/whep/cam"
	// a wrong token is refused
	bad := &Source{URL: url, Token: "wrong", Engine: &Engine{Loopback: true}}
	if err := bad.Run(context.Background(), newTestSink(), nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}

	sink := newTestSink()
	ctr := &ingest.Counters{}
	src := &Source{URL: url, Token: "s3cret", Engine: &Engine{Loopback: true}, Counters: ctr}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, sink, nil) }()
	// a session that ends early, or a slow one, says what it saw
	deadline := time.Now().Add(30 * time.Second)
	for f, _ := sink.fragments(); len(f) < 4; f, _ = sink.fragments() {
		select {
		case err := <-errc:
			t.Fatalf("the session ended after %d fragments: %v; packets %d, samples %d, lost %d, decode errors %d, PLIs %d",
				len(f), err, ctr.Packets.Load(), ctr.Samples.Load(), ctr.PacketsLost.Load(), ctr.DecodeErrors.Load(), ctr.KeyframeRequests.Load())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d fragments in 30 s; packets %d, samples %d, lost %d, decode errors %d, PLIs %d",
				len(f), ctr.Packets.Load(), ctr.Samples.Load(), ctr.PacketsLost.Load(), ctr.DecodeErrors.Load(), ctr.KeyframeRequests.Load())
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	if deleted.Load() != 1 {
		t.Errorf("DELETE sent %d times", deleted.Load())
	}
	if p := peer.Load(); p != nil {
		p.Close()
	}
	frags, meta := sink.fragments()
	t.Logf("%d fragments, %d packets, %d lost, %d PLIs", len(frags), ctr.Packets.Load(), ctr.PacketsLost.Load(), ctr.KeyframeRequests.Load())
	checkFragments(t, frags, meta)
}

// TestWHIPBadInput: bad requests get a clear 4xx and leave nothing behind.
func TestWHIPBadInput(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tt := newTestTargets()
	srv := &Server{Targets: tt, Engine: &Engine{Loopback: true}, MaxPublishers: 1, Timeout: 2 * time.Second, StallTimeout: time.Second,
		Authorize: func(r *http.Request, stream string) error {
			if stream == "private" && r.Header.Get("Authorization") != "Bearer t0k" {
				return ErrUnauthorized
			}
			return nil
		}}
	hs := httptest.NewServer(whipServer(srv))
	defer hs.Close()
	defer srv.Close()

	pub := newTestPeer(t, clipH264Opus)
	good := offer(t, pub)
	g722 := newTestPeer(t, clipH264Opus,
		webrtc.RTPCodecCapability{MimeType: "video/H263", ClockRate: 90000},
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeG722, ClockRate: 8000})
	unsupported := offer(t, g722)
	g722.Close()
	// a valid SDP whose DTLS fingerprint is not the peer's: ICE connects,
	// DTLS fails
	wrongFP := regexp.MustCompile(`a=fingerprint:sha-256 ([0-9A-F]{2}:)*[0-9A-F]{2}`).ReplaceAllString(good,
		"a=fingerprint:sha-256 "+strings.TrimSuffix(strings.Repeat("AB:", 32), ":"))

	cases := []struct {
		name, stream, ctype, token, body string
		code                             int
		want                             string
	}{
		{"garbage SDP", "cam", "application/sdp", "", "this is not SDP", 400, "bad SDP offer"},
		{"wrong content type", "cam", "application/json", "", good, 415, "application/sdp"},
		{"no usable codec", "cam", "application/sdp", "", unsupported, 415, "g722"},
		{"no token", "private", "application/sdp", "", good, 401, "bearer token"},
		{"pulled stream", "pulled", "application/sdp", "", good, 403, "not allowed"},
		{"huge body", "cam", "application/sdp", "", strings.Repeat("a", 70<<10), 400, "over"},
		{"path in the stream name", "..%2F..%2Fescaped", "application/sdp", "", good, 400, "bad stream name"},
		{"space in the stream name", "a%20b", "application/sdp", "", good, 400, "bad stream name"},
	}
	for _, c := range cases {
		code, body, _ := post(t, hs.URL+"/whip/"+c.stream, c.ctype, c.token, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, body, c.code, c.want)
		}
	}

	// DTLS failure: accepted (the answer is sent before DTLS), then the
	// session ends on its own with the connection error
	code, body, _ := post(t, hs.URL+"/whip/dtls", "application/sdp", "", wrongFP)
	if code != http.StatusCreated {
		t.Fatalf("DTLS case: %d %s", code, body)
	}
	// MaxPublishers is 1: another publisher is refused meanwhile
	if code, body, _ := post(t, hs.URL+"/whip/other", "application/sdp", "", good); code != http.StatusServiceUnavailable {
		t.Errorf("over MaxPublishers: %d %s", code, body)
	}
	pub.Close()
	waitFor(t, "the DTLS session to end", 20*time.Second, func() bool { return srv.Active() == 0 })
	if s, _ := tt.sink("dtls"); s == nil {
		t.Errorf("the DTLS case never held its stream")
	} else {
		s.mu.Lock()
		n := s.sessions
		s.mu.Unlock()
		if n != 0 {
			t.Errorf("the DTLS-failed session reached the sink")
		}
	}

	// a publisher that vanishes without DELETE: the stall timeout ends
	// its session and frees the stream
	pub3 := newTestPeer(t, clipH264Opus)
	publishTo(t, hs.URL, "vanish", pub3)
	sink, _ := tt.sink("vanish")
	waitFor(t, "a fragment", 10*time.Second, func() bool { f, _ := sink.fragments(); return len(f) >= 1 })
	pub3.Stopped.Store(true)
	waitFor(t, "the stalled session to end", 10*time.Second, func() bool { return srv.Active() == 0 })
	sink.mu.Lock()
	ended := sink.ended
	sink.mu.Unlock()
	if len(ended) != 1 || !errors.Is(ended[0], ErrStalled) {
		t.Errorf("vanished publisher: sessions ended with %v", ended)
	}
	pub3.Close()
	if srv.Rejected.Load() < 9 {
		t.Errorf("rejected %d", srv.Rejected.Load())
	}
}

func TestSourceValidate(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"whep://cam.local:8889/cam/whep", true},
		{"wheps://gw.example/whep", true},
		{"https://gw.example/whep", true},
		{"rtsp://cam/whep", false},
		{"whep:///nohost", false},
		{"::bad", false},
	} {
		err := (&Source{URL: c.url}).Validate()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ingest.ErrPermanent)) {
			t.Errorf("Validate(%q) = %v", c.url, err)
		}
	}
	if got := Redact("wheps://u:p@gw/whep?token=abc&x=1"); strings.Contains(got, "abc") || strings.Contains(got, "p@") {
		t.Errorf("Redact: %s", got)
	}
}
