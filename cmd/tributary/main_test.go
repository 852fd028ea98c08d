package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest/sensor"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/demo"
	"github.com/tributary-io/tributary/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tributary-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tributary")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building tributary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testdataDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

// fragments lists a stream's fragments in the archive at root.
func fragments(t *testing.T, root, stream string) []fragment.Metadata {
	t.Helper()
	res, err := archive.ListFragments(context.Background(), &archive.Local{Root: root}, archive.Layout{}, archive.ListRequest{
		Stream: stream, Start: time.Unix(0, 0), End: time.Now().Add(time.Hour), Limit: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Fragments
}

func checkFragment(t *testing.T, root string, m fragment.Metadata) {
	t.Helper()
	layout := archive.Layout{}
	initKey, _ := layout.InitKey(m.Stream, m.InitHash)
	init, err := os.ReadFile(filepath.Join(root, initKey))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, m.Key))
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.CheckMedia(context.Background(), init, data); err != nil {
		t.Errorf("fragment %d: %v", m.Number, err)
	}
}

func runAgent(t *testing.T, cfgPath string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(binary, "agent", "--config", cfgPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		t.Fatalf("agent did not exit within %v", d)
		return nil
	}
}

// startCamera serves one h264_aac camera named "cam" over TCP until the
// test ends.
func startCamera(t *testing.T) *camsim.Server {
	t.Helper()
	cam := camsim.Presets(testdataDir())["h264_aac"]
	cam.Name = "cam"
	sim := &camsim.Server{Addr: "127.0.0.1:0", TCPOnly: true, Cameras: []camsim.Camera{cam}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// TestSIGTERMMidFragment stops the agent with SIGTERM in the middle of a
// fragment: it exits 0 and the last fragment is valid. A second run
// continues the numbering.
func TestSIGTERMMidFragment(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	sim := startCamera(t)
	dir := t.TempDir()
	archiveDir := filepath.Join(dir, "archive")
	cfgPath := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
http:
  listen: 127.0.0.1:0
archive:
  path: %s
streams:
  - name: cam
    url: %s
    fragment:
      target: 2s
`, dir, archiveDir, sim.URL("cam"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, out := runAgent(t, cfgPath)
	deadline := time.Now().Add(20 * time.Second)
	for len(fragments(t, archiveDir, "cam")) < 2 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no fragments; agent output:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(900 * time.Millisecond) // into the third fragment
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 10*time.Second); err != nil {
		t.Fatalf("agent exited with %v; output:\n%s", err, out.String())
	}
	frags := fragments(t, archiveDir, "cam")
	if len(frags) < 3 {
		t.Fatalf("%d fragments after SIGTERM", len(frags))
	}
	last := frags[len(frags)-1]
	if last.Duration >= 2*time.Second || last.Duration <= 0 {
		t.Errorf("last fragment lasts %v: not the one in progress at SIGTERM", last.Duration)
	}
	for _, m := range frags {
		checkFragment(t, archiveDir, m)
	}

	// a second run continues the numbering and flags the gap
	cmd, out = runAgent(t, cfgPath)
	deadline = time.Now().Add(20 * time.Second)
	for len(fragments(t, archiveDir, "cam")) < len(frags)+1 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no fragments in the second run; output:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := waitExit(t, cmd, 10*time.Second); err != nil {
		t.Fatalf("second run exited with %v", err)
	}
	all := fragments(t, archiveDir, "cam")
	first := all[len(frags)]
	if first.Number != last.Number+1 {
		t.Errorf("second run starts at fragment %d, after %d", first.Number, last.Number)
	}
	if !first.Discontinuity {
		t.Error("first fragment after a restart is not flagged discontinuous")
	}
}

// TestDemo runs the acceptance command: `demo --duration 20s --data DIR`
// exits 0 and DIR holds at least 2 streams x 8 valid fragments.
func TestDemo(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	dir := t.TempDir()
	cmd := exec.Command(binary, "demo", "--duration", "20s", "--data", dir, "--listen", "127.0.0.1:0")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 60*time.Second); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	root := filepath.Join(dir, "archive")
	streams, err := archive.ListStreams(context.Background(), &archive.Local{Root: root}, archive.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) < 3 {
		t.Fatalf("streams %v", streams)
	}
	var cams []string
	for _, s := range streams {
		frags := fragments(t, root, s)
		if s == demo.SensorName {
			// the simulated sensor: 10 readings a second, linked to the
			// first camera
			n := 0
			for _, m := range frags {
				data, err := os.ReadFile(filepath.Join(root, m.Key))
				if err != nil {
					t.Fatal(err)
				}
				rs, err := sensor.ReadFragment(data)
				if err != nil {
					t.Fatalf("sensor fragment %d: %v", m.Number, err)
				}
				n += len(rs)
			}
			var info archive.StreamInfo
			key, _ := archive.Layout{}.StreamKey(s)
			b, err := os.ReadFile(filepath.Join(root, key))
			if err == nil {
				err = json.Unmarshal(b, &info)
			}
			if n < 120 || len(frags) < 5 || err != nil || info.Link != demo.Cameras[0].Name {
				t.Errorf("sensor: %d readings in %d fragments, stream info %+v (%v)", n, len(frags), info, err)
			}
			continue
		}
		cams = append(cams, s)
		if len(frags) < 8 {
			t.Errorf("%s: %d fragments, want at least 8", s, len(frags))
		}
		for _, m := range frags {
			checkFragment(t, root, m)
		}
	}
	if !strings.Contains(out.String(), "fragments are in") {
		t.Errorf("demo did not say where the files are:\n%s", out.String())
	}
	// the example model's results, out of the box
	rs := &inference.Records{Store: &archive.Local{Root: root}}
	for _, s := range cams {
		frags := fragments(t, root, s)
		recs, err := rs.List(context.Background(), archive.RecordResult, s, "activity", frags[0].ProducerStart, time.Now().Add(time.Minute), 0)
		if err != nil || len(recs) < len(frags)-2 {
			t.Errorf("%s: %d results for %d fragments (%v)", s, len(recs), len(frags), err)
		}
	}
}

// TestPowerLoss kills the agent (kill -9) at 20 random moments while it
// records and uploads to versitygw, restarting it each time. Afterwards no
// object is damaged, none is duplicated, and the only gaps are the
// fragments in progress at the kills, each counted.
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	gw := testenv.StartVersityGW(t)
	sim := startCamera(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
http: {listen: 127.0.0.1:0}
archive:
  type: s3
  s3: {endpoint: %s, bucket: tributary, access_key: %s, secret_key: %s, create_bucket: true}
streams:
  - {name: cam, url: "%s", transport: tcp}
`, dir, gw.Endpoint, gw.AccessKey, gw.SecretKey, sim.URL("cam"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const kills = 20
	var outs []*strings.Builder
	var killedAt []time.Time
	for i := 0; i < kills; i++ {
		cmd, out := runAgent(t, cfgPath)
		outs = append(outs, out)
		d := time.Duration(1500+rng.IntN(3500)) * time.Millisecond
		time.Sleep(d)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killedAt = append(killedAt, time.Now())
		_ = cmd.Wait()
		if strings.Contains(out.String(), "panic") {
			t.Fatalf("run %d panicked:\n%s", i, out.String())
		}
	}
	// a last run uploads what the spool still holds and stops cleanly
	cmd, out := runAgent(t, cfgPath)
	time.Sleep(8 * time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd, 30*time.Second); err != nil {
		t.Fatalf("last run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "fragment it had in progress is lost") {
		t.Error("the last run did not count the fragment in progress at the previous kill")
	}

	store, err := archive.NewS3(archive.S3Config{Endpoint: gw.Endpoint, Bucket: "tributary", AccessKey: gw.AccessKey, SecretKey: gw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	res, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{
		Stream: "cam", Start: time.Unix(0, 0), End: time.Now().Add(time.Hour), Limit: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	frags := res.Fragments
	if len(frags) < kills/2 {
		t.Fatalf("%d fragments after %d runs", len(frags), kills+1)
	}
	seen := map[uint64]bool{}
	gaps := 0
	var maxLost time.Duration
	for i, m := range frags {
		if seen[m.Number] {
			t.Errorf("fragment %d is in the bucket twice", m.Number)
		}
		seen[m.Number] = true
		obj, _, err := store.Get(context.Background(), m.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(obj)
		obj.Close()
		initKey, _ := archive.Layout{}.InitKey("cam", m.InitHash)
		io2, _, err := store.Get(context.Background(), initKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		init, _ := io.ReadAll(io2)
		io2.Close()
		if err := testenv.CheckMedia(context.Background(), init, data); err != nil {
			t.Errorf("fragment %d is damaged: %v", m.Number, err)
		}
		if i == 0 {
			continue
		}
		prev := frags[i-1]
		if m.Number <= prev.Number {
			t.Errorf("fragment %d after %d", m.Number, prev.Number)
		}
		gap := m.ProducerStart.Sub(prev.ProducerEnd)
		if gap > 50*time.Millisecond {
			gaps++
			if !m.Discontinuity {
				t.Errorf("gap of %v before fragment %d, which is not flagged discontinuous", gap, m.Number)
			}
			// Nothing stored is lost: before each kill in the gap, what is
			// missing is only the fragment in progress (at most the 2 s
			// target) and one just closed whose write the kill cut.
			for _, k := range killedAt {
				if k.After(prev.ProducerEnd) && !k.After(m.ProducerStart.Add(time.Second)) {
					lost := k.Sub(prev.ProducerEnd)
					maxLost = max(maxLost, lost)
					if lost > 4500*time.Millisecond {
						t.Errorf("the kill at %v lost %v before it (fragment %d ends at %v)", k.Format("15:04:05.000"), lost, prev.Number, prev.ProducerEnd.Format("15:04:05.000"))
					}
					break
				}
			}
		} else if m.Discontinuity && gap < -50*time.Millisecond {
			t.Errorf("fragment %d overlaps the previous by %v", m.Number, -gap)
		}
	}
	if gaps > kills {
		t.Errorf("%d gaps for %d kills", gaps, kills)
	}
	all := out.String()
	for _, o := range outs {
		all += o.String()
	}
	t.Logf("%d kills: %d fragments in the bucket, all valid, no duplicate, %d gaps, at most %v of media before a kill lost; counted: %d fragments in progress, %d cut short",
		kills, len(frags), gaps, maxLost.Round(time.Millisecond), strings.Count(all, "fragment it had in progress is lost"), strings.Count(all, "cut short by a crash"))
}

// TestDemoS3 runs the demo against a real S3 endpoint (versitygw):
// `demo --archive s3://BUCKET?endpoint=…&create_bucket=true` with the
// credentials in the environment.
func TestDemoS3(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	gw := testenv.StartVersityGW(t)
	cmd := exec.Command(binary, "demo", "--duration", "14s", "--data", t.TempDir(), "--listen", "127.0.0.1:0",
		"--archive", "s3://demo/site-a?endpoint="+gw.Endpoint+"&create_bucket=true")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+gw.SecretKey)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 60*time.Second); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	store, err := archive.NewS3(archive.S3Config{Endpoint: gw.Endpoint, Bucket: "demo", AccessKey: gw.AccessKey, SecretKey: gw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	layout := archive.Layout{Prefix: "site-a"}
	streams, err := archive.ListStreams(context.Background(), store, layout)
	if err != nil || len(streams) != 3 {
		t.Fatalf("streams %v %v", streams, err)
	}
	readings := 0
	defer func() {
		if readings < 80 { // 14 s at 10 Hz, less the last window
			t.Errorf("%d sensor readings in the bucket", readings)
		}
	}()
	for _, s := range streams {
		res, err := archive.ListFragments(context.Background(), store, layout, archive.ListRequest{Stream: s, Start: time.Unix(0, 0), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Fragments) < 4 {
			t.Errorf("%s: %d fragments in the bucket", s, len(res.Fragments))
		}
		for _, m := range res.Fragments {
			data := getAll(t, store, m.Key)
			if s == demo.SensorName {
				// sensor fragments go through the spool like video
				rs, err := sensor.ReadFragment(data)
				if err != nil || len(rs) == 0 {
					t.Errorf("sensor fragment %d: %d readings, %v", m.Number, len(rs), err)
				}
				readings += len(rs)
				// and their NDJSON beside them
				nk, _ := archive.ReadingsKey(m.Key)
				if want, _ := sensor.NDJSON(data); !bytes.Equal(getAll(t, store, nk), want) {
					t.Errorf("sensor fragment %d: its NDJSON readings differ", m.Number)
				}
				continue
			}
			initKey, _ := layout.InitKey(s, m.InitHash)
			if err := testenv.CheckMedia(context.Background(), getAll(t, store, initKey), data); err != nil {
				t.Errorf("%s fragment %d: %v", s, m.Number, err)
			}
		}
	}
	if !strings.Contains(out.String(), "fragments are in s3://demo/site-a/streams/") {
		t.Errorf("the demo did not say where the fragments are")
	}
}

func getAll(t *testing.T, store archive.Store, key string) []byte {
	t.Helper()
	rc, _, err := store.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeInstances: two `tributary serve` over one S3 bucket (versitygw)
// answer the same playlists, streams and fragment lists.
func TestServeInstances(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	gw := testenv.StartVersityGW(t)
	sim := startCamera(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: %s
http: {listen: 127.0.0.1:0}
archive:
  type: s3
  s3: {endpoint: %s, bucket: shared, access_key: %s, secret_key: %s, create_bucket: true}
streams:
  - {name: cam, url: "%s", transport: tcp}
`, dir, gw.Endpoint, gw.AccessKey, gw.SecretKey, sim.URL("cam"))), 0o644)
	agent, out := runAgent(t, cfgPath)
	time.Sleep(9 * time.Second)
	_ = agent.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, agent, 30*time.Second); err != nil {
		t.Fatalf("agent: %v\n%s", err, out.String())
	}
	var bases []string
	for i := 0; i < 2; i++ {
		port := testenv.FreePort(t)
		cmd := exec.Command(binary, "serve", "--archive", "s3://shared?endpoint="+gw.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--token", "tok")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+gw.SecretKey,
			"TRIBUTARY_SIGNING_KEY=0123456789abcdef0123456789abcdef")
		var so strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &so
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := testenv.WaitPort(ctx, fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Fatalf("serve: %v\n%s", err, so.String())
		}
		cancel()
		bases = append(bases, fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	end := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	for _, path := range []string{"/v1/streams/cam/hls/media.m3u8?mode=on_demand&start=" + start, "/v1/streams/cam/fragments",
		"/v1/streams/cam/timeline?start=" + start + "&end=" + end} {
		var bodies []string
		for _, b := range bases {
			req, _ := http.NewRequest(http.MethodGet, b+path, nil)
			req.Header.Set("Authorization", "Bearer tok")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, res.StatusCode, body)
			}
			bodies = append(bodies, string(body))
		}
		if bodies[0] != bodies[1] {
			t.Errorf("%s differs between the instances:\n%s\n---\n%s", path, bodies[0], bodies[1])
		}
		if strings.Contains(path, "m3u8") && strings.Count(bodies[0], "#EXTINF") < 3 {
			t.Errorf("playlist:\n%s", bodies[0])
		}
	}
	// an on-demand playlist served by one instance plays through the other
	ffmpegPlaylist := bases[1] + "/v1/streams/cam/hls/master.m3u8?mode=on_demand&start=" + start
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-xerror", "-err_detect", "explode", "-headers", "Authorization: Bearer tok\r\n", "-i", ffmpegPlaylist, "-f", "null", "-")
	if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
		t.Errorf("ffmpeg over serve: %v %s", err, b)
	}
}

// TestSensorKill9: MQTT readings at QoS 1 survive kill -9 of the agent.
// A publisher sends 3000 readings (300/s) and waits for each
// acknowledgement; the agent is killed twice while it runs and started
// again on the same data. Every reading the broker acknowledged ends up
// archived, once: the agent acknowledges a reading only once it is in its
// journal, and replays at start what the journal holds that the archive
// does not.
func TestSensorKill9(t *testing.T) {
	t.Parallel()
	broker := testenv.StartMosquitto(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
http: {listen: off}
log: {level: warn}
streams:
  - name: plant
    sensor:
      mqtt: {broker: %q, topics: ["plant/#"], client_id: kill9-agent}
      timestamp: {field: ts}
      period: 1s
      window: 1s
`, filepath.Join(dir, "data"), broker.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	agent, out := runAgent(t, cfgPath)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("kill9-pub").SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	time.Sleep(time.Second) // the agent subscribes
	const n = 3000
	start := time.Now()
	kills := 0
	for i := 0; i < n; i++ {
		if at := start.Add(time.Duration(i) * time.Second / 300); time.Until(at) > 0 {
			time.Sleep(time.Until(at))
		}
		if i == n/3 || i == 2*n/3 {
			agent.Process.Kill() // kill -9
			agent.Wait()
			kills++
			agent, out = runAgent(t, cfgPath)
		}
		msg := fmt.Sprintf(`{"ts":%d,"seq":%d}`, time.Now().UnixNano(), i)
		for try := 0; ; try++ {
			tok := pub.Publish("plant/a", 1, false, msg)
			if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
				break
			}
			if try == 10 {
				t.Fatalf("publish %d: %v", i, tok.Error())
			}
		}
	}
	time.Sleep(4 * time.Second) // the last readings reach the agent and its fragments close
	agent.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, agent, 30*time.Second); err != nil {
		t.Fatalf("agent: %v\n%s", err, out.String())
	}
	root := filepath.Join(dir, "data", "archive")
	seen := make([]int, n)
	late := 0
	for _, m := range fragments(t, root, "plant") {
		data, err := os.ReadFile(filepath.Join(root, m.Key))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := sensor.ReadFragment(data)
		if err != nil {
			t.Fatalf("fragment %d: %v", m.Number, err)
		}
		// its NDJSON beside it, whenever the kill came (the journal's
		// replay writes what a kill between the two left out)
		nk, _ := archive.ReadingsKey(m.Key)
		if nd, err := os.ReadFile(filepath.Join(root, nk)); err != nil || !bytes.Equal(nd, sensor.AppendNDJSON(nil, rs)) {
			t.Errorf("fragment %d: NDJSON readings %v", m.Number, err)
		}
		for _, r := range rs {
			var v struct{ Seq int }
			if json.Unmarshal(r.Value, &v) != nil || v.Seq < 0 || v.Seq >= n {
				t.Fatalf("reading %s", r.Value)
			}
			seen[v.Seq]++
			if r.Late {
				late++
			}
		}
	}
	missing, twice := 0, 0
	var gaps []int
	for i, c := range seen {
		if c == 0 {
			missing++
			if len(gaps) < 10 {
				gaps = append(gaps, i)
			}
		}
		if c > 1 {
			twice++
		}
	}
	t.Logf("%d readings, %d kills: %d missing, %d stored twice, %d stored late", n, kills, missing, twice, late)
	if !strings.Contains(out.String(), "replayed from the journal") && kills > 0 {
		// the last start found the journal of the killed run
		t.Errorf("the agent did not replay its journal after a kill:\n%s", out.String())
	}
	if missing > 0 || twice > 0 {
		t.Errorf("%d readings lost (the first: %v), %d stored twice", missing, gaps, twice)
	}
}
