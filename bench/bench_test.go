package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testenv"
)

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {0, 1}} {
		if got := percentile(s, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

func TestReadProc(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss < 1<<20 || s.cpu < 0 {
		t.Errorf("%+v", s)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Error("no such process: no error")
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Streams: 0},
		{Streams: 1, Container: "avi"},
		{Streams: 1, Archive: "ftp://x"},
		{Streams: 1, Baseline: "gstreamer"},
		{Streams: 1, Duration: time.Millisecond},
	} {
		if err := o.defaults(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// smallRun builds the tributary binary and returns options for 2 cameras
// of a small clip, and the buffer the progress goes to.
func smallRun(t *testing.T) (Options, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "tributary")
	if out, err := exec.Command("go", "build", "-o", exe, "../cmd/tributary").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	progress := &bytes.Buffer{}
	return Options{
		Streams: 2, Exe: exe, CacheDir: filepath.Join(dir, "cache"), Progress: progress,
		Clip: Clip{Width: 320, Height: 240, FPS: 15, Bitrate: 300_000, Length: 4 * time.Second},
	}, progress
}

// TestRun runs the whole bench small: 2 cameras of a small clip, the agent
// and the ffmpeg baseline, and checks both rows carry real measurements.
func TestRun(t *testing.T) {
	testenv.RequireFFmpeg(t)
	if testing.Short() {
		t.Skip("runs processes for 30 s")
	}
	o, progress := smallRun(t)
	o.Duration, o.Warmup, o.Baseline = 4*time.Second, 2*time.Second, BaselineFFmpeg
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Rows) != 2 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	agent, ff := res.Rows[0], res.Rows[1]
	if agent.Name != "tributary" || ff.Name != FFmpegCommand {
		t.Errorf("rows %q, %q", agent.Name, ff.Name)
	}
	for _, r := range res.Rows {
		if r.CPUPercent <= 0 || r.RSSMB <= 1 || r.Fragments == 0 {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if agent.Packets == 0 || agent.DurableP50MS == nil || *agent.DurableP99MS < *agent.DurableP50MS {
		t.Errorf("agent: %+v", agent)
	}
	if res.CPURatio <= 0 || res.RSSRatio <= 0 {
		t.Errorf("ratios %v %v", res.CPURatio, res.RSSRatio)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tributary", FFmpegCommand + " / tributary", "durable p50 ms", "camsim"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if !strings.Contains(progress.String(), "tributary: measured") {
		t.Errorf("progress: %s", progress.String())
	}
	if clips, _ := filepath.Glob(filepath.Join(o.CacheDir, "bench-*.ts")); len(clips) != 1 {
		t.Errorf("clip cache: %v", clips)
	}
}

// TestRunS3 runs the agent against a versitygw the bench starts, through
// the spool.
func TestRunS3(t *testing.T) {
	gw := testenv.RequireVersityGW(t)
	testenv.RequireFFmpeg(t)
	if testing.Short() {
		t.Skip("runs processes for 15 s")
	}
	o, progress := smallRun(t)
	o.Duration, o.Warmup, o.Archive, o.VersityGW = 3*time.Second, time.Second, "s3", gw
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	r := res.Rows[0]
	if r.Fragments == 0 || r.FragmentsLost != 0 || r.DurableP50MS == nil {
		t.Errorf("%+v", r)
	}
	var table bytes.Buffer
	res.WriteTable(&table)
	if !strings.Contains(table.String(), "versitygw") {
		t.Errorf("table: %s", table.String())
	}
}
