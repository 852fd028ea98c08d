package fragment

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testenv"
)

// ffmpegFragments turns a testdata clip into fragments: ffmpeg writes it as
// fragmented MP4 (one fragment per keyframe), and ParseInit/ParseFMP4 read
// it back. The fragments are numbered from 1 and given producer times.
func ffmpegFragments(t testing.TB, clip string, seconds int) ([]Track, []*Fragment) {
	t.Helper()
	testenv.RequireFFmpeg(t)
	// two steps: a plain MP4 first, so that the AAC config is known when
	// the fragmented MP4's moov is written
	plain := filepath.Join(t.TempDir(), "plain.mp4")
	out := filepath.Join(t.TempDir(), "clip.mp4")
	for _, args := range [][]string{
		{"-i", filepath.Join("..", "testdata", clip), "-t", strconv.Itoa(seconds), "-c", "copy", plain},
		{"-i", plain, "-c", "copy", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", out},
	} {
		cmd := exec.Command("ffmpeg", append([]string{"-nostdin", "-v", "error"}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v: %s", args, err, b)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var init []byte
	var tracks []Track
	var frags []*Fragment
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for len(b) > 0 {
		size, typ, _, err := boxHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "ftyp":
			init = append(init, b[:size]...)
		case "moov":
			init = append(init, b[:size]...)
			if tracks, err = ParseInit(init); err != nil {
				t.Fatal(err)
			}
		case "moof":
			msize, _, _, err := boxHeader(b[size:])
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFMP4(bytes.Clone(b[:size+msize]), tracks)
			if err != nil {
				t.Fatal(err)
			}
			size += msize
			f.Number = uint64(len(frags) + 1)
			f.Stream = "cam"
			start := t0
			if len(frags) > 0 {
				start = frags[len(frags)-1].ProducerEnd
			}
			var dur time.Duration
			for i, ss := range f.Samples {
				if tracks[i].Kind == KindVideo && len(ss) > 0 {
					last := ss[len(ss)-1]
					dur = time.Duration(ticksToNs(last.DTS+int64(last.Duration)-ss[0].DTS, tracks[i].TimeScale))
				}
			}
			f.ProducerStart, f.ProducerEnd, f.Duration = start, start.Add(dur), dur
			f.ServerTime = f.ProducerEnd.Add(80 * time.Millisecond)
			f.InitHash = ConfigHash(tracks)
			f.Tags = map[string]string{"site": "lab"}
			frags = append(frags, f)
		}
		b = b[size:]
	}
	if len(frags) == 0 {
		t.Fatal("no fragments")
	}
	return tracks, frags
}

// TestMKVWriterFFmpeg writes real fragments of every codec as MKV and has
// ffmpeg decode them strictly; mkvinfo, when installed, must show the KVS tags.
func TestMKVWriterFFmpeg(t *testing.T) {
	for _, clip := range []string{"h264_aac.ts", "h264_bframes_aac.ts", "h265_aac.ts", "h264_opus.ts"} {
		t.Run(clip, func(t *testing.T) {
			_, frags := ffmpegFragments(t, clip, 4)
			var w MKVWriter
			dir := t.TempDir()
			for _, f := range frags {
				b, err := w.Append(nil, f)
				if err != nil {
					t.Fatal(err)
				}
				if err := testenv.CheckMedia(context.Background(), b); err != nil {
					t.Errorf("fragment %d: %v", f.Number, err)
				}
				if f.Number == 1 {
					p := filepath.Join(dir, "f.mkv")
					os.WriteFile(p, b, 0o644)
					if out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format_tags", "-of", "default=nw=1", p).Output(); err == nil {
						for _, want := range []string{TagFragmentNumber + "=1", TagProducerTimestamp + "=1795748400.000", "site=lab"} {
							if !strings.Contains(string(out), want) {
								t.Errorf("ffprobe does not show %s:\n%s", want, out)
							}
						}
					}
					if _, err := exec.LookPath("mkvinfo"); err == nil {
						out, err := exec.Command("mkvinfo", p).CombinedOutput()
						if err != nil {
							t.Errorf("mkvinfo: %v\n%s", err, out)
						}
						if !strings.Contains(string(out), TagServerTimestamp) {
							t.Errorf("mkvinfo does not show the tags:\n%s", out)
						}
					} else if os.Getenv("CI") != "" {
						t.Error("mkvinfo is not installed (make peers installs mkvtoolnix)")
					}
				}
			}
		})
	}
}

func TestMKVWriterAllocs(t *testing.T) {
	_, frags := ffmpegFragments(t, "h264_aac.ts", 3)
	var w MKVWriter
	buf, err := w.Append(nil, frags[0])
	if err != nil {
		t.Fatal(err)
	}
	f := frags[0]
	f.Tags = nil
	if n := testing.AllocsPerRun(50, func() { buf, _ = w.Append(buf[:0], f) }); n > 0 {
		t.Errorf("%v allocations per fragment", n)
	}
}
