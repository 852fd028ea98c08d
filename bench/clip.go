package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Clip describes the synthetic camera footage of a run: H.264 video of a
// moving test pattern with noise (so the encoder spends the bitrate on
// picture, not filler) and an AAC tone, encoded once with ffmpeg and kept in
// a cache folder.
type Clip struct {
	// Width and Height of the picture. Default 1920x1080.
	Width, Height int
	// FPS is the frame rate. Default 30.
	FPS int
	// Bitrate of the video in bits per second (constant). Default 4,000,000.
	Bitrate int
	// GOP is the time between keyframes. Default 1s.
	GOP time.Duration
	// Length of the clip, which the cameras loop. Default 20s.
	Length time.Duration
}

func (c *Clip) defaults() {
	if c.Width == 0 || c.Height == 0 {
		c.Width, c.Height = 1920, 1080
	}
	if c.FPS == 0 {
		c.FPS = 30
	}
	if c.Bitrate == 0 {
		c.Bitrate = 4_000_000
	}
	if c.GOP == 0 {
		c.GOP = time.Second
	}
	if c.Length == 0 {
		c.Length = 20 * time.Second
	}
}

// String describes the clip ("1920x1080p30 H.264 4.0 Mbit/s, 1s GOP + AAC").
func (c Clip) String() string {
	c.defaults()
	return fmt.Sprintf("%dx%dp%d H.264 %.1f Mbit/s, %s GOP + AAC", c.Width, c.Height, c.FPS, float64(c.Bitrate)/1e6, c.GOP)
}

// name is the clip's file name, unique per parameter set.
func (c Clip) name() string {
	return fmt.Sprintf("bench-%dx%dp%d-%dk-gop%dms-%ds-aac.ts", c.Width, c.Height, c.FPS, c.Bitrate/1000, c.GOP.Milliseconds(), int(c.Length.Seconds()))
}

// Ensure returns the clip's path in dir, encoding it with ffmpeg first when
// it is not there (about 10 s for the default clip on two cores).
func (c Clip) Ensure(ctx context.Context, dir string) (string, error) {
	c.defaults()
	path := filepath.Join(dir, c.name())
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return "", fmt.Errorf("bench: the camera clip is made with ffmpeg, which is not installed (make peers installs it): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	gop := max(1, int(c.GOP.Seconds()*float64(c.FPS)))
	rate := strconv.Itoa(c.Bitrate)
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d,noise=alls=12:allf=t", c.Width, c.Height, c.FPS),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.FormatFloat(c.Length.Seconds(), 'f', 3, 64),
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
		"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0", "-bf", "0",
		"-b:v", rate, "-minrate", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr",
		"-c:a", "aac", "-b:a", "128k", "-ac", "1", "-f", "mpegts", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("bench: encoding the camera clip: %w: %s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}
