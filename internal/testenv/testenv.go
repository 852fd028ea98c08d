// Package testenv starts and checks the real peers Tributary's tests run
// against: ffmpeg as the judge of every fragment, the GStreamer RTSP server
// as a camera nobody here wrote. A test that needs a missing peer fails when
// the CI environment variable is set, and is skipped otherwise with the
// command that installs the peer.
package testenv

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Install commands named in skip messages.
const (
	InstallFFmpeg    = "make peers (or: apt-get install -y ffmpeg)"
	InstallGStreamer = "make peers (or: apt-get install -y gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-rtsp)"
)

// Missing fails the test under CI and skips it otherwise.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (CI is set, so this fails): install it with %s", what, install)
	}
	t.Skipf("%s is not installed: install it with %s", what, install)
}

// RequireFFmpeg returns the path of ffmpeg or fails/skips the test.
func RequireFFmpeg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		Missing(t, "ffmpeg", InstallFFmpeg)
	}
	return p
}

// CheckMedia runs ffmpeg's strictest decode over the concatenation of
// parts (an init segment and a fragment, say): it must exit 0 and print
// nothing. ffprobe is no judge: it accepts truncated and corrupt files.
func CheckMedia(ctx context.Context, parts ...[]byte) error {
	name, err := writeTemp("tributary-check-*.mp4", parts...)
	if err != nil {
		return err
	}
	defer os.Remove(name)
	return CheckFile(ctx, name)
}

// writeTemp writes parts, one after the other, to a new temporary file
// named after pattern (os.CreateTemp) and returns its name.
func writeTemp(pattern string, parts ...[]byte) (string, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// CheckFile runs the ffmpeg damage check on a file.
func CheckFile(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-xerror", "-err_detect", "explode", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil || stderr.Len() > 0 {
		return fmt.Errorf("ffmpeg damage check of %s failed (%v): %s", filepath.Base(path), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// SubtitleTexts has ffmpeg read the first text (subtitle) track of a
// Matroska file, strictly, and returns the text of each event: how a data
// track of sensor readings looks to ffmpeg.
func SubtitleTexts(ctx context.Context, mkv []byte) ([]string, error) {
	name, err := writeTemp("tributary-data-*.mkv", mkv)
	if err != nil {
		return nil, err
	}
	defer os.Remove(name)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", name, "-map", "0:s:0", "-f", "srt", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		return nil, fmt.Errorf("ffmpeg reading the text track (%v): %s", err, strings.TrimSpace(stderr.String()))
	}
	// SRT: index line, time line, text lines, blank line
	var texts []string
	for _, ev := range strings.Split(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n") {
		lines := strings.Split(strings.TrimSpace(ev), "\n")
		if len(lines) >= 3 {
			texts = append(texts, strings.Join(lines[2:], "\n"))
		}
	}
	return texts, nil
}

// DataPackets has ffprobe read the packets of the first text (subtitle)
// track of a Matroska file, byte for byte (-show_data), and returns them:
// how a data track of XML documents (ONVIF metadata), which a subtitle
// renderer would mangle, looks to ffmpeg.
func DataPackets(ctx context.Context, mkv []byte) ([]string, error) {
	name, err := writeTemp("tributary-data-*.mkv", mkv)
	if err != nil {
		return nil, err
	}
	defer os.Remove(name)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "s:0", "-show_packets", "-show_data", "-of", "json", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		return nil, fmt.Errorf("ffprobe reading the text track (%v): %s", err, strings.TrimSpace(stderr.String()))
	}
	var probe struct {
		Packets []struct {
			Data string `json:"data"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return nil, fmt.Errorf("ffprobe's packets: %w", err)
	}
	var packets []string
	for _, p := range probe.Packets {
		// a hex dump: "00000000: 3c3f 786d … 2231  <?xml version="1"
		var b []byte
		for _, line := range strings.Split(p.Data, "\n") {
			_, rest, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			hexPart, _, _ := strings.Cut(rest, "  ")
			d, err := hex.DecodeString(strings.ReplaceAll(hexPart, " ", ""))
			if err != nil {
				return nil, fmt.Errorf("ffprobe's packet data %q: %w", line, err)
			}
			b = append(b, d...)
		}
		packets = append(packets, string(b))
	}
	return packets, nil
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitPort waits until addr accepts TCP connections.
func WaitPort(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never accepted connections: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
