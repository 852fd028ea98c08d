package edgeagent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/internal/testenv"
	"github.com/tributary-io/tributary/playback"
)

// TestEdgeInference runs two hooks in the agent on a camsim camera: the
// example model (SageMaker contract) and a webhook. Results land in the
// archive beside the fragments and come back from the API; the webhook's
// signed URL serves the fragment.
func TestEdgeInference(t *testing.T) {
	t.Parallel()
	sim := startCamera(t, "lobby")

	model := httptest.NewServer(&inference.ExampleModel{})
	defer model.Close()
	var mu sync.Mutex
	var notices []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		notices = append(notices, n)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"seen":true}`))
	}))
	defer hook.Close()

	a, _ := startAgentWith(t, &edgeagent.Config{
		Streams: []edgeagent.StreamConfig{streamCfg("lobby", sim.URL("lobby"))},
		API:     edgeagent.APIConfig{Tokens: []string{"test-token-0123456789"}},
		Inference: edgeagent.InferenceConfig{Hooks: []inference.Hook{
			{Model: "activity", Kind: inference.KindSageMaker, URL: model.URL},
			{Model: "notify", Kind: inference.KindWebhook, URL: hook.URL, Every: 2},
		}},
	})
	base := "http://" + a.Addr()
	authGet := func(url string) (int, []byte) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer test-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	var results []inference.Record
	waitFor(t, 20*time.Second, "4 results", func() bool {
		code, b := authGet(base + "/v1/streams/lobby/results?model=activity")
		var out struct{ Results []inference.Record }
		if code != 200 || json.Unmarshal(b, &out) != nil {
			return false
		}
		results = out.Results
		return len(results) >= 4
	})
	var lat []time.Duration
	for _, r := range results {
		var ans inference.ExampleAnswer
		if err := json.Unmarshal(r.Output, &ans); err != nil || ans.Frames < 10 || len(ans.Keyframes) == 0 || r.Placement != inference.PlacementEdge ||
			r.IdempotencyKey != inference.IdempotencyKey("lobby", r.FragmentNumber, "activity") {
			t.Errorf("result %+v (answer %+v, %v)", r, ans, err)
		}
		lat = append(lat, r.Stored.Sub(r.ServerTime))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("fragment close → result stored: %v … %v over %d results", lat[0], lat[len(lat)-1], len(lat))
	if lat[len(lat)-1] > time.Second {
		t.Errorf("a result took %v after its fragment closed", lat[len(lat)-1])
	}

	waitFor(t, 10*time.Second, "a webhook notice", func() bool { mu.Lock(); defer mu.Unlock(); return len(notices) >= 1 })
	mu.Lock()
	n := notices[0]
	mu.Unlock()
	for _, k := range []string{"url", "init_url"} {
		u, _ := n[k].(string)
		resp, err := http.Get(u) // signed: no token
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) < 100 {
			t.Errorf("notice %s %s: %d, %d bytes", k, u, resp.StatusCode, len(b))
		}
	}
	if !strings.HasPrefix(n["idempotency_key"].(string), "lobby/") {
		t.Errorf("notice %v", n)
	}

	code, b := authGet(base + "/v1/status")
	var st struct{ Inference []inference.HookStats }
	if code != 200 || json.Unmarshal(b, &st) != nil || len(st.Inference) != 2 || st.Inference[0].Results == 0 || st.Inference[0].Dropped != 0 {
		t.Errorf("status: %d %s", code, b)
	}
	if code, b := authGet(base + "/v1/streams/lobby/results?model=../x"); code != 400 || !strings.Contains(string(b), "model") {
		t.Errorf("bad model: %d %s", code, b)
	}
	if code, b := authGet(base + "/v1/streams/lobby/deadletters"); code != 200 || !strings.Contains(string(b), `"deadletters": []`) {
		t.Errorf("dead letters: %d %s", code, b)
	}
	// GetMedia carries each fragment's result as a tag
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/streams/lobby/media?start=earliest", nil)
	req.Header.Set("Authorization", "Bearer test-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := fragment.NewMKVReader(resp.Body)
	tagged := 0
	for range 3 {
		c, err := r.Next()
		if err != nil {
			t.Fatalf("GetMedia: %v", err)
		}
		var ans inference.ExampleAnswer
		if v, ok := c.Tags[playback.TagResultPrefix+"activity"]; ok && json.Unmarshal([]byte(v), &ans) == nil && ans.Frames > 0 {
			tagged++
		}
	}
	resp.Body.Close()
	if tagged == 0 {
		t.Error("no GetMedia cluster carries a result tag")
	}

	checkViewerResults(t, base, "test-token-0123456789")

	_, b = authGet(base + "/metrics")
	if !strings.Contains(string(b), `tributary_inference_results_total{model="activity"}`) {
		t.Error("no inference metrics")
	}
}

// viewerHarness opens the viewer in a same-origin iframe (the harness
// proxies the agent), waits for its timeline to list inference results,
// and reports the message under the timeline and whether the canvas holds
// a pixel of the results strip (green to red; the footage is blue).
const viewerHarness = `<!doctype html><html><body>
<iframe id="v" src="/#token=TOKEN" width="1400" height="900"></iframe>
<script>
const t0 = Date.now();
function report(r) { fetch('/harness/report', {method: 'POST', body: JSON.stringify(r)}); }
function poll() {
  try {
    const d = document.getElementById('v').contentDocument;
    const msg = d && d.getElementById('timeline-msg');
    const c = d && d.getElementById('timeline');
    if (msg && /inference result/.test(msg.textContent) && c && c.width > 0) {
      const g = c.getContext('2d');
      const dpr = c.width / c.clientWidth;
      const row = g.getImageData(0, Math.round(33 * dpr), c.width, 1).data;
      let strip = 0;
      for (let i = 0; i < row.length; i += 4) {
        const [r, gr, b] = [row[i], row[i + 1], row[i + 2]];
        if (b < 110 && (r > 150 || gr > 150)) strip++;
      }
      report({message: msg.textContent, strip: strip});
      return;
    }
  } catch (e) { report({message: 'error: ' + e, strip: 0}); return; }
  if (Date.now() - t0 > 25000) { report({message: 'timed out', strip: 0}); return; }
  setTimeout(poll, 200);
}
setTimeout(poll, 500);
</script></body></html>`

func checkViewerResults(t *testing.T, agentBase, token string) {
	t.Helper()
	target, _ := url.Parse(agentBase)
	proxy := httputil.NewSingleHostReverseProxy(target)
	type result struct {
		Message string
		Strip   int
	}
	got := make(chan result, 1)
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /harness", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, strings.Replace(viewerHarness, "TOKEN", token, 1))
	})
	mux.HandleFunc("POST /harness/report", func(w http.ResponseWriter, r *http.Request) {
		var res result
		json.NewDecoder(r.Body).Decode(&res)
		select {
		case got <- res:
			close(done)
		default:
		}
	})
	mux.Handle("/", proxy)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	testenv.OpenPage(t, srv.URL+"/harness", 45*time.Second, done)
	res := <-got
	t.Logf("viewer: %q, %d pixels of the results strip", res.Message, res.Strip)
	if !strings.Contains(res.Message, "inference result") || res.Strip == 0 {
		t.Errorf("the viewer's timeline shows no inference results: %q, %d strip pixels", res.Message, res.Strip)
	}
}
