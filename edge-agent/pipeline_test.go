package edgeagent_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/testenv"
)

// TestCamsimCodecSets pulls every camsim preset for 10 s and checks every
// fragment: ffmpeg's damage check, a leading keyframe, the target duration,
// consecutive numbers, increasing producer times, fragments that abut.
func TestCamsimCodecSets(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	cams := camsim.PresetCameras(repoTestdata(t))
	// a camera whose SPS changes every 4 s (640x360, then 320x180)
	cams = append(cams, camsim.Camera{Name: "reschange", Clip: filepath.Join(repoTestdata(t), "h264_reschange.ts")})
	// the same cameras again, recorded as MKV
	presets := camsim.Presets(repoTestdata(t))
	for _, n := range []string{"h264_bframes_aac", "h265_aac", "h264_opus", "h264_pcmu"} {
		c := presets[n]
		c.Name = "mkv_" + n
		cams = append(cams, c)
	}
	sim := &camsim.Server{Addr: "127.0.0.1:0", Cameras: cams, Logger: testLogger(t)}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var streams []edgeagent.StreamConfig
	for i, c := range cams {
		sc := edgeagent.StreamConfig{Name: c.Name, URL: sim.URL(c.Name), Transport: "tcp"}
		if i%2 == 1 && !strings.HasPrefix(c.Name, "mkv_") {
			sc.Transport = "udp"
		}
		if strings.HasPrefix(c.Name, "mkv_") {
			sc.Container = fragment.ContainerMKV
		}
		streams = append(streams, sc)
	}
	a, store := startAgent(t, streams...)
	waitFor(t, 10*time.Second, "every stream streaming", func() bool {
		for _, s := range a.Status() {
			if s.State != ingest.StateStreaming {
				return false
			}
		}
		return true
	})
	time.Sleep(10 * time.Second)
	a.Close()

	want := map[string]checks{
		"h264":             {videoCodec: fragment.CodecH264},
		"h264_aac":         {videoCodec: fragment.CodecH264, audioCodec: fragment.CodecAAC},
		"h264_opus":        {videoCodec: fragment.CodecH264, audioCodec: fragment.CodecOpus},
		"h264_bframes_aac": {videoCodec: fragment.CodecH264, audioCodec: fragment.CodecAAC},
		"h265":             {videoCodec: fragment.CodecH265},
		"h265_aac":         {videoCodec: fragment.CodecH265, audioCodec: fragment.CodecAAC},
		"h264_pcmu":        {videoCodec: fragment.CodecH264, audioCodec: fragment.CodecPCMU},
		"reschange":        {videoCodec: fragment.CodecH264},
	}
	for _, c := range cams {
		if strings.HasPrefix(c.Name, "mkv_") {
			t.Run(c.Name, func(t *testing.T) { verifyMKV(t, store, c.Name, 4) })
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			ck := want[c.Name]
			ck.target, ck.gop, ck.frame, ck.minFrags = 2*time.Second, time.Second, 34*time.Millisecond, 4
			frags := verify(t, store, c.Name, ck)
			st := statusOf(a, c.Name)
			// camsim sends RTCP sender reports from the start: producer time
			// follows them, slewed from the receive clock, never stepped
			if st.Transport == "tcp" && (st.ClockSource != fragment.ClockRTCP || st.ClockChange == nil || st.ClockChange.Stepped) {
				t.Errorf("clock source %q, change %+v", st.ClockSource, st.ClockChange)
			}
			if st.Counters.DecodeErrors != 0 || st.Counters.DroppedQueueFull != 0 || st.Counters.FragmentsLost != 0 {
				t.Errorf("counters %+v", st.Counters)
			}
			if c.Name == "reschange" {
				inits, widths := map[string]bool{}, map[int]bool{}
				for _, f := range frags {
					inits[f.meta.InitHash] = true
					widths[f.tracks[0].Width] = true
				}
				if len(inits) < 2 || !widths[640] || !widths[320] {
					t.Errorf("a codec-config change did not start a new init segment: inits %v, widths %v", inits, widths)
				}
			}
			if c.Name == "h264_bframes_aac" {
				if bFrames(frags) == 0 {
					t.Error("no sample with PTS != DTS in the B-frame stream")
				}
			}
		})
	}
}
