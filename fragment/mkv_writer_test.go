package fragment

import (
	"bytes"
	"context"
	"io"
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
	return ffmpegFragmentsOf(t, filepath.Join("..", "testdata", clip), seconds)
}

// ffmpegFragmentsOf is ffmpegFragments for a clip at any path.
func ffmpegFragmentsOf(t testing.TB, clipPath string, seconds int) ([]Track, []*Fragment) {
	t.Helper()
	testenv.RequireFFmpeg(t)
	// two steps: a plain MP4 first, so that the AAC config is known when
	// the fragmented MP4's moov is written
	plain := filepath.Join(t.TempDir(), "plain.mp4")
	out := filepath.Join(t.TempDir(), "clip.mp4")
	for _, args := range [][]string{
		{"-i", clipPath, "-t", strconv.Itoa(seconds), "-c", "copy", plain},
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

// TestMKVRoundTrip converts real fragments fMP4 → MKV → fMP4 and checks
// that every sample's bytes and timestamps survive, and the metadata too.
func TestMKVRoundTrip(t *testing.T) {
	for _, clip := range []string{"h264_aac.ts", "h264_bframes_aac.ts", "h265_aac.ts", "h264_opus.ts"} {
		t.Run(clip, func(t *testing.T) {
			tracks, frags := ffmpegFragments(t, clip, 4)
			init, err := MarshalInit(tracks)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frags {
				orig := AppendFMP4(nil, f)
				mkv, err := FMP4ToMKV(init, orig, f.Metadata)
				if err != nil {
					t.Fatal(err)
				}
				init2, frag2, meta, err := MKVToFMP4(mkv)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(init, init2) {
					t.Errorf("fragment %d: init segment differs after the round trip", f.Number)
				}
				if !bytes.Equal(orig, frag2) {
					got, err := ParseFMP4(frag2, tracks)
					if err != nil {
						t.Fatal(err)
					}
					for ti := range f.Samples {
						for j, s := range f.Samples[ti] {
							g := got.Samples[ti][j]
							if g.DTS != s.DTS || g.PTSOffset != s.PTSOffset || g.Duration != s.Duration || g.Keyframe != s.Keyframe || !bytes.Equal(g.Payload, s.Payload) {
								t.Fatalf("fragment %d track %d sample %d: %+v, want %+v", f.Number, ti, j, g, s)
							}
						}
					}
					t.Fatalf("fragment %d differs after the round trip", f.Number)
				}
				if meta.Number != f.Number || !meta.ProducerStart.Equal(f.ProducerStart.Truncate(time.Millisecond)) ||
					!meta.ServerTime.Equal(f.ServerTime.Truncate(time.Millisecond)) || meta.Tags["site"] != "lab" {
					t.Errorf("fragment %d: metadata %+v", f.Number, meta)
				}
			}
		})
	}
}

// TestMKVFromOtherMuxers reads MKV written by ffmpeg (no timing tag) and
// converts it to fMP4 that ffmpeg decodes strictly.
func TestMKVFromOtherMuxers(t *testing.T) {
	testenv.RequireFFmpeg(t)
	for _, clip := range []string{"h264_aac.ts", "h264_bframes_aac.ts", "h265_aac.ts", "h264_opus.ts"} {
		t.Run(clip, func(t *testing.T) {
			mkvPath := filepath.Join(t.TempDir(), "x.mkv")
			if b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", filepath.Join("..", "testdata", clip), "-t", "3", "-c", "copy", mkvPath).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			data, err := os.ReadFile(mkvPath)
			if err != nil {
				t.Fatal(err)
			}
			r := NewMKVReader(bytes.NewReader(data))
			n := 0
			for {
				c, err := r.Next()
				if err != nil {
					break
				}
				f, err := c.Fragment()
				if err != nil {
					t.Fatal(err)
				}
				init, err := MarshalInit(f.TrackConfigs)
				if err != nil {
					t.Fatal(err)
				}
				if err := testenv.CheckMedia(context.Background(), init, AppendFMP4(nil, f)); err != nil {
					t.Errorf("cluster %d as fMP4: %v", n, err)
				}
				n++
			}
			if n == 0 {
				t.Fatal("no cluster")
			}
		})
	}
}

// clip1080 makes a 10 s 1080p30 4 Mbit/s H.264 + AAC clip (once per run).
func clip1080(b *testing.B) string {
	testenv.RequireFFmpeg(b)
	p := filepath.Join(os.TempDir(), "tributary-bench-1080p.ts")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "10", "-c:v", "libx264", "-preset", "ultrafast",
		"-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
		"-f", "mpegts", p+".tmp").CombinedOutput()
	if err != nil {
		b.Fatalf("ffmpeg: %v: %s", err, out)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchWrite(b *testing.B, write func(dst []byte, f *Fragment) []byte) {
	_, frags := ffmpegFragmentsOf(b, clip1080(b), 10)
	var bytesPer, frames int64
	for _, f := range frags {
		for _, ss := range f.Samples {
			frames += int64(len(ss))
			for _, s := range ss {
				bytesPer += int64(len(s.Payload))
			}
		}
	}
	buf := make([]byte, 0, 4<<20)
	b.SetBytes(bytesPer)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, f := range frags {
			buf = write(buf[:0], f)
		}
	}
	b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkMKVWrite writes 10 s of a 4 Mbit/s 1080p30 H.264 + AAC stream as
// MKV fragments; BenchmarkFMP4Write does the same as fMP4, for comparison.
func BenchmarkMKVWrite(b *testing.B) {
	var w MKVWriter
	benchWrite(b, func(dst []byte, f *Fragment) []byte {
		out, err := w.Append(dst, f)
		if err != nil {
			b.Fatal(err)
		}
		return out
	})
}

func BenchmarkFMP4Write(b *testing.B) {
	benchWrite(b, AppendFMP4)
}

// TestMKVWriterMonotonic: fragments whose producer times overlap (the clock
// slewed back between them) still give a stream whose clusters never go
// back in time, while the producer-timestamp tags keep the true times.
func TestMKVWriterMonotonic(t *testing.T) {
	c := &Cutter{}
	out := collect(c)
	c.Reset(testTracks(), false)
	f := &feed{fps: 30, gop: 30, audio: true, base: time.Unix(1.8e9, 0)}
	f.run(c, 7*time.Second)
	if len(*out) < 3 {
		t.Fatalf("%d fragments", len(*out))
	}
	frags := *out
	frags[1].ProducerStart = frags[1].ProducerStart.Add(-40 * time.Millisecond) // overlaps fragment 0
	for _, mono := range []bool{false, true} {
		w := MKVWriter{Monotonic: mono}
		buf, err := w.AppendStreamStart(nil, &frags[0])
		if err != nil {
			t.Fatal(err)
		}
		for i := range frags {
			buf = w.AppendStreamFragment(buf, &frags[i])
		}
		r := NewMKVReader(bytes.NewReader(buf))
		var tcs []int64
		for {
			cl, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			tcs = append(tcs, cl.Timecode)
		}
		back := false
		for i := 1; i < len(tcs); i++ {
			if tcs[i] < tcs[i-1]+frags[i-1].Duration.Milliseconds() {
				back = true
			}
		}
		if back != !mono {
			t.Errorf("Monotonic=%v: cluster timecodes %v (durations %v, %v)", mono, tcs, frags[0].Duration, frags[1].Duration)
		}
	}
}

// TestMKVDataTrack: a camera's ONVIF metadata track rides in its MKV
// fragments (ffmpeg decodes the video strictly and reads the documents
// back), comes back from the reader as it went in, and is left out of the
// fMP4 rendition, whose init segment is that of the audio and video alone.
func TestMKVDataTrack(t *testing.T) {
	tracks, frags := ffmpegFragments(t, "h264_aac.ts", 4)
	onvif := Track{ID: 3, Kind: KindData, Codec: CodecONVIF, TimeScale: 90000}
	all := append(append([]Track(nil), tracks...), onvif)
	if ConfigHash(all) != ConfigHash(tracks) {
		t.Fatal("the data track changed the configuration hash")
	}
	init, err := MarshalInit(tracks)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := MarshalInit(all); err != nil || !bytes.Equal(got, init) {
		t.Fatalf("init with the data track: %v", err)
	}
	if _, err := MarshalInit([]Track{onvif}); err == nil {
		t.Fatal("an init segment of a data track alone")
	}
	if FMP4Carries(all) || !FMP4CarriesMedia(all) || FMP4CarriesMedia([]Track{onvif}) {
		t.Fatal("FMP4Carries/FMP4CarriesMedia")
	}
	var w MKVWriter
	for _, f := range frags[:2] {
		video := f.Samples[0]
		first, last := video[0].DTS, video[len(video)-1].DTS
		var docs []Sample
		for i, dts := range []int64{first, first + 45000, last} {
			docs = append(docs, Sample{DTS: dts, Keyframe: true,
				Payload: []byte(`<?xml version="1.0"?>` + "\n" + `<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:Event n="` + strconv.Itoa(i) + `"/></tt:MetadataStream>`)})
		}
		g := *f
		g.TrackConfigs = all
		g.Samples = append(append([][]Sample(nil), f.Samples...), docs)
		mkv, err := w.Append(nil, &g)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewMKVReader(bytes.NewReader(mkv)).Next()
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Fragment()
		if err != nil {
			t.Fatal(err)
		}
		if !TracksEqual(back.TrackConfigs, all) {
			t.Fatalf("tracks read back: %v", back.TrackConfigs)
		}
		for j, s := range back.Samples[2] {
			if s.DTS != docs[j].DTS || !bytes.Equal(s.Payload, docs[j].Payload) {
				t.Fatalf("document %d read back at %d: %q", j, s.DTS, s.Payload)
			}
		}
		if len(back.Samples[2]) != len(docs) {
			t.Fatalf("%d documents read back, want %d", len(back.Samples[2]), len(docs))
		}
		init2, frag2, _, err := MKVToFMP4(mkv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(init2, init) || !bytes.Equal(frag2, AppendFMP4(nil, f)) {
			t.Fatal("the fMP4 rendition is not that of the audio and video")
		}
		if testing.Short() {
			continue
		}
		ctx := context.Background()
		if err := testenv.CheckMedia(ctx, mkv); err != nil {
			t.Fatalf("ffmpeg: %v", err)
		}
		got, err := testenv.DataPackets(ctx, mkv)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(docs) {
			t.Fatalf("ffmpeg read %d documents, want %d: %q", len(got), len(docs), got)
		}
		for j := range got {
			if got[j] != string(docs[j].Payload) {
				t.Fatalf("ffmpeg read document %d as %q", j, got[j])
			}
		}
	}
}
