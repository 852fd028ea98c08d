package testenv

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeHLS writes a 6 s fMP4 VOD HLS stream (H.264 320x240 30 fps with
// 1 s GOPs, AAC; 2 s segments; EXT-X-PROGRAM-DATE-TIME) into a new
// directory and returns it: out.m3u8, init.mp4, out0.m4s…out2.m4s.
func makeHLS(t *testing.T) string {
	t.Helper()
	ffmpeg := RequireFFmpeg(t)
	dir := t.TempDir()
	cmd := exec.Command(ffmpeg, "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "6",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0",
		"-c:a", "aac", "-b:a", "64k",
		"-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-hls_flags", "program_date_time", "-hls_fmp4_init_filename", "init.mp4",
		"-hls_segment_filename", "out%d.m4s", "out.m3u8")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return dir
}

// serveDir serves dir over HTTP on 127.0.0.1, with CORS for any origin
// when cors is set.
func serveDir(t *testing.T, dir string, cors bool) *httptest.Server {
	t.Helper()
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cors {
			w.Header().Set("Access-Control-Allow-Origin", "*")
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPlayHLS(t *testing.T) {
	RequireChromium(t)
	hlsJS := VendoredHLSJS(t)
	dir := makeHLS(t)

	t.Run("clean", func(t *testing.T) {
		srv := serveDir(t, dir, true)
		res := PlayHLS(t, hlsJS, srv.URL+"/out.m3u8", 4*time.Second, false)
		if len(res.Errors) != 0 {
			t.Errorf("errors playing a clean stream: %q\nevents: %q", res.Errors, res.Events)
		}
		if res.CurrentTime <= 2 {
			t.Errorf("currentTime %.2f s, want > 2 s; events: %q", res.CurrentTime, res.Events)
		}
		// the playlist carries EXT-X-PROGRAM-DATE-TIME from when ffmpeg
		// wrote it, a moment ago
		if res.LatencyMS <= 0 || res.LatencyMS > 10*60*1000 {
			t.Errorf("latency %.0f ms, want > 0 (the playlist has program date-times); events: %q", res.LatencyMS, res.Events)
		}
		if !hasEvent(res.Events, "MANIFEST_PARSED") {
			t.Errorf("no MANIFEST_PARSED event: %q", res.Events)
		}
	})

	// A segment with garbage in the middle: hls.js reports it without
	// stopping (non-fatal), so the harness must surface it in Errors.
	t.Run("corrupt segment", func(t *testing.T) {
		bad := t.TempDir()
		for _, name := range []string{"out.m3u8", "init.mp4", "out0.m4s", "out1.m4s", "out2.m4s"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if name == "out1.m4s" {
				for i := 0; i < len(b)/2; i++ {
					b[i] = byte(i*151 + 7)
				}
			}
			if err := os.WriteFile(filepath.Join(bad, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		srv := serveDir(t, bad, true)
		res := PlayHLS(t, hlsJS, srv.URL+"/out.m3u8", 5*time.Second, false)
		if len(res.Errors) == 0 {
			t.Errorf("no errors reported for a corrupt segment (currentTime %.2f s); events: %q", res.CurrentTime, res.Events)
		}
	})

	// The page comes from the harness's origin: a server without CORS
	// cannot be played, and says so in Errors.
	t.Run("no CORS", func(t *testing.T) {
		srv := serveDir(t, dir, false)
		res := PlayHLS(t, hlsJS, srv.URL+"/out.m3u8", 2*time.Second, false)
		if len(res.Errors) == 0 || !strings.Contains(strings.Join(res.Errors, "\n"), "manifestLoadError") {
			t.Errorf("errors %q, want a manifestLoadError; events: %q", res.Errors, res.Events)
		}
		if res.CurrentTime != 0 {
			t.Errorf("currentTime %.2f s without CORS, want 0", res.CurrentTime)
		}
	})
}

func hasEvent(events []string, s string) bool {
	for _, e := range events {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}
