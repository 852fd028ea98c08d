package camsim

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFFmpegPull has ffmpeg (a client nobody here wrote) record cameras across their
// loop point, over TCP and UDP and with digest authentication, then checks that the
// recording decodes with no error at all and that video DTS advance one frame at a time.
func TestFFmpegPull(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	done := goroutineCheck(t)
	defer done()

	p := Presets(testdata)
	bf := p["h264_bframes_aac"]
	bf.StartAt = 6500 * time.Millisecond // loop point 1.5 s in
	bf.User, bf.Pass = "viewer", "pa:ss@word"
	h265 := p["h265_aac"]
	h265.StartAt = 6500 * time.Millisecond
	s := startServer(t, &Server{Cameras: []Camera{bf, h265}})
	defer s.Close()

	dir := t.TempDir()
	type rec struct{ name, transport, out string }
	recs := []rec{
		{bf.Name, "tcp", filepath.Join(dir, "bf.ts")},
		{h265.Name, "udp", filepath.Join(dir, "h265.ts")},
	}
	var wg sync.WaitGroup
	for _, r := range recs {
		wg.Go(func() {
			cmd := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", r.transport,
				"-i", s.URL(r.name), "-t", "3.5", "-c", "copy", "-f", "mpegts", r.out)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("ffmpeg %s: %v\n%s", r.name, err, out)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, r := range recs {
		var stderr bytes.Buffer
		cmd := exec.Command(ffmpeg, "-v", "error", "-xerror", "-err_detect", "explode", "-i", r.out, "-f", "null", "-")
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("%s: recording does not decode cleanly: %v %s", r.name, err, stderr.String())
		}
		out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v", "-show_entries", "packet=dts,flags",
			"-of", "csv=p=0", r.out).Output()
		if err != nil {
			t.Fatal(err)
		}
		var dts []int64
		keys := 0
		for _, line := range strings.Fields(string(out)) {
			f := strings.Split(line, ",")
			if len(f) < 2 {
				continue
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				continue
			}
			dts = append(dts, v)
			if strings.HasPrefix(f[1], "K") {
				keys++
			}
		}
		if len(dts) < 60 || keys < 2 {
			t.Errorf("%s: %d video packets, %d keyframes in 3.5 s", r.name, len(dts), keys)
		}
		// ffmpeg re-derives timestamps from RTCP sender reports: on a busy machine
		// the first packets can be shifted before the first report arrives, and
		// later ones by a few ticks of rounding. The loop point is about 45 in.
		for i := 6; i < len(dts); i++ {
			if d := dts[i] - dts[i-1]; d < 2990 || d > 3010 {
				t.Errorf("%s: video DTS step %d at packet %d", r.name, d, i)
			}
		}
	}
	for _, st := range s.Stats() {
		if st.Loops == 0 {
			t.Errorf("%s: did not loop", st.Name)
		}
	}
}
