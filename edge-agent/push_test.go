package edgeagent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest/putmedia"
	"github.com/tributary-io/tributary/internal/testenv"
)

const pushToken = "push-secret-123"

// startPushAgent starts an agent that accepts pushes with pushToken.
func startPushAgent(t testing.TB, mutate func(*edgeagent.Config), streams ...edgeagent.StreamConfig) (*edgeagent.Agent, *archive.Local) {
	t.Helper()
	cfg := &edgeagent.Config{DataDir: t.TempDir(), HTTP: edgeagent.HTTPConfig{Listen: "127.0.0.1:0"}, Streams: streams,
		PutMedia: edgeagent.PutMediaConfig{Tokens: []string{pushToken}}}
	if mutate != nil {
		mutate(cfg)
	}
	cfg, err := edgeagent.FinishConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store := &archive.Local{Root: cfg.Archive.Path}
	a := &edgeagent.Agent{Config: cfg, Logger: testLogger(t)}
	if cfg.Archive.Type == "local" {
		a.Store = store
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, store
}

func pushURL(a *edgeagent.Agent, stream string) string {
	return "http://" + a.Addr() + "/v1/streams/" + stream + "/putmedia"
}

// push POSTs body and collects the acknowledgements until the response ends.
func push(t testing.TB, url, token string, body io.Reader, header map[string]string) (int, []putmedia.Ack, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, nil, string(b)
	}
	var acks []putmedia.Ack
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var a putmedia.Ack
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("ack %q: %v", sc.Text(), err)
		}
		acks = append(acks, a)
	}
	return res.StatusCode, acks, ""
}

func countAcks(acks []putmedia.Ack) map[string]int {
	m := map[string]int{}
	for _, a := range acks {
		m[a.EventType]++
	}
	return m
}

// mkvClip remuxes a testdata clip to a Matroska file once: ffmpeg's
// Matroska muxer needs the AAC config in its header, which an MPEG-TS
// input gives only once the first frames are read.
func mkvClip(t testing.TB, clip string) string {
	t.Helper()
	testenv.RequireFFmpeg(t)
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(clip, ".ts")+".mkv")
	if b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", filepath.Join(repoTestdata(t), clip), "-c", "copy", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// ffmpegMKV starts ffmpeg writing a clip as Matroska to its stdout, in real time.
func ffmpegMKV(t testing.TB, clip string, seconds int, realtime bool) io.Reader {
	t.Helper()
	src := mkvClip(t, clip)
	args := []string{"-nostdin", "-v", "error"}
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-stream_loop", "-1", "-i", src, "-t", fmt.Sprint(seconds), "-c", "copy", "-f", "matroska", "-")
	cmd := exec.Command("ffmpeg", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return out
}

// TestPutMediaFFmpeg: ffmpeg pushes with -method POST, as a producer would.
func TestPutMediaFFmpeg(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	a, store := startPushAgent(t, nil)
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-re", "-i", mkvClip(t, "h264_aac.ts"), "-t", "7",
		"-c", "copy", "-f", "matroska", "-method", "POST", "-headers", "Authorization: Bearer "+pushToken+"\r\n", pushURL(a, "ffpush"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the last fragment", func() bool { return statusOf(a, "ffpush").State == edgeagent.StateWaiting })
	frags := checkStored(t, store, "ffpush", 3)
	for i := 1; i < len(frags); i++ {
		if frags[i].Number != frags[i-1].Number+1 {
			t.Errorf("fragment %d after %d", frags[i].Number, frags[i-1].Number)
		}
	}
}

// TestPutMediaAcks reads the acknowledgements of a push: BUFFERING,
// RECEIVED and PERSISTED for every fragment, with numbers that match the
// archive, and IDLE keep-alives.
func TestPutMediaAcks(t *testing.T) {
	t.Parallel()
	a, store := startPushAgent(t, nil)
	code, acks, body := push(t, pushURL(a, "acked"), pushToken, ffmpegMKV(t, "h264_bframes_aac.ts", 7, true), nil)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	n := countAcks(acks)
	t.Logf("acks: %v", n)
	frags := checkStored(t, store, "acked", 3)
	if n[putmedia.EventReceived] != len(frags) || n[putmedia.EventPersisted] != len(frags) || n[putmedia.EventBuffering] == 0 || n[putmedia.EventError] != 0 {
		t.Errorf("acks %v for %d fragments", n, len(frags))
	}
	persisted := map[string]bool{}
	for _, ack := range acks {
		if ack.EventType == putmedia.EventPersisted {
			persisted[ack.FragmentNumber] = true
		}
	}
	for _, m := range frags {
		if !persisted[fmt.Sprint(m.Number)] {
			t.Errorf("fragment %d was not acknowledged PERSISTED", m.Number)
		}
	}
}

// TestPutMediaGStreamer pushes a GStreamer matroskamux stream with curl.
func TestPutMediaGStreamer(t *testing.T) {
	t.Parallel()
	testenv.RequireGStreamer(t)
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.Missing(t, "curl", "apt-get install -y curl")
	}
	a, store := startPushAgent(t, nil)
	script := fmt.Sprintf(`gst-launch-1.0 -q videotestsrc is-live=true num-buffers=210 ! video/x-raw,width=640,height=360,framerate=30/1 ! `+
		`x264enc tune=zerolatency key-int-max=30 bframes=0 ! h264parse ! matroskamux streamable=true ! fdsink fd=1 | `+
		`curl -sS -N -T - -X POST -H "Authorization: Bearer %s" %s`, pushToken, pushURL(a, "gstpush"))
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var acks []putmedia.Ack
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ack putmedia.Ack
		if json.Unmarshal([]byte(line), &ack) == nil {
			acks = append(acks, ack)
		}
	}
	frags := checkStored(t, store, "gstpush", 3)
	if n := countAcks(acks); n[putmedia.EventPersisted] != len(frags) {
		t.Errorf("acks %v for %d fragments; curl said:\n%s", n, len(frags), out)
	}
}

// TestPutMediaBadInput: every violation gets a clear error, and a good
// producer pushing at the same time is not disturbed.
func TestPutMediaBadInput(t *testing.T) {
	t.Parallel()
	a, store := startPushAgent(t, func(c *edgeagent.Config) { c.PutMedia.MaxRate = 64 << 10 },
		edgeagent.StreamConfig{Name: "camera", URL: "rtsp://127.0.0.1:1/none"})
	var wg sync.WaitGroup
	wg.Add(1)
	var goodAcks []putmedia.Ack
	go func() {
		defer wg.Done()
		_, goodAcks, _ = push(t, pushURL(a, "good"), pushToken, ffmpegMKV(t, "h264_aac.ts", 6, true), nil)
	}()
	time.Sleep(500 * time.Millisecond)

	wantStatus := func(name string, code int, wantCode int, body string) {
		if code != wantCode {
			t.Errorf("%s: status %d (%s), want %d", name, code, body, wantCode)
		}
	}
	code, _, body := push(t, pushURL(a, "x"), "", strings.NewReader("abc"), nil)
	wantStatus("no token", code, 401, body)
	code, _, body = push(t, pushURL(a, "x"), "wrong", strings.NewReader("abc"), nil)
	wantStatus("wrong token", code, 401, body)
	code, _, body = push(t, pushURL(a, "camera"), pushToken, strings.NewReader("abc"), nil)
	wantStatus("a pulled stream", code, 409, body)
	code, _, body = push(t, pushURL(a, "good"), pushToken, strings.NewReader("abc"), nil)
	wantStatus("a second producer", code, 409, body)
	code, _, body = push(t, pushURL(a, "x"), pushToken, strings.NewReader("abc"), map[string]string{"X-Amzn-Fragment-Timecode-Type": "SIDEWAYS"})
	wantStatus("a bad header", code, 400, body)

	errorOf := func(name string, acks []putmedia.Ack, want putmedia.ErrorCode) {
		for _, ack := range acks {
			if ack.EventType == putmedia.EventError && ack.ErrorID == want.ID && ack.ErrorCode == want.Name && ack.Message != "" {
				t.Logf("%s: %d %s: %s", name, ack.ErrorID, ack.ErrorCode, ack.Message)
				return
			}
		}
		t.Errorf("%s: acks %+v, want ERROR %d", name, acks, want.ID)
	}
	_, acks, _ := push(t, pushURL(a, "garbage"), pushToken, bytes.NewReader(bytes.Repeat([]byte("not matroska "), 1000)), nil)
	errorOf("garbage", acks, putmedia.CodeInvalidMKV)

	// four tracks: more than the three allowed
	four := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", mkvClip(t, "h264_aac.ts"), "-t", "2",
		"-map", "0:v", "-map", "0:a", "-map", "0:a", "-map", "0:a", "-c", "copy", "-f", "matroska", "-")
	fourMKV, err := four.Output()
	if err != nil {
		t.Fatal(err)
	}
	_, acks, _ = push(t, pushURL(a, "fourtracks"), pushToken, bytes.NewReader(fourMKV), nil)
	errorOf("four tracks", acks, putmedia.CodeTooManyTracks)

	// cluster timecodes that go back in time: two segments, the second earlier
	_, frags := pushFragments(t, 2)
	var back []byte
	for _, i := range []int{1, 0} {
		b, err := fragment.AppendMKV(nil, frags[i])
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, b...)
	}
	_, acks, _ = push(t, pushURL(a, "backwards"), pushToken, bytes.NewReader(back), nil)
	errorOf("timecode lower", acks, putmedia.CodeTimecodeLower)

	// faster than 64 KiB/s
	_, acks, _ = push(t, pushURL(a, "fast"), pushToken, ffmpegMKV(t, "h264_aac.ts", 30, false), nil)
	errorOf("rate", acks, putmedia.CodeRateExceeded)

	wg.Wait()
	n := countAcks(goodAcks)
	if n[putmedia.EventError] != 0 || n[putmedia.EventPersisted] < 2 {
		t.Errorf("the good producer was disturbed: %v %+v", n, goodAcks)
	}
	checkStored(t, store, "good", 2)
}

// pushFragments makes n MKV-ready fragments from the camsim H.264 clip by
// recording it briefly through an agent.
func pushFragments(t *testing.T, n int) ([]fragment.Track, []*fragment.Fragment) {
	t.Helper()
	sim := oneCamera(t, "src", "h264_aac")
	a, store := startAgent(t, streamCfg("src", sim.URL("src")))
	waitFor(t, 20*time.Second, "fragments", func() bool { return statusOf(a, "src").Counters.Fragments >= uint64(n) })
	a.Close()
	var out []*fragment.Fragment
	var tracks []fragment.Track
	for _, f := range listStream(t, store, "src")[:n] {
		f.parsed.Metadata = f.meta
		f.parsed.InitHash = f.meta.InitHash
		out = append(out, f.parsed)
		tracks = f.tracks
	}
	return tracks, out
}

// TestPutMediaPersistedOnArchive: with persisted_on: archive, PERSISTED
// means the fragment is in the bucket (versitygw), not only in the spool.
func TestPutMediaPersistedOnArchive(t *testing.T) {
	t.Parallel()
	gw := testenv.StartVersityGW(t)
	a, _ := startPushAgent(t, func(c *edgeagent.Config) {
		c.Archive = s3Config(gw, "pushed")
		c.PutMedia.PersistedOn = "archive"
	})
	store := s3Store(t, gw, "pushed")
	url := pushURL(a, "cam")
	req, _ := http.NewRequest(http.MethodPost, url, ffmpegMKV(t, "h264_aac.ts", 6, true))
	req.Header.Set("Authorization", "Bearer "+pushToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	persisted := 0
	for sc.Scan() {
		var ack putmedia.Ack
		if json.Unmarshal(sc.Bytes(), &ack) != nil || ack.EventType != putmedia.EventPersisted {
			continue
		}
		persisted++
		// the fragment is in the bucket when PERSISTED says so
		res, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{Stream: "cam", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range res.Fragments {
			found = found || fmt.Sprint(m.Number) == ack.FragmentNumber
		}
		if !found {
			t.Errorf("fragment %s acknowledged PERSISTED but not in the bucket", ack.FragmentNumber)
		}
	}
	if persisted < 2 {
		t.Errorf("%d PERSISTED acks", persisted)
	}
}
