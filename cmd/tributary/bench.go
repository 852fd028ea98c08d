package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/bench"
)

func benchCmd() *cobra.Command {
	var (
		o        bench.Options
		jsonOut  bool
		jsonFile string
		baseline string
		bitrate  float64
		keep     bool
	)
	cmd := &cobra.Command{
		Use:   "bench --streams N [--duration 60s] [--baseline ffmpeg]",
		Short: "Measure ingest cost (CPU, RSS, latency, drops) side by side with ffmpeg",
		Long: `Measure what recording costs. camsim serves N cameras of a 1080p30, 4 Mbit/s
H.264 + AAC clip (encoded once with ffmpeg and cached) in its own process; the
agent records them in its own process, and its CPU (user+sys from /proc) and RSS
are measured over a steady-state window after a warm-up, with fragment
close → durable latency p50/p99, packets lost, frames dropped and fragments
written. With --baseline ffmpeg, one "ffmpeg -rtsp_transport tcp -i … -c copy
-f segment -segment_time 2 -segment_format mp4" per camera is measured the same
way, and the table shows both rows and the ratios.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if baseline == "none" {
				baseline = ""
			}
			o.Baseline = baseline
			o.Clip.Bitrate = int(bitrate * 1e6)
			o.Progress = cmd.ErrOrStderr()
			if f, ok := o.Progress.(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					o.Interactive = true
				}
			}
			if keep && o.WorkDir == "" {
				dir, err := os.MkdirTemp("", "tributary-bench-")
				if err != nil {
					return err
				}
				o.WorkDir = dir
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: keeping the run's files in %s\n", dir)
			}
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if jsonFile != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("--json-file: %w", err)
				}
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Streams, "streams", 10, "number of cameras")
	f.DurationVar(&o.Duration, "duration", 0, "measured window (default 60s)")
	f.DurationVar(&o.Warmup, "warmup", 0, "warm-up before the window, once every stream records (default 10s)")
	f.StringVar(&o.Container, "container", "fmp4", "fragment container: fmp4 or mkv")
	f.StringVar(&o.Archive, "archive", "dir", `"dir" (a local directory), "s3" (a versitygw the bench runs, through the spool; both pruned as the run goes) or an s3:// archive URL`)
	f.StringVar(&o.Source, "source", "rtsp", `how the cameras reach the agent: "rtsp" (pulled over RTSP/TCP) or "whip" (published over WebRTC, video only)`)
	f.StringVar(&baseline, "baseline", "", `"ffmpeg" to measure ffmpeg -c copy segmenting too`)
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	f.StringVar(&jsonFile, "json-file", "", "also write the result as JSON to this file")
	f.Float64Var(&bitrate, "bitrate", 4, "video bitrate of the cameras, Mbit/s")
	f.DurationVar(&o.Clip.GOP, "gop", 0, "time between keyframes (default 1s)")
	f.StringVar(&o.WorkDir, "workdir", "", "folder for the run's files (default a temporary one, removed after)")
	f.BoolVar(&o.Pprof, "pprof", false, "serve the agent's profiler at /debug/pprof/ during the run")
	f.BoolVar(&keep, "keep", false, "keep the run's files (logs, configuration) in a temporary folder")
	return cmd
}
