package edgeagent_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/ingest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	sim := startCamera(t, "lobby")
	a, _ := startAgent(t, streamCfg("lobby", strings.Replace(sim.URL("lobby"), "rtsp://", "rtsp://viewer:hunter2@", 1)))
	base := "http://" + a.Addr()
	waitFor(t, 10*time.Second, "a fragment", func() bool { return statusOf(a, "lobby").Counters.Fragments > 0 })

	code, body := get(t, base+"/v1/status")
	var st struct{ Streams []edgeagent.StreamStatus }
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Streams) != 1 {
		t.Fatalf("/v1/status: %d %s", code, body)
	}
	s := st.Streams[0]
	if s.State != ingest.StateStreaming || s.LastFragment == nil || s.LastFragment.Number != 1 || len(s.Tracks) != 2 {
		t.Errorf("status %+v", s)
	}
	if strings.Contains(body, "hunter2") {
		t.Error("password in /v1/status")
	}
	if code, body := get(t, base+"/v1/status/lobby"); code != 200 || !strings.Contains(body, `"name": "lobby"`) {
		t.Errorf("/v1/status/lobby: %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/status/nope"); code != 404 || !strings.Contains(body, `"code": "not_found"`) {
		t.Errorf("/v1/status/nope: %d %s", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	_, body = get(t, base+"/metrics")
	for _, want := range []string{`tributary_fragments_total{stream="lobby"} `, `tributary_stream_up{stream="lobby"} 1`,
		`tributary_fragment_store_seconds_bucket`, `tributary_dropped_gops_total{stream="lobby"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// a streaming camera's open fragment holds sample memory
	var inUse float64
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, `tributary_sample_memory_bytes{state="in_use"} `); ok {
			inUse, _ = strconv.ParseFloat(v, 64)
		}
	}
	if inUse < 64<<10 {
		t.Errorf("tributary_sample_memory_bytes in use: %v", inUse)
	}
	if code, body := get(t, base+"/nope"); code != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("/nope: %d %s", code, body)
	}
}
