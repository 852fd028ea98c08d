// Package demo runs Tributary's main job on embedded defaults: synthetic
// cameras, the edge agent and a local-directory archive, with progress
// printed as it goes. It is what `tributary demo` runs.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tributary-io/tributary"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest/sensor"
	"github.com/tributary-io/tributary/internal/camsim"
)

// Options of a demo run.
type Options struct {
	// DataDir holds the archive, the agent's state and the clips. Default
	// "./tributary-data".
	DataDir string
	// Duration stops the demo by itself when positive. Default 0: run
	// until ctx ends (Ctrl-C).
	Duration time.Duration
	// Listen is the HTTP address of the agent. Default "127.0.0.1:8080";
	// when it is taken, a free port is used instead.
	Listen string
	// Progress is how often progress is printed. Default 5 s.
	Progress time.Duration
	// Out receives progress lines. Default os.Stdout.
	Out io.Writer
	// Logger receives the components' logs. Default: warnings and errors
	// to stderr.
	Logger *slog.Logger
	// Archive is where fragments go: a directory or an s3:// URL (see
	// edgeagent.ParseArchiveURL). Default "<DataDir>/archive".
	Archive string
}

// Cameras of the demo: name and camsim preset.
var Cameras = []struct{ Name, Preset string }{
	{"front-door", "h264_aac"},
	{"backyard", "h265_aac"},
}

// Run runs the demo until ctx ends or Duration passes.
func Run(ctx context.Context, o Options) error {
	if o.DataDir == "" {
		o.DataDir = "./tributary-data"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.Progress <= 0 {
		o.Progress = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	data, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	clips, err := tributary.ExtractClips(filepath.Join(data, "clips"))
	if err != nil {
		return err
	}
	presets := camsim.Presets(clips)
	var cams []camsim.Camera
	for _, c := range Cameras {
		cam := presets[c.Preset]
		cam.Name = c.Name
		cams = append(cams, cam)
	}
	sim := &camsim.Server{Addr: "127.0.0.1:0", TCPOnly: true, Cameras: cams, Logger: o.Logger.With("component", "camsim")}
	if err := sim.Start(); err != nil {
		return fmt.Errorf("synthetic cameras: %w", err)
	}
	defer sim.Close()

	listen := o.Listen
	if ln, err := net.Listen("tcp", listen); err != nil {
		fmt.Fprintf(o.Out, "%s is taken; using a free port\n", listen)
		listen = "127.0.0.1:0"
	} else {
		ln.Close()
	}
	arch := edgeagent.ArchiveConfig{Type: "local", Path: filepath.Join(data, "archive")}
	if o.Archive != "" {
		if arch, err = edgeagent.ParseArchiveURL(o.Archive); err != nil {
			return err
		}
	}
	// the example model endpoint (SageMaker container contract), with a
	// hook that sends it every fragment
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("example model: %w", err)
	}
	model := &http.Server{Handler: &inference.ExampleModel{}, ReadHeaderTimeout: 10 * time.Second}
	go model.Serve(mln)
	defer model.Close()
	modelURL := "http://" + mln.Addr().String()
	cfg := &edgeagent.Config{
		DataDir: data,
		HTTP:    edgeagent.HTTPConfig{Listen: listen},
		Archive: arch,
		Inference: edgeagent.InferenceConfig{Hooks: []inference.Hook{
			{Model: "activity", Kind: inference.KindSageMaker, URL: modelURL},
		}},
		// the viewer's Publish camera button sends the viewer's token
		WebRTC: edgeagent.WebRTCConfig{APITokensPublish: true},
	}
	for _, c := range Cameras {
		cfg.Streams = append(cfg.Streams, edgeagent.StreamConfig{Name: c.Name, URL: sim.URL(c.Name), Transport: "tcp"})
	}
	// a simulated sensor (temperature and motion) beside the first camera,
	// pushing its readings over HTTP with a push token of its own
	pushToken, err := randomToken()
	if err != nil {
		return err
	}
	cfg.PutMedia.Tokens = []string{pushToken}
	cfg.Streams = append(cfg.Streams, edgeagent.StreamConfig{Name: SensorName, Sensor: &edgeagent.SensorConfig{
		Timestamp: sensor.Timestamp{Field: "ts", Format: sensor.FormatMillis},
		Link:      Cameras[0].Name,
	}})
	cfg, err = edgeagent.FinishConfig(cfg)
	if err != nil {
		return err
	}
	agent := &edgeagent.Agent{Config: cfg, Logger: o.Logger}
	if err := agent.Start(ctx); err != nil {
		return err
	}
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		simulateSensor(simCtx, "http://"+agent.Addr()+"/v1/streams/"+SensorName+"/samples", pushToken, o.Logger)
	}()
	defer func() { stopSim(); <-simDone }()
	fmt.Fprintf(o.Out, "Tributary demo: %d synthetic cameras and a simulated sensor -> agent -> archive\n", len(Cameras))
	for _, c := range Cameras {
		fmt.Fprintf(o.Out, "  camera %-12s %s (%s)\n", c.Name, sim.URL(c.Name), c.Preset)
	}
	fmt.Fprintf(o.Out, "  archive      %s\n", cfg.Archive)
	if cfg.Spool.Active(cfg.Archive.Type) {
		fmt.Fprintf(o.Out, "  spool        %s\n", cfg.Spool.Path)
	}
	viewer := "http://" + agent.Addr() + "/"
	if tok := agent.APIToken(); tok != "" {
		viewer += "#token=" + tok
	}
	fmt.Fprintf(o.Out, "  model        %s/invocations (the example model: per-frame sizes and an activity score; results under streams/*/results/activity)\n", modelURL)
	fmt.Fprintf(o.Out, "  viewer       %s\n", viewer)
	fmt.Fprintf(o.Out, "  publish      the viewer's \"Publish camera\" button, or any WHIP client: POST http://%s/v1/streams/{name}/whip with the token\n", agent.Addr())
	fmt.Fprintf(o.Out, "  status       http://%s/v1/status\n", agent.Addr())
	fmt.Fprintf(o.Out, "  metrics      http://%s/metrics\n", agent.Addr())
	if o.Duration > 0 {
		fmt.Fprintf(o.Out, "running for %v\n", o.Duration)
	} else {
		fmt.Fprintln(o.Out, "press Ctrl-C to stop")
	}

	var stop <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		stop = t.C
	}
	tick := time.NewTicker(o.Progress)
	defer tick.Stop()
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-stop:
			break loop
		case <-tick.C:
			printProgress(o.Out, time.Since(start), agent.Status())
			printInference(o.Out, agent.InferenceStats())
		}
	}
	fmt.Fprintln(o.Out, "stopping: closing the fragments in progress")
	if err := agent.Close(); err != nil {
		return err
	}
	st := agent.Status()
	printProgress(o.Out, time.Since(start), st)
	var failed []string
	for _, s := range st {
		if s.Counters.Fragments == 0 {
			failed = append(failed, fmt.Sprintf("%s: no fragments (%s)", s.Name, s.LastError))
		}
	}
	if cfg.Archive.Type == "s3" {
		sp := agent.SpoolStatus()
		fmt.Fprintf(o.Out, "fragments are in s3://%s/%sstreams/ at %s (%d still in the spool at %s)\n", cfg.Archive.S3.Bucket,
			prefixSlash(cfg.Archive.Prefix), cfg.Archive.S3.Endpoint, sp.Fragments, cfg.Spool.Path)
	} else {
		fmt.Fprintf(o.Out, "fragments are in %s\n", filepath.Join(cfg.Archive.Path, cfg.Archive.Prefix, "streams"))
	}
	if len(failed) > 0 && time.Since(start) > 10*time.Second {
		return errors.New("demo: " + fmt.Sprint(failed))
	}
	return nil
}

func prefixSlash(p string) string {
	if p == "" {
		return ""
	}
	return p + "/"
}

// SensorName is the demo's simulated sensor stream.
const SensorName = "env"

func randomToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// simulateSensor pushes readings of a temperature and motion sensor at
// 10 Hz, in batches every half second, until ctx ends: the temperature
// drifts slowly, motion comes in bursts.
func simulateSensor(ctx context.Context, url, token string, log *slog.Logger) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 5 * time.Second}
	next := time.Now()
	var body bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			body.Reset()
			for ; next.Before(now); next = next.Add(100 * time.Millisecond) {
				sec := float64(next.UnixMilli()%600000) / 1000
				celsius := 21 + 2*math.Sin(2*math.Pi*sec/600) + 0.1*math.Sin(sec)
				motion := int(sec/10)%3 == 0
				fmt.Fprintf(&body, `{"ts":%d,"celsius":%.2f,"motion":%t}`+"\n", next.UnixMilli(), celsius, motion)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body.Bytes()))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("simulated sensor", "err", err)
				}
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
}

func printProgress(w io.Writer, elapsed time.Duration, st []edgeagent.StreamStatus) {
	sort.Slice(st, func(i, j int) bool { return st[i].Name < st[j].Name })
	fmt.Fprintf(w, "[%5.0fs]", elapsed.Seconds())
	for _, s := range st {
		fmt.Fprintf(w, "  %s: %s, %d fragments, %.1f MB", s.Name, s.State, s.Counters.Fragments, float64(s.Counters.FragmentBytes)/1e6)
		if s.Sensor != nil {
			fmt.Fprintf(w, " (%d readings)", s.Sensor.Readings)
		}
		if u := s.Upload; u != nil {
			fmt.Fprintf(w, " (%d uploaded, %d waiting", u.Uploaded, u.BacklogFragments)
			if u.LastError != "" && u.State != "idle" && u.State != "uploading" {
				fmt.Fprintf(w, ", %s: %s", u.State, u.LastError)
			}
			fmt.Fprint(w, ")")
		}
	}
	fmt.Fprintln(w)
}

// printInference prints each model's results.
func printInference(w io.Writer, st []inference.HookStats) {
	for _, h := range st {
		fmt.Fprintf(w, "  model %-10s results %d  dead letters %d  dropped %d  last %.0f ms after its fragment closed\n",
			h.Model, h.Results, h.DeadLetters, h.Dropped, h.LastEndToEnd)
	}
}
