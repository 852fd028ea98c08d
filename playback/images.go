package playback

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

var errNoFFmpeg = errors.New("images need ffmpeg, which is not installed on this server")

// maxClip bounds a clip's range. A progressive MP4's moov lists every
// sample and is planned before the first byte goes out: the 1 h test clip
// (108,000 samples) peaks at 5 MB of heap, about 50 bytes a sample, so 6 h
// of 30 fps video with audio (1.7 million samples) stays under 100 MB while
// it streams. Longer exports are several clips.
const maxClip = 6 * time.Hour

// archiveClip is a ClipSource over archived fragments.
type archiveClip struct {
	s     *Server
	frags []fragment.Metadata
	i     int
}

func (a *archiveClip) Next(ctx context.Context) (*fragment.Fragment, error) {
	if a.i >= len(a.frags) {
		return nil, io.EOF
	}
	m := a.frags[a.i]
	a.i++
	return a.s.readFragment(ctx, m)
}

func (a *archiveClip) Rewind(context.Context) error {
	a.i = 0
	return nil
}

// planClip lays out the clip of [start, end] of a stream.
func (s *Server) planClip(ctx context.Context, stream string, start, end time.Time) (*fragment.Clip, error) {
	if start.IsZero() || end.IsZero() {
		return nil, badParam("start", "a clip needs start and end")
	}
	if end.Sub(start) > maxClip {
		return nil, badParam("end", "a clip is at most %v long", maxClip)
	}
	if _, err := s.info(ctx, stream); err != nil {
		return nil, err
	}
	frags, err := s.fragmentsIn(ctx, stream, start, end)
	if err != nil {
		return nil, err
	}
	c, err := fragment.PlanClip(ctx, &archiveClip{s: s, frags: frags}, start, end)
	if errors.Is(err, fragment.ErrEmptyClip) {
		return nil, fmt.Errorf("%w: no footage of %s between %s and %s", errNoFootage, stream, start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return c, err
}

var errNoFootage = errors.New("no footage in the range")

// clip serves a progressive MP4 of any range, streamed: the moov comes
// first, then the media fragment by fragment, with bounded memory.
func (s *Server) clip(w http.ResponseWriter, r *http.Request, req request) {
	start, end, err := timeRange(r.URL.Query())
	if err != nil {
		s.fail(w, err)
		return
	}
	c, err := s.planClip(r.Context(), req.stream, start, end)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Length", fmt.Sprint(c.Size()))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.mp4"`, req.stream, c.Start().UTC().Format("20060102T150405Z")))
	if t := c.Truncated(); t != nil {
		w.Header().Set("X-Tributary-Clip-Truncated", t.Error())
	}
	if r.Method == http.MethodHead {
		return
	}
	if _, err := c.Stream(r.Context(), w); err != nil && r.Context().Err() == nil {
		s.Logger.Warn("clip", "stream", req.stream, "err", err)
	}
}

// Image is one frame of GET /v1/streams/{s}/images.
type Image struct {
	Time   time.Time `json:"time"`
	Format string    `json:"format"`
	// Data is the image, base64.
	Data string `json:"data"`
}

// images returns frames of a range at an interval, as JPEG or PNG, through
// ffmpeg (501 when it is not installed).
func (s *Server) images(w http.ResponseWriter, r *http.Request, req request) {
	q := r.URL.Query()
	start, end, err := timeRange(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	interval, err := durationParam(q, "interval", time.Second, 200*time.Millisecond, time.Hour)
	if err != nil {
		s.fail(w, err)
		return
	}
	format := q.Get("format")
	switch format {
	case "", "jpeg", "jpg":
		format = "jpeg"
	case "png":
	default:
		s.fail(w, badParam("format", "%q is not jpeg or png", format))
		return
	}
	width, err := intParam(q, "width", 0, 16, 7680)
	if err != nil {
		s.fail(w, err)
		return
	}
	maxImages, err := intParam(q, "max", 100, 1, 500)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !end.IsZero() && !start.IsZero() && end.Sub(start) > time.Duration(maxImages)*interval {
		end = start.Add(time.Duration(maxImages) * interval)
	}
	ffmpeg := s.FFmpeg
	if ffmpeg == "" {
		ffmpeg, err = exec.LookPath("ffmpeg")
	}
	if err != nil || ffmpeg == "" {
		s.fail(w, errNoFFmpeg)
		return
	}
	c, err := s.planClip(r.Context(), req.stream, start, end)
	if err != nil {
		s.fail(w, err)
		return
	}
	dir, err := os.MkdirTemp("", "tributary-images-")
	if err != nil {
		s.fail(w, err)
		return
	}
	defer os.RemoveAll(dir)
	ext := map[string]string{"jpeg": "jpg", "png": "png"}[format]
	vf := fmt.Sprintf("fps=1/%.3f", interval.Seconds())
	if width > 0 {
		vf += fmt.Sprintf(",scale=%d:-2", width)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-f", "mp4", "-i", "pipe:0", "-an", "-vf", vf,
		"-frames:v", fmt.Sprint(maxImages), "-q:v", "3", filepath.Join(dir, "%05d."+ext))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.fail(w, err)
		return
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.fail(w, err)
		return
	}
	_, werr := c.Stream(ctx, stdin)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		s.fail(w, fmt.Errorf("ffmpeg: %v: %s", err, strings.TrimSpace(stderr.String())))
		return
	}
	if werr != nil && !errors.Is(werr, os.ErrClosed) && !strings.Contains(werr.Error(), "broken pipe") {
		s.Logger.Warn("images: clip", "err", werr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*."+ext))
	sort.Strings(files)
	out := []Image{}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		out = append(out, Image{Time: c.Start().Add(time.Duration(i) * interval).UTC(), Format: format, Data: base64.StdEncoding.EncodeToString(b)})
	}
	WriteJSON(w, http.StatusOK, map[string]any{"images": out})
}
