package edgeagent_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/internal/testenv"
	"github.com/tributary-io/tributary/internal/webrtcpeer"
)

// ivfClip encodes seconds of the test pattern with ffmpeg into an IVF file
// of codec (libvpx for VP8, libvpx-vp9 for VP9).
func ivfClip(t testing.TB, codec string, seconds int) string {
	t.Helper()
	testenv.RequireFFmpeg(t)
	out := filepath.Join(t.TempDir(), codec+".ivf")
	args := []string{"-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", strconv.Itoa(seconds),
		"-c:v", codec, "-g", "30", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p", "-f", "ivf", out}
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// checkStored has ffmpeg decode every stored fragment of stream (with its
// init segment when it has one: MKV fragments stand alone) and returns
// them; fewer than min fail the test.
func checkStored(t *testing.T, store archive.Store, stream string, min int) []fragment.Metadata {
	t.Helper()
	res, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{Stream: stream, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fragments) < min {
		t.Fatalf("%s: %d fragments in the archive, want at least %d", stream, len(res.Fragments), min)
	}
	for _, m := range res.Fragments {
		parts := [][]byte{readObject(t, store, m.Key)}
		if m.Container != fragment.ContainerMKV {
			key, _ := archive.Layout{}.InitKey(stream, m.InitHash)
			parts = append([][]byte{readObject(t, store, key)}, parts...)
		}
		if err := testenv.CheckMedia(context.Background(), parts...); err != nil {
			t.Errorf("%s fragment %d: %v", stream, m.Number, err)
		}
	}
	return res.Fragments
}

func publish(t *testing.T, a *edgeagent.Agent, stream, clip string) *webrtcpeer.Peer {
	t.Helper()
	p, err := webrtcpeer.New(clip, webrtcpeer.Options{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if _, err := p.Publish(context.Background(), "http://"+a.Addr()+"/v1/streams/"+stream+"/whip", pushToken); err != nil {
		t.Fatal(err)
	}
	return p
}

func streamStatus(a *edgeagent.Agent, name string) edgeagent.StreamStatus {
	for _, s := range a.Status() {
		if s.Name == name {
			return s
		}
	}
	return edgeagent.StreamStatus{}
}

// TestWHIPAgent: pion publishers push H.264 + Opus and VP8 to the agent
// over WHIP; the fragments land in the archive, fMP4 and MKV, and pass
// ffmpeg's strict decode.
func TestWHIPAgent(t *testing.T) {
	testenv.RequireFFmpeg(t)
	vp8 := ivfClip(t, "libvpx", 4)
	a, store := startPushAgent(t, func(c *edgeagent.Config) {
		c.WebRTC.Loopback = true
		c.Defaults.Fragment.Target = edgeagent.Duration(time.Second)
	})
	// a wrong token is refused
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/v1/streams/web/whip", strings.NewReader("v=0"))
	req.Header.Set("Content-Type", "application/sdp")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	// an API (read) token does not publish unless webrtc.api_tokens_publish
	api, err := webrtcpeer.New(filepath.Join(repoTestdata(t), "h264_opus.ts"), webrtcpeer.Options{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Publish(context.Background(), "http://"+a.Addr()+"/v1/streams/web/whip", a.APIToken()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("publishing with the API token: %v", err)
	}
	api.Close()

	h264 := publish(t, a, "web", filepath.Join(repoTestdata(t), "h264_opus.ts"))
	publish(t, a, "vp8", vp8)
	deadline := time.Now().Add(20 * time.Second)
	for {
		w, v := streamStatus(a, "web"), streamStatus(a, "vp8")
		if w.Counters.Fragments >= 4 && v.Counters.Fragments >= 4 {
			if w.Transport != "webrtc" || !strings.Contains(strings.Join(w.Tracks, " "), "H264") {
				t.Errorf("status of web: %+v", w)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fragments: web %+v, vp8 %+v", w, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h264.Close()
	a.Close()
	web := checkStored(t, store, "web", 4)
	if web[0].Container != fragment.ContainerFMP4 {
		t.Errorf("H.264 stream stored as %s", web[0].Container)
	}
	v := checkStored(t, store, "vp8", 4)
	if v[0].Container != fragment.ContainerMKV {
		t.Errorf("VP8 stream stored as %s", v[0].Container)
	}
}

// TestWHEPAgent: a stream whose URL is a WHEP endpoint is pulled, and the
// session is DELETEd when the agent stops.
func TestWHEPAgent(t *testing.T) {
	testenv.RequireFFmpeg(t)
	var deleted atomic.Int32
	var peer atomic.Pointer[webrtcpeer.Peer]
	clip := filepath.Join(repoTestdata(t), "h264_opus.ts")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cam/whep", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer whep-secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		offer, _ := io.ReadAll(r.Body)
		p, err := webrtcpeer.New(clip, webrtcpeer.Options{Loopback: true})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		ans, err := p.Answer(string(offer))
		if err != nil {
			p.Close()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if old := peer.Swap(p); old != nil {
			old.Close()
		}
		p.Start()
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/cam/whep/s1")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, ans)
	})
	mux.HandleFunc("DELETE /cam/whep/s1", func(w http.ResponseWriter, r *http.Request) { deleted.Add(1) })
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer func() {
		if p := peer.Load(); p != nil {
			p.Close()
		}
	}()

	url := "whep://" + strings.TrimPrefix(hs.URL, "http://") + "/cam/whep"
	a, store := startPushAgent(t, func(c *edgeagent.Config) {
		c.WebRTC.Loopback = true
		c.Defaults.Fragment.Target = edgeagent.Duration(time.Second)
	}, edgeagent.StreamConfig{Name: "whep", URL: url, SourceToken: "whep-secret"})
	deadline := time.Now().Add(20 * time.Second)
	for streamStatus(a, "whep").Counters.Fragments < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", streamStatus(a, "whep"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := streamStatus(a, "whep"); s.Transport != "webrtc" || s.URL != url {
		t.Errorf("status %+v", s)
	}
	a.Close()
	if deleted.Load() != 1 {
		t.Errorf("DELETE sent %d times", deleted.Load())
	}
	checkStored(t, store, "whep", 4)
}

// TestChromiumWHIP: headless Chromium, a publisher nobody here wrote,
// publishes its fake camera and microphone over WHIP from a network
// namespace (browsers offer no loopback candidates), forced to H.264 and
// then to VP8. The fragments pass ffmpeg's strict decode: H.264 in fMP4,
// VP8 in MKV.
func TestChromiumWHIP(t *testing.T) {
	testenv.RequireFFmpeg(t)
	testenv.RequireChromium(t)
	ns := testenv.RequireNetNS(t)
	a, store := startPushAgent(t, func(c *edgeagent.Config) {
		c.HTTP.Listen = ns.HostIP + ":0"
		c.Defaults.Fragment.Target = edgeagent.Duration(time.Second)
	})
	for _, c := range []struct {
		codec     string
		container string
	}{{"H264", fragment.ContainerFMP4}, {"VP8", fragment.ContainerMKV}} {
		t.Run(c.codec, func(t *testing.T) {
			stream := "chrome-" + strings.ToLower(c.codec)
			res := testenv.PublishWHIP(t, ns, "http://"+a.Addr()+"/v1/streams/"+stream+"/whip", pushToken, c.codec, 6*time.Second)
			if !res.OK {
				t.Fatalf("publishing failed: %s (codecs %v)", res.Error, res.Codecs)
			}
			deadline := time.Now().Add(10 * time.Second)
			for streamStatus(a, stream).State != edgeagent.StateWaiting {
				if time.Now().After(deadline) {
					t.Fatalf("the session did not end: %+v", streamStatus(a, stream))
				}
				time.Sleep(100 * time.Millisecond)
			}
			st := streamStatus(a, stream)
			if !strings.Contains(strings.Join(st.Tracks, " "), c.codec) || st.Transport != "webrtc" {
				t.Errorf("status %+v", st)
			}
			time.Sleep(500 * time.Millisecond) // the last fragment's store
			frags := checkStored(t, store, stream, 3)
			for _, m := range frags {
				if m.Container != c.container {
					t.Errorf("fragment %d stored as %s, want %s", m.Number, m.Container, c.container)
				}
			}
			t.Logf("%s: %d fragments, %d packets, %d lost, %d PLIs", c.codec, len(frags), st.Counters.Packets, st.Counters.PacketsLost, st.Counters.KeyframeRequests)
		})
	}
}

// TestGStreamerWHIP: GStreamer's webrtcbin, a second publisher nobody here
// wrote, publishes H.264 and Opus over WHIP.
func TestGStreamerWHIP(t *testing.T) {
	testenv.RequireFFmpeg(t)
	testenv.RequireGstWebRTC(t)
	a, store := startPushAgent(t, func(c *edgeagent.Config) {
		c.Defaults.Fragment.Target = edgeagent.Duration(time.Second)
	})
	if err := testenv.PublishGstWHIP(t, "http://"+a.Addr()+"/v1/streams/gst/whip", pushToken, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := streamStatus(a, "gst")
	if !strings.Contains(strings.Join(st.Tracks, " "), "H264") || !strings.Contains(strings.Join(st.Tracks, " "), "Opus") {
		t.Errorf("status %+v", st)
	}
	time.Sleep(500 * time.Millisecond)
	frags := checkStored(t, store, "gst", 3)
	t.Logf("%d fragments, %d packets, %d lost", len(frags), st.Counters.Packets, st.Counters.PacketsLost)
}

// TestViewerPublish: the viewer's "Publish camera" dialog, opened filled
// in by #publish= in headless Chromium and started with a click (through
// the DevTools protocol: the camera never starts without one), sends the
// fake camera to the agent over WHIP with the viewer's API token; the
// stream is recorded.
func TestViewerPublish(t *testing.T) {
	testenv.RequireFFmpeg(t)
	testenv.RequireChromium(t)
	ns := testenv.RequireNetNS(t)
	a, store := startPushAgent(t, func(c *edgeagent.Config) {
		c.HTTP.Listen = ns.HostIP + ":0"
		c.Defaults.Fragment.Target = edgeagent.Duration(time.Second)
		c.WebRTC.APITokensPublish = true // the viewer publishes with its token
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) && streamStatus(a, "viewer-cam").Counters.Fragments < 3 {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	page := "http://" + a.Addr() + "/#token=" + a.APIToken() + "&publish=viewer-cam&codec=H264"
	click := `(() => { const d = document.getElementById('publish'); if (!d || !d.open) return false; document.getElementById('pub-start').click(); return true; })()`
	testenv.OpenPageAndRun(t, ns, page, 60*time.Second, done, click, testenv.FakeCameraFlags...)
	st := streamStatus(a, "viewer-cam")
	if st.Counters.Fragments < 3 || st.Transport != "webrtc" {
		t.Fatalf("status %+v", st)
	}
	a.Close()
	checkStored(t, store, "viewer-cam", 3)
}
