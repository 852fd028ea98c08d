package edgeagent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/testenv"
)

// TestCameraFailure stops a camera mid-stream and starts it again 3 s
// later: the agent must be pulling again within 1 s of the camera's
// return, flag the next fragment discontinuous, and damage nothing.
func TestCameraFailure(t *testing.T) {
	testenv.RequireFFmpeg(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cam := camsim.Presets(repoTestdata(t))["h264_aac"]
	cam.Name = "door"
	start := func() *camsim.Server {
		s := &camsim.Server{Addr: addr, TCPOnly: true, Cameras: []camsim.Camera{cam}, Logger: testLogger(t)}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	sim := start()
	a, store := startAgent(t, streamCfg("door", sim.URL("door")))
	waitFor(t, 10*time.Second, "streaming", func() bool { return statusOf(a, "door").State == ingest.StateStreaming })
	time.Sleep(4500 * time.Millisecond) // mid-fragment
	sim.Close()
	waitFor(t, 5*time.Second, "the agent to notice", func() bool { return statusOf(a, "door").State != ingest.StateStreaming })
	time.Sleep(3 * time.Second)
	sim = start()
	back := time.Now()
	defer sim.Close()
	waitFor(t, 5*time.Second, "streaming again", func() bool {
		s := statusOf(a, "door")
		return s.State == ingest.StateStreaming && s.Sessions == 2
	})
	reconnect := time.Since(back)
	t.Logf("pulling again %v after the camera's return", reconnect.Round(time.Millisecond))
	if reconnect > time.Second {
		t.Errorf("reconnected %v after the camera returned, want within 1 s", reconnect)
	}
	time.Sleep(5 * time.Second)
	a.Close()

	frags := listStream(t, store, "door")
	var disc []fragment.Metadata
	for _, f := range frags {
		if f.meta.Discontinuity {
			disc = append(disc, f.meta)
		}
	}
	if len(disc) != 1 {
		t.Fatalf("%d discontinuous fragments, want exactly 1: %+v", len(disc), disc)
	}
	allow := map[uint64]bool{disc[0].Number: true}
	verify(t, store, "door", checks{
		target: 2 * time.Second, gop: time.Second, frame: 34 * time.Millisecond, minFrags: 5,
		videoCodec: fragment.CodecH264, audioCodec: fragment.CodecAAC, allowDiscontinuity: allow,
	})
	// the fragment closed by the outage is shorter than the target: allowed
	st := statusOf(a, "door")
	if st.Counters.Reconnects != 1 {
		t.Errorf("reconnects %d", st.Counters.Reconnects)
	}
}
