package edgeagent_test

import (
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/testenv"
)

// TestGStreamerCamera pulls cameras served by the GStreamer RTSP server,
// which nobody here wrote, and runs the same checks as for camsim.
func TestGStreamerCamera(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	cases := []struct {
		name   string
		launch string
		audio  fragment.Codec
		bframe bool
	}{
		{"gst-h264-opus", testenv.GstH264Opus, fragment.CodecOpus, false},
		{"gst-h264-bframes", testenv.GstH264BFrames, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cam := testenv.StartGstCamera(t, tc.launch)
			a, store := startAgent(t, streamCfg(tc.name, cam.URL))
			waitFor(t, 20*time.Second, "streaming", func() bool { return statusOf(a, tc.name).State == ingest.StateStreaming })
			time.Sleep(9 * time.Second)
			a.Close()
			frags := verify(t, store, tc.name, checks{
				target: 2 * time.Second, gop: time.Second, frame: 34 * time.Millisecond, minFrags: 3,
				videoCodec: fragment.CodecH264, audioCodec: tc.audio,
			})
			if tc.bframe {
				if bFrames(frags) == 0 {
					t.Error("no sample with PTS != DTS from the B-frame camera")
				}
			}
			if st := statusOf(a, tc.name); st.Counters.DecodeErrors != 0 || st.Counters.FragmentsLost != 0 {
				t.Errorf("counters %+v", st.Counters)
			}
		})
	}
}
