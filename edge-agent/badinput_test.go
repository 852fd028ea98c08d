package edgeagent_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/testenv"
)

// fakeCamera is an RTSP server with one stream whose packets come from gen.
type fakeCamera struct {
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	desc   *description.Session
	done   chan struct{}
	wg     sync.WaitGroup
	addr   string
}

func (f *fakeCamera) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, f.stream, nil
}

func (f *fakeCamera) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, f.stream, nil
}

func (f *fakeCamera) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// startFakeCamera serves desc and calls gen every 33 ms to get packets.
func startFakeCamera(t *testing.T, desc *description.Session, gen func(i int) []*rtp.Packet) *fakeCamera {
	t.Helper()
	f := &fakeCamera{desc: desc, done: make(chan struct{}), addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	f.srv = &gortsplib.Server{Handler: f, RTSPAddress: f.addr}
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	f.stream = &gortsplib.ServerStream{Server: f.srv, Desc: desc}
	if err := f.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-f.done:
				return
			case <-tick.C:
			}
			for _, p := range gen(i) {
				_ = f.stream.WritePacketRTP(desc.Medias[0], p)
			}
		}
	}()
	t.Cleanup(func() {
		close(f.done)
		f.wg.Wait()
		f.stream.Close()
		f.srv.Close()
	})
	return f
}

func (f *fakeCamera) url() string { return "rtsp://" + f.addr + "/cam" }

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBadInput runs a healthy camera beside an unreachable one, one with
// wrong credentials, a URL that is not RTSP, a camera offering only an
// unsupported codec and one sending garbage RTP payloads. Each gets a clear
// status error or counted drops and retries where it should; none crashes
// or stalls the healthy stream.
func TestBadInput(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	presets := camsim.Presets(repoTestdata(t))
	good, locked := presets["h264_aac"], presets["h264"]
	good.Name, locked.Name = "good", "locked"
	locked.User, locked.Pass = "admin", "s3cret-pw"
	sim := &camsim.Server{Addr: "127.0.0.1:0", TCPOnly: true, Cameras: []camsim.Camera{good, locked}, Logger: testLogger(t)}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	closedPort := testenv.FreePort(t)
	mjpeg := startFakeCamera(t, &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeVideo, Formats: []format.Format{&format.MJPEG{}},
	}}}, func(i int) []*rtp.Packet { return nil })
	sps := []byte{0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96}
	pps := []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	rng := rand.New(rand.NewPCG(1, 2))
	var seq uint16
	garbage := startFakeCamera(t, &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}},
	}}}, func(i int) []*rtp.Packet {
		var out []*rtp.Packet
		for k := 0; k < 4; k++ {
			payload := make([]byte, 1+rng.IntN(1200))
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
			seq++
			out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq,
				Timestamp: uint32(i * 3000), Marker: k == 3, SSRC: 1234}, Payload: payload})
		}
		return out
	})

	// a camera that keeps its connection open but stops sending after 1 s
	var stallSeq uint16
	stalled := startFakeCamera(t, &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}},
	}}}, func(i int) []*rtp.Packet {
		if i > 30 {
			return nil
		}
		stallSeq++
		nalu := []byte{0x65, 0x88, 0x84, 0x00, 0x10}
		if i%30 != 0 {
			nalu = []byte{0x41, 0x9a, 0x02, 0x04}
		}
		return []*rtp.Packet{{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: stallSeq,
			Timestamp: uint32(i * 3000), Marker: true, SSRC: 99}, Payload: nalu}}
	})

	badURL := strings.Replace(sim.URL("locked"), "rtsp://", "rtsp://admin:wrong-pw-123@", 1)
	streams := []edgeagent.StreamConfig{
		streamCfg("good", sim.URL("good")),
		streamCfg("unreachable", fmt.Sprintf("rtsp://127.0.0.1:%d/cam", closedPort)),
		streamCfg("badauth", badURL),
		streamCfg("nothttp", "http://127.0.0.1:1/stream"),
		streamCfg("mjpegonly", mjpeg.url()),
		streamCfg("garbage", garbage.url()),
		streamCfg("stalled", stalled.url()),
	}
	logs := &syncBuffer{}
	dir := t.TempDir()
	cfg, err := edgeagent.FinishConfig(&edgeagent.Config{DataDir: dir, HTTP: edgeagent.HTTPConfig{Listen: "127.0.0.1:0"}, Streams: streams})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Streams {
		cfg.Streams[i].StallTimeout = edgeagent.Duration(2 * time.Second)
	}
	store := &archive.Local{Root: cfg.Archive.Path}
	a := &edgeagent.Agent{Config: cfg, Store: store, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	time.Sleep(9 * time.Second)

	st := map[string]edgeagent.StreamStatus{}
	for _, s := range a.Status() {
		st[s.Name] = s
		t.Logf("%s: state=%s sessions=%d error=%q counters=%+v", s.Name, s.State, s.Sessions, s.LastError, s.Counters)
	}
	if s := st["good"]; s.State != ingest.StateStreaming || s.Sessions != 1 || s.Counters.Fragments < 3 {
		t.Errorf("the healthy stream was disturbed: %+v", s)
	}
	if s := st["unreachable"]; s.State == ingest.StateFailed || !strings.Contains(s.LastError, "connection refused") {
		t.Errorf("unreachable: state %s, error %q", s.State, s.LastError)
	}
	if s := st["badauth"]; !strings.Contains(s.LastError, "401") || s.State == ingest.StateFailed {
		t.Errorf("badauth: state %s, error %q", s.State, s.LastError)
	}
	if s := st["nothttp"]; s.State != ingest.StateFailed || !strings.Contains(s.LastError, "not rtsp") {
		t.Errorf("nothttp: state %s, error %q", s.State, s.LastError)
	}
	if s := st["mjpegonly"]; !strings.Contains(s.LastError, "no supported track") || !strings.Contains(s.LastError, "MJPEG") {
		t.Errorf("mjpegonly: state %s, error %q", s.State, s.LastError)
	}
	if s := st["garbage"]; s.Counters.DecodeErrors+s.Counters.DroppedNoParams == 0 || s.Counters.Packets == 0 {
		t.Errorf("garbage: nothing counted: %+v", s.Counters)
	}
	if s := st["stalled"]; !strings.Contains(s.LastError, "no media from the camera for 2s") || s.State == ingest.StateStreaming || s.Sessions < 1 {
		t.Errorf("stalled: state %s, sessions %d, error %q", s.State, s.Sessions, s.LastError)
	}
	for _, s := range st {
		if strings.Contains(s.URL, "wrong-pw-123") || strings.Contains(s.LastError, "wrong-pw-123") {
			t.Errorf("%s: password in status: %+v", s.Name, s)
		}
	}
	if strings.Contains(logs.String(), "wrong-pw-123") || strings.Contains(logs.String(), "s3cret-pw") {
		t.Error("a password was logged")
	}
	a.Close()
	verify(t, store, "good", checks{target: 2 * time.Second, gop: time.Second, frame: 34 * time.Millisecond, minFrags: 3,
		videoCodec: fragment.CodecH264, audioCodec: fragment.CodecAAC})
}
