package webrtc

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/webrtcpeer"
)

// newTestPeer makes a peer sending the clip at path over loopback,
// closed when the test ends.
func newTestPeer(t testing.TB, path string, codecs ...webrtc.RTPCodecCapability) *webrtcpeer.Peer {
	t.Helper()
	p, err := webrtcpeer.New(path, webrtcpeer.Options{Codecs: codecs, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func offer(t testing.TB, p *webrtcpeer.Peer) string {
	t.Helper()
	o, err := p.Offer()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// testSink cuts fragments and keeps each as a self-contained MKV.
type testSink struct {
	mu        sync.Mutex
	cutter    fragment.Cutter
	mkv       fragment.MKVWriter
	frags     [][]byte
	fmp4      [][]byte // the same fragments in fMP4, when fMP4 carries the tracks
	inits     [][]byte // the init segment of each
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
		if fragment.FMP4Carries(f.TrackConfigs) {
			init, err := fragment.MarshalInit(f.TrackConfigs)
			if err != nil {
				panic(err)
			}
			s.inits = append(s.inits, init)
			s.fmp4 = append(s.fmp4, fragment.AppendFMP4(nil, f))
		}
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
func (t testTarget) Settings() TargetSettings   { return TargetSettings{} }
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

// startWHIP serves a Server whose targets are test sinks, on loopback;
// mutate adjusts it first. stop closes both (tests that check for leaked
// goroutines call it before).
func startWHIP(mutate func(*Server)) (tt *testTargets, srv *Server, url string, stop func()) {
	tt = newTestTargets()
	srv = &Server{Targets: tt, Engine: &Engine{Loopback: true}}
	if mutate != nil {
		mutate(srv)
	}
	hs := httptest.NewServer(whipServer(srv))
	return tt, srv, hs.URL, func() { hs.Close(); srv.Close() }
}

// publishTo has pub publish to stream over WHIP at url and start sending.
// It returns the session's Location.
func publishTo(t testing.TB, url, stream string, pub *webrtcpeer.Peer) string {
	t.Helper()
	code, answer, loc := post(t, url+"/whip/"+stream, "application/sdp", "", offer(t, pub))
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, answer)
	}
	if err := pub.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	pub.Start()
	return loc
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
