// Package bench measures what ingest costs, side by side with a baseline
// anyone can run: synthetic cameras (camsim, in its own process) feed the
// agent (in its own process), and the agent's CPU and memory come from
// /proc over a steady-state window, with its fragment close → durable
// latencies, drops and fragment counts from its status API. With the ffmpeg
// baseline the same cameras then feed one `ffmpeg -c copy -f segment`
// process each, measured the same way. `tributary bench` runs it.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Baselines that Options.Baseline accepts.
const (
	BaselineNone   = ""
	BaselineFFmpeg = "ffmpeg"
)

// Sources.
const (
	SourceRTSP = "rtsp"
	SourceWHIP = "whip"
)

// Options configure a run.
type Options struct {
	// Streams is the number of cameras. Required, at least 1.
	Streams int
	// Duration of the measured window. Default 60s.
	Duration time.Duration
	// Warmup runs before the window opens, once every stream has stored a
	// fragment. Default 10s.
	Warmup time.Duration
	// Container of the agent's fragments: fmp4 or mkv. Default fmp4.
	Container string
	// Archive is "dir" (a local directory in the work folder), "s3" (a
	// versitygw S3 server the bench runs on loopback over the work folder,
	// written through the agent's spool), or an S3 archive URL as the demo
	// takes it (s3://bucket/prefix?endpoint=host:port…, credentials from the
	// environment), written through the spool and not pruned. The first two
	// are pruned as the run goes, so 200 cameras do not fill the disk.
	// Default "dir".
	Archive string
	// Baseline is BaselineFFmpeg to measure ffmpeg too. Default none.
	Baseline string
	// Source is how the cameras reach the agent: SourceRTSP (camsim serves
	// them, the agent pulls over RTSP/TCP) or SourceWHIP (camsim publishes
	// the clip's video to the agent over WebRTC: SRTP, NACK, RTCP). Default
	// rtsp.
	Source string
	// Clip is the cameras' footage. Default: 1080p30 H.264 4 Mbit/s + AAC.
	Clip Clip
	// VersityGW is the versitygw binary for Archive "s3". Default: on PATH,
	// else .tools/versitygw (what `make peers` builds).
	VersityGW string
	// Exe is the tributary binary run for camsim and the agent. Default
	// the running executable.
	Exe string
	// WorkDir holds the run's files. Default a temporary folder, removed
	// after the run.
	WorkDir string
	// CacheDir keeps the encoded clip between runs. Default
	// <user cache dir>/tributary/bench.
	CacheDir string
	// Progress receives a progress line while the run goes. Default none.
	Progress io.Writer
	// Pprof serves the agent's profiler at /debug/pprof/ on its status
	// address (printed in the progress). Default false.
	Pprof bool
	// Interactive rewrites the progress line in place (a terminal);
	// otherwise a line is written every 10 s.
	Interactive bool
}

// Row is the measurement of one ingest program.
type Row struct {
	// Name is "tributary" or the baseline's command.
	Name    string `json:"name"`
	Streams int    `json:"streams"`
	// CPUPercent is user + system time over the window, in % of one core.
	CPUPercent   float64 `json:"cpu_percent"`
	CPUPerStream float64 `json:"cpu_percent_per_stream"`
	// RSSMB is the resident memory at the end of the window; RSSPeakMB the
	// highest seen in it (sampled every second). It is the proportional set
	// size: pages shared between processes (the baseline's libraries) are
	// divided among them rather than counted in each. MB = 2^20 bytes.
	RSSMB          float64 `json:"rss_mb"`
	RSSPeakMB      float64 `json:"rss_peak_mb"`
	RSSPerStreamMB float64 `json:"rss_mb_per_stream"`
	// Durable latencies, fragment close → fsynced (spool or local archive),
	// over the fragments closed in the window; nil for a baseline that
	// does not report them.
	DurableP50MS *float64 `json:"durable_p50_ms,omitempty"`
	DurableP99MS *float64 `json:"durable_p99_ms,omitempty"`
	DurableMaxMS *float64 `json:"durable_max_ms,omitempty"`
	// Packets received in the window (the agent's count; 0 for ffmpeg).
	Packets uint64 `json:"packets"`
	// PacketsLost are RTP sequence gaps (ffmpeg: its "missed packets").
	PacketsLost uint64 `json:"packets_lost"`
	// FramesDropped are samples the agent dropped (queue full, no codec
	// parameters yet, oversized GOPs).
	FramesDropped uint64 `json:"frames_dropped"`
	// Fragments written in the window, and fragments lost.
	Fragments     uint64 `json:"fragments"`
	FragmentsLost uint64 `json:"fragments_lost"`
	// Reconnects in the window.
	Reconnects uint64 `json:"reconnects"`
	// CamsimCPUPercent is what the cameras cost in the same window, in % of
	// one core: not part of the row's figures, but it shares the machine.
	CamsimCPUPercent float64 `json:"camsim_cpu_percent"`
}

// Result is a run's measurements.
type Result struct {
	Started   time.Time `json:"started"`
	Machine   string    `json:"machine"`
	Cores     int       `json:"cores"`
	OS        string    `json:"os"`
	GoVersion string    `json:"go_version"`
	Clip      string    `json:"clip"`
	Streams   int       `json:"streams"`
	Container string    `json:"container"`
	Archive   string    `json:"archive"`
	Source    string    `json:"source"`
	WindowS   float64   `json:"window_s"`
	WarmupS   float64   `json:"warmup_s"`
	Rows      []Row     `json:"rows"`
	// CPURatio and RSSRatio are baseline / tributary (0 without a baseline).
	CPURatio float64 `json:"cpu_ratio,omitempty"`
	RSSRatio float64 `json:"rss_ratio,omitempty"`
}

func (o *Options) defaults() error {
	if o.Streams < 1 {
		return fmt.Errorf("bench: streams: %d, want at least 1", o.Streams)
	}
	if o.Duration == 0 {
		o.Duration = 60 * time.Second
	}
	if o.Duration < time.Second {
		return fmt.Errorf("bench: duration: %s, want at least 1s", o.Duration)
	}
	if o.Warmup == 0 {
		o.Warmup = 10 * time.Second
	}
	switch o.Container {
	case "":
		o.Container = fragment.ContainerFMP4
	case fragment.ContainerFMP4, fragment.ContainerMKV:
	default:
		return fmt.Errorf("bench: container: %q, want fmp4 or mkv", o.Container)
	}
	if o.Archive == "" {
		o.Archive = "dir"
	}
	if o.Archive != "dir" && o.Archive != "s3" && !strings.HasPrefix(o.Archive, "s3://") {
		return fmt.Errorf("bench: archive: %q, want dir, s3 or an s3:// URL", o.Archive)
	}
	switch o.Baseline {
	case BaselineNone, BaselineFFmpeg:
	default:
		return fmt.Errorf("bench: baseline: %q, want ffmpeg or none", o.Baseline)
	}
	switch o.Source {
	case "":
		o.Source = SourceRTSP
	case SourceRTSP:
	case SourceWHIP:
		if o.Baseline != BaselineNone {
			return fmt.Errorf("bench: --baseline ffmpeg: ffmpeg cannot take WHIP; compare with --source rtsp")
		}
	default:
		return fmt.Errorf("bench: source: %q, want rtsp or whip", o.Source)
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: the tributary binary: %w", err)
		}
		o.Exe = exe
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		o.CacheDir = filepath.Join(base, "tributary", "bench")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// Run measures the agent, then the baseline, against the same cameras.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if runtime.GOOS != "linux" {
		return nil, errors.New("bench: measures processes through /proc: Linux only")
	}
	if o.Baseline == BaselineFFmpeg {
		if _, err := exec.LookPath("ffmpeg"); err != nil {
			return nil, fmt.Errorf("bench: --baseline ffmpeg: ffmpeg is not installed (make peers installs it)")
		}
	}
	clip, err := o.Clip.Ensure(ctx, o.CacheDir)
	if err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "tributary-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	res := &Result{
		Started: time.Now().UTC(), Machine: cpuModel(), Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion: runtime.Version(), Clip: o.Clip.String(), Streams: o.Streams, Container: o.Container, Archive: o.Archive, Source: o.Source,
		WindowS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(),
	}
	p := &progress{w: o.Progress, interactive: o.Interactive}
	p.done("bench: %d cameras of %s over %s", o.Streams, res.Clip, o.Source)
	if o.Source == SourceWHIP {
		// the agent first, then the publishers
		row, err := runAgent(ctx, o, p, nil, 0, func(base string) (*proc, error) { return startPublishers(ctx, o, clip, base) })
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, row)
		return res, nil
	}
	cams, urls, err := startCamsim(ctx, o, clip)
	if err != nil {
		return nil, err
	}
	defer cams.stop()

	row, err := runAgent(ctx, o, p, urls, cams.cmd.Process.Pid, nil)
	if err != nil {
		return nil, err
	}
	res.Rows = append(res.Rows, row)
	if o.Baseline == BaselineFFmpeg {
		base, err := runFFmpeg(ctx, o, p, urls, cams.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, base)
		if row.CPUPercent > 0 {
			res.CPURatio = base.CPUPercent / row.CPUPercent
		}
		if row.RSSMB > 0 {
			res.RSSRatio = base.RSSMB / row.RSSMB
		}
	}
	return res, nil
}

// proc is a child process with its log file.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if cmd.Stderr == nil {
		cmd.Stderr = f
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: starting %s: %w", filepath.Base(cmd.Path), err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end (SIGTERM), then kills it after 15 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// startCamsim serves the cameras and returns their URLs.
func startCamsim(ctx context.Context, o Options, clip string) (*proc, []string, error) {
	cmd := exec.CommandContext(ctx, o.Exe, "camsim", "--clip", clip, "--count", fmt.Sprint(o.Streams),
		"--addr", "127.0.0.1:0", "--tcp-only", "--stagger")
	if os.Getenv("GOMAXPROCS") == "" {
		// camsim on one P costs a quarter less and leaves more of the
		// machine to what is measured (at 200 cameras it still keeps up)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	// our own pipe: cmd.Wait (in start) must not close it under the reader
	out, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer out.Close()
	cmd.Stdout = w
	p, err := start(cmd, filepath.Join(o.WorkDir, "camsim.log")) // stderr
	w.Close()                                                    // the child has its copy
	if err != nil {
		return nil, nil, err
	}
	urls := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(out)
		for len(got) < o.Streams && sc.Scan() {
			got = append(got, strings.TrimSpace(sc.Text()))
		}
		urls <- got
		io.Copy(io.Discard, out)
	}()
	select {
	case u := <-urls:
		if len(u) == o.Streams {
			return p, u, nil
		}
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	p.stop()
	return nil, nil, fmt.Errorf("bench: camsim did not start: %s", p.tail())
}

// startPublishers has camsim publish the cameras to the agent at base
// over WHIP, and waits until all have been answered.
func startPublishers(ctx context.Context, o Options, clip, base string) (*proc, error) {
	cmd := exec.CommandContext(ctx, o.Exe, "camsim", "--clip", clip, "--count", fmt.Sprint(o.Streams),
		"--whip", base+"/v1/streams/{name}/whip", "--stagger")
	out, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout = w
	p, err := start(cmd, filepath.Join(o.WorkDir, "camsim.log"))
	w.Close()
	if err != nil {
		return nil, err
	}
	n := make(chan int, 1)
	go func() {
		got := 0
		sc := bufio.NewScanner(out)
		for got < o.Streams && sc.Scan() {
			got++
		}
		n <- got
		io.Copy(io.Discard, out)
	}()
	select {
	case got := <-n:
		if got == o.Streams {
			return p, nil
		}
	case <-time.After(60*time.Second + time.Duration(o.Streams)*time.Second):
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("bench: the WHIP publishers did not start: %s", p.tail())
}

// window measures processes over the steady-state window: it waits for the
// warm-up, samples /proc and the counters at both ends and the RSS every
// second, and prints progress.
type window struct {
	o        Options
	p        *progress
	name     string
	camsim   int // pid, measured beside
	pids     func() []int
	counters func() (counters, error) // cumulative; may be nil
	alive    func() error             // nil while the processes run
}

type counters struct {
	packets, lost, dropped, fragments, fragmentsLost, reconnects uint64
}

type measured struct {
	cpu      time.Duration
	camsim   time.Duration
	elapsed  time.Duration
	rss      int64
	peak     int64
	start    time.Time
	delta    counters
	progress string
}

func (w window) run(ctx context.Context) (measured, error) {
	var m measured
	if err := sleep(ctx, w.o.Warmup, func(left time.Duration) {
		w.p.printf("%s: warming up, %.0f s left", w.name, left.Seconds())
	}, w.alive); err != nil {
		return m, err
	}
	s0, err := readProcs(w.pids())
	if err != nil {
		return m, err
	}
	cam0, err := readProc(w.camsim)
	if err != nil {
		return m, err
	}
	var c0 counters
	if w.counters != nil {
		if c0, err = w.counters(); err != nil {
			return m, err
		}
	}
	m.start = time.Now()
	m.peak = s0.rss
	last := s0
	lastAt := m.start
	err = sleep(ctx, w.o.Duration, func(left time.Duration) {
		s, err := readProcs(w.pids())
		if err != nil {
			return
		}
		m.peak = max(m.peak, s.rss)
		now := time.Now()
		cpu := 100 * float64(s.cpu-last.cpu) / float64(now.Sub(lastAt))
		last, lastAt = s, now
		w.p.printf("%s: %3.0f/%.0f s  cpu %5.1f%% of a core (%.3f%% per stream)  rss %6.1f MB",
			w.name, (w.o.Duration - left).Seconds(), w.o.Duration.Seconds(), cpu, cpu/float64(w.o.Streams), float64(s.rss)/(1<<20))
	}, w.alive)
	if err != nil {
		return m, err
	}
	s1, err := readProcs(w.pids())
	if err != nil {
		return m, err
	}
	m.elapsed = time.Since(m.start)
	m.cpu, m.rss, m.peak = s1.cpu-s0.cpu, s1.rss, max(m.peak, s1.rss)
	if cam1, err := readProc(w.camsim); err == nil {
		m.camsim = cam1.cpu - cam0.cpu
	}
	if w.counters != nil {
		c1, err := w.counters()
		if err != nil {
			return m, err
		}
		m.delta = counters{
			packets: c1.packets - c0.packets, lost: c1.lost - c0.lost, dropped: c1.dropped - c0.dropped,
			fragments: c1.fragments - c0.fragments, fragmentsLost: c1.fragmentsLost - c0.fragmentsLost,
			reconnects: c1.reconnects - c0.reconnects,
		}
	}
	w.p.done("%s: measured %.0f s", w.name, m.elapsed.Seconds())
	return m, nil
}

// row fills the CPU and memory figures of a row.
func (m measured) row(name string, streams int) Row {
	cpu := 100 * float64(m.cpu) / float64(m.elapsed)
	return Row{
		Name: name, Streams: streams, CPUPercent: cpu, CPUPerStream: cpu / float64(streams),
		RSSMB: float64(m.rss) / (1 << 20), RSSPeakMB: float64(m.peak) / (1 << 20), RSSPerStreamMB: float64(m.rss) / (1 << 20) / float64(streams),
		Packets: m.delta.packets, PacketsLost: m.delta.lost, FramesDropped: m.delta.dropped,
		Fragments: m.delta.fragments, FragmentsLost: m.delta.fragmentsLost, Reconnects: m.delta.reconnects,
		CamsimCPUPercent: 100 * float64(m.camsim) / float64(m.elapsed),
	}
}

// progress writes a progress line: in place on a terminal, else every 10 s.
type progress struct {
	w           io.Writer
	interactive bool
	last        time.Time
}

func (p *progress) printf(format string, args ...any) {
	if p.interactive {
		fmt.Fprintf(p.w, "\r"+format+"\033[K", args...)
		return
	}
	if time.Since(p.last) >= 10*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// done ends the progress of a phase with a final line.
func (p *progress) done(format string, args ...any) {
	if p.interactive {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	p.last = time.Time{}
}

// sleep waits d, calling tick every second with the time left, and fails
// when alive reports an error or ctx ends.
func sleep(ctx context.Context, d time.Duration, tick func(left time.Duration), alive func() error) error {
	end := time.Now().Add(d)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		tick(left)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-time.After(left):
		}
	}
}

// percentile returns the nearest-rank percentile p (0-100) of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ptr(v float64) *float64 { return &v }

func latencies(ms []float64, r *Row) {
	if len(ms) == 0 {
		return
	}
	slices.Sort(ms)
	r.DurableP50MS, r.DurableP99MS, r.DurableMaxMS = ptr(percentile(ms, 50)), ptr(percentile(ms, 99)), ptr(ms[len(ms)-1])
}
