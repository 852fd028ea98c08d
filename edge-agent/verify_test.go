package edgeagent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/testenv"
)

// repoTestdata is the repository's testdata directory.
func repoTestdata(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startAgent starts an agent over a fresh data directory.
func startAgent(t testing.TB, streams ...edgeagent.StreamConfig) (*edgeagent.Agent, *archive.Local) {
	t.Helper()
	return startAgentWith(t, &edgeagent.Config{Streams: streams})
}

// startAgentWith starts an agent of cfg with its data in a temporary
// directory and its HTTP server on a free port, until the test ends.
func startAgentWith(t testing.TB, cfg *edgeagent.Config) (*edgeagent.Agent, *archive.Local) {
	t.Helper()
	cfg.DataDir, cfg.HTTP.Listen = t.TempDir(), "127.0.0.1:0"
	cfg, err := edgeagent.FinishConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store := &archive.Local{Root: cfg.Archive.Path}
	a := &edgeagent.Agent{Config: cfg, Logger: testLogger(t), Store: store}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, store
}

// startCamera serves the h264_aac preset as camera name over TCP until the
// test ends.
func startCamera(t testing.TB, name string) *camsim.Server {
	t.Helper()
	cam := camsim.Presets(repoTestdata(t))["h264_aac"]
	cam.Name = name
	sim := &camsim.Server{Addr: "127.0.0.1:0", TCPOnly: true, Cameras: []camsim.Camera{cam}, Logger: testLogger(t)}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func statusOf(a *edgeagent.Agent, name string) edgeagent.StreamStatus {
	for _, s := range a.Status() {
		if s.Name == name {
			return s
		}
	}
	return edgeagent.StreamStatus{}
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedFragment is a fragment read back from the archive.
type storedFragment struct {
	meta   fragment.Metadata
	data   []byte
	init   []byte
	tracks []fragment.Track
	parsed *fragment.Fragment
}

func readObject(t testing.TB, store archive.Store, key string) []byte {
	t.Helper()
	rc, _, err := store.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listStream returns every fragment of a stream, in order, read back and
// parsed.
func listStream(t testing.TB, store archive.Store, stream string) []storedFragment {
	t.Helper()
	layout := archive.Layout{}
	var out []storedFragment
	inits := map[string][]byte{}
	token := ""
	for {
		res, err := archive.ListFragments(context.Background(), store, layout, archive.ListRequest{
			Stream: stream, Start: time.Unix(0, 0), End: time.Now().Add(time.Hour), Limit: 1000, Token: token,
		})
		if err != nil {
			t.Fatalf("ListFragments(%s): %v", stream, err)
		}
		for _, m := range res.Fragments {
			init, ok := inits[m.InitHash]
			if !ok {
				key, err := layout.InitKey(stream, m.InitHash)
				if err != nil {
					t.Fatal(err)
				}
				init = readObject(t, store, key)
				inits[m.InitHash] = init
			}
			tracks, err := fragment.ParseInit(init)
			if err != nil {
				t.Fatalf("%s: init %s: %v", stream, m.InitHash, err)
			}
			data := readObject(t, store, m.Key)
			parsed, err := fragment.ParseFMP4(data, tracks)
			if err != nil {
				t.Fatalf("%s: fragment %d: %v", stream, m.Number, err)
			}
			out = append(out, storedFragment{meta: m, data: data, init: init, tracks: tracks, parsed: parsed})
		}
		if res.NextToken == "" {
			break
		}
		token = res.NextToken
	}
	return out
}

type checks struct {
	target     time.Duration
	gop        time.Duration
	frame      time.Duration
	minFrags   int
	videoCodec fragment.Codec
	audioCodec fragment.Codec // "" for none
	// allowDiscontinuity lists fragment numbers that may be discontinuous.
	allowDiscontinuity map[uint64]bool
}

// verify runs every per-fragment check of the issue on a stream's
// fragments and returns them.
func verify(t *testing.T, store archive.Store, stream string, c checks) []storedFragment {
	t.Helper()
	testenv.RequireFFmpeg(t)
	frags := listStream(t, store, stream)
	if len(frags) < c.minFrags {
		t.Fatalf("%s: %d fragments, want at least %d", stream, len(frags), c.minFrags)
	}
	for i, f := range frags {
		m := f.meta
		if err := testenv.CheckMedia(context.Background(), f.init, f.data); err != nil {
			t.Errorf("%s fragment %d: %v", stream, m.Number, err)
		}
		if sum := sha256hex(f.data); sum != m.SHA256 {
			t.Errorf("%s fragment %d: sha256 %s, metadata says %s", stream, m.Number, sum, m.SHA256)
		}
		if int64(len(f.data)) != m.Size {
			t.Errorf("%s fragment %d: size %d, metadata says %d", stream, m.Number, len(f.data), m.Size)
		}
		var video, audio int = -1, -1
		for ti, tr := range f.tracks {
			if tr.Kind == fragment.KindVideo && video < 0 {
				video = ti
			}
			if tr.Kind == fragment.KindAudio && audio < 0 {
				audio = ti
			}
		}
		if video < 0 || f.tracks[video].Codec != c.videoCodec {
			t.Fatalf("%s: tracks %v, want video %s", stream, f.tracks, c.videoCodec)
		}
		if c.audioCodec != "" && (audio < 0 || f.tracks[audio].Codec != c.audioCodec) {
			t.Fatalf("%s: tracks %v, want audio %s", stream, f.tracks, c.audioCodec)
		}
		last := i == len(frags)-1
		if c.audioCodec != "" && len(f.parsed.Samples[audio]) == 0 && (!last || m.Duration > 200*time.Millisecond) {
			t.Errorf("%s fragment %d: no audio samples", stream, m.Number)
		}
		vs := f.parsed.Samples[video]
		if len(vs) == 0 || !vs[0].Keyframe {
			t.Errorf("%s fragment %d does not start with a keyframe", stream, m.Number)
		}
		if m.Keyframes < 1 || m.SampleCount != f.parsed.SampleCount {
			t.Errorf("%s fragment %d: keyframes %d, samples %d (parsed %d)", stream, m.Number, m.Keyframes, m.SampleCount, f.parsed.SampleCount)
		}
		// the last fragment, and one closed by a session's end, may be short
		sessionEnd := !last && frags[i+1].meta.Discontinuity
		if !last && !sessionEnd && (m.Duration < c.target-c.gop || m.Duration > c.target+c.gop) {
			t.Errorf("%s fragment %d lasts %v, want %v ± %v", stream, m.Number, m.Duration, c.target, c.gop)
		}
		if m.ProducerEnd.Before(m.ProducerStart) || m.ServerTime.IsZero() || m.Container != fragment.ContainerFMP4 {
			t.Errorf("%s fragment %d: bad metadata %+v", stream, m.Number, m)
		}
		if i == 0 {
			continue
		}
		prev := frags[i-1].meta
		if m.Number != prev.Number+1 {
			t.Errorf("%s: fragment %d follows %d", stream, m.Number, prev.Number)
		}
		if !m.ProducerStart.After(prev.ProducerStart) {
			t.Errorf("%s: fragment %d starts at %v, not after %v", stream, m.Number, m.ProducerStart, prev.ProducerStart)
		}
		gap := m.ProducerStart.Sub(prev.ProducerEnd)
		if !c.allowDiscontinuity[m.Number] {
			if gap < -c.frame || gap > c.frame {
				t.Errorf("%s: fragment %d starts %v after the end of %d (more than a frame)", stream, m.Number, gap, prev.Number)
			}
			if m.Discontinuity {
				t.Errorf("%s: fragment %d flagged discontinuous", stream, m.Number)
			}
		}
	}
	return frags
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func streamCfg(name, url string) edgeagent.StreamConfig {
	return edgeagent.StreamConfig{Name: name, URL: url, Transport: "tcp"}
}

// bFrames counts the video samples whose PTS differs from their DTS.
func bFrames(frags []storedFragment) int {
	n := 0
	for _, f := range frags {
		for _, s := range f.parsed.Samples[0] {
			if s.PTSOffset != 0 {
				n++
			}
		}
	}
	return n
}

// verifyMKV checks a stream recorded as MKV: every fragment is a
// self-contained file ffmpeg decodes strictly, numbers are consecutive and
// producer times increase.
func verifyMKV(t *testing.T, store archive.Store, stream string, minFrags int) {
	t.Helper()
	res, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{Stream: stream, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fragments) < minFrags {
		t.Fatalf("%s: %d fragments", stream, len(res.Fragments))
	}
	for i, m := range res.Fragments {
		if m.Container != fragment.ContainerMKV || !strings.HasSuffix(m.Key, ".mkv") {
			t.Errorf("%s fragment %d: container %s, key %s", stream, m.Number, m.Container, m.Key)
		}
		data := readObject(t, store, m.Key)
		if err := testenv.CheckMedia(context.Background(), data); err != nil {
			t.Errorf("%s fragment %d: %v", stream, m.Number, err)
		}
		if sha256hex(data) != m.SHA256 {
			t.Errorf("%s fragment %d: sha256 mismatch", stream, m.Number)
		}
		if i > 0 && (m.Number != res.Fragments[i-1].Number+1 || !m.ProducerStart.After(res.Fragments[i-1].ProducerStart)) {
			t.Errorf("%s: fragment %d after %d", stream, m.Number, res.Fragments[i-1].Number)
		}
	}
}
