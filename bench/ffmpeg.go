package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// FFmpegCommand is the baseline's command line, as the table names it.
const FFmpegCommand = "ffmpeg -c copy -f segment"

// missedRE matches ffmpeg's report of RTP sequence gaps.
var missedRE = regexp.MustCompile(`RTP: missed (\d+) packets`)

// runFFmpeg measures one `ffmpeg -c copy -f segment` per camera: what a
// Frigate-style recorder runs.
func runFFmpeg(ctx context.Context, o Options, pr *progress, urls []string, camsim int) (Row, error) {
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.cmd.Process.Signal(os.Interrupt)
		}
		for _, p := range procs {
			p.stop()
		}
	}()
	dirs := make([]string, len(urls))
	for i, u := range urls {
		dirs[i] = filepath.Join(o.WorkDir, "ffmpeg", fmt.Sprint(i+1))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return Row{}, err
		}
		// -segment_wrap reuses 10 file names: the disk use stays bounded
		cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-loglevel", "warning", "-rtsp_transport", "tcp", "-i", u,
			"-c", "copy", "-f", "segment", "-segment_time", "2", "-segment_format", "mp4", "-reset_timestamps", "1",
			"-segment_wrap", "10", "-segment_list", filepath.Join(dirs[i], "list.csv"), "-segment_list_type", "csv",
			filepath.Join(dirs[i], "%02d.mp4"))
		p, err := start(cmd, filepath.Join(dirs[i], "ffmpeg.log"))
		if err != nil {
			return Row{}, err
		}
		procs = append(procs, p)
	}
	alive := func() error {
		for i, p := range procs {
			if p.exited() {
				return fmt.Errorf("bench: ffmpeg %d exited (%v): %s", i+1, p.err, p.tail())
			}
		}
		return nil
	}
	count := func() (counters, error) {
		var c counters
		for i := range procs {
			list, _ := os.ReadFile(filepath.Join(dirs[i], "list.csv"))
			c.fragments += uint64(bytes.Count(list, []byte("\n")))
			log, _ := os.ReadFile(filepath.Join(dirs[i], "ffmpeg.log"))
			for _, m := range missedRE.FindAllSubmatch(log, -1) {
				n, _ := strconv.ParseUint(string(m[1]), 10, 64)
				c.lost += n
			}
		}
		return c, nil
	}
	deadline := time.Now().Add(60*time.Second + time.Duration(len(urls))*100*time.Millisecond)
	for {
		if err := alive(); err != nil {
			return Row{}, err
		}
		ready := 0
		for i := range procs {
			if list, _ := os.ReadFile(filepath.Join(dirs[i], "list.csv")); len(list) > 0 {
				ready++
			}
		}
		pr.printf("%s: %d/%d streams recording", FFmpegCommand, ready, len(urls))
		if ready == len(urls) {
			break
		}
		if time.Now().After(deadline) {
			return Row{}, fmt.Errorf("bench: only %d of %d ffmpeg processes wrote a segment", ready, len(urls))
		}
		select {
		case <-ctx.Done():
			return Row{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	w := window{
		o: o, p: pr, camsim: camsim, name: FFmpegCommand, alive: alive, counters: count,
		pids: func() []int {
			pids := make([]int, len(procs))
			for i, p := range procs {
				pids[i] = p.cmd.Process.Pid
			}
			return pids
		},
	}
	m, err := w.run(ctx)
	if err != nil {
		return Row{}, err
	}
	return m.row(FFmpegCommand, len(urls)), nil
}
