package testenv

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

//go:embed gst_rtsp_server.py
var gstScript []byte

// GStreamer launch lines of test cameras (each an RTSP media factory).
const (
	// GstH264Opus is H.264 (no B-frames, 1 s GOPs) and Opus.
	GstH264Opus = "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! " +
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bframes=0 bitrate=800 ! " +
		"video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=1 " +
		"audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay name=pay1 pt=97 )"
	// GstH264BFrames is H.264 with B-frames (PTS != DTS).
	GstH264BFrames = "( videotestsrc is-live=true pattern=smpte ! video/x-raw,width=640,height=360,framerate=30/1 ! " +
		"x264enc speed-preset=ultrafast key-int-max=30 bframes=2 b-adapt=false bitrate=800 ! " +
		"video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)

// GstCamera is a GStreamer RTSP server process serving one camera.
type GstCamera struct {
	// URL of the camera.
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	port int
}

// RequireGStreamer fails/skips the test when the GStreamer RTSP server
// bindings are not installed, and returns the Python interpreter to use.
func RequireGStreamer(t testing.TB) string {
	t.Helper()
	py := "/usr/bin/python3" // the system Python has the gi bindings
	if _, err := os.Stat(py); err != nil {
		Missing(t, "python3 with GStreamer bindings", InstallGStreamer)
	}
	out, err := exec.Command(py, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer").CombinedOutput()
	if err != nil {
		Missing(t, "the GStreamer RTSP server ("+string(out)+")", InstallGStreamer)
	}
	if _, err := exec.LookPath("gst-inspect-1.0"); err != nil {
		Missing(t, "GStreamer tools", InstallGStreamer)
	}
	return py
}

// StartGstCamera starts a GStreamer RTSP server on 127.0.0.1 serving
// launch at /cam, and stops it when the test ends.
func StartGstCamera(t testing.TB, launch string) *GstCamera {
	t.Helper()
	py := RequireGStreamer(t)
	script := filepath.Join(t.TempDir(), "gst_rtsp_server.py")
	if err := os.WriteFile(script, gstScript, 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	c := &GstCamera{URL: fmt.Sprintf("rtsp://127.0.0.1:%d/cam", port), port: port}
	if err := c.start(py, script, launch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func (c *GstCamera) start(py, script, launch string) error {
	c.cmd = exec.Command(py, script, fmt.Sprint(c.port), launch)
	c.cmd.Stdout = os.Stderr
	c.cmd.Stderr = os.Stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.done = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := WaitPort(ctx, fmt.Sprintf("127.0.0.1:%d", c.port)); err != nil {
		c.Stop()
		return fmt.Errorf("GStreamer RTSP server: %w", err)
	}
	return nil
}

// Stop kills the server and waits for it.
func (c *GstCamera) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

//go:embed gst_whip.py
var gstWHIPScript []byte

// RequireGstWebRTC fails/skips the test when GStreamer's webrtcbin and its
// Python bindings are missing, and returns the Python interpreter.
func RequireGstWebRTC(t testing.TB) string {
	t.Helper()
	py := "/usr/bin/python3"
	out, err := exec.Command(py, "-c", "import gi; gi.require_version('GstWebRTC', '1.0'); gi.require_version('GstSdp', '1.0'); from gi.repository import GstWebRTC, GstSdp").CombinedOutput()
	if err != nil {
		Missing(t, "GStreamer webrtcbin with Python bindings ("+string(out)+")", InstallGStreamer)
	}
	if err := exec.Command("gst-inspect-1.0", "nicesrc").Run(); err != nil {
		Missing(t, "GStreamer's libnice elements (gstreamer1.0-nice)", InstallGStreamer)
	}
	return py
}

// PublishGstWHIP runs GStreamer's webrtcbin as a WHIP publisher of H.264
// and Opus to whipURL for d, then has it DELETE its session. It returns
// the publisher's error, nil when it published for the whole time.
func PublishGstWHIP(t testing.TB, whipURL, token string, d time.Duration) error {
	t.Helper()
	py := RequireGstWebRTC(t)
	script := filepath.Join(t.TempDir(), "gst_whip.py")
	if err := os.WriteFile(script, gstWHIPScript, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, whipURL, token, fmt.Sprint(d.Seconds()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
