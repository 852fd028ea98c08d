package fragment

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testenv"
)

// clipSliceSource is a ClipSource over fragments in memory.
type clipSliceSource struct {
	frags   []*Fragment
	i       int
	rewinds int
	reads   int
}

func (s *clipSliceSource) Next(context.Context) (*Fragment, error) {
	if s.i >= len(s.frags) {
		return nil, io.EOF
	}
	s.i++
	s.reads++
	return s.frags[s.i-1], nil
}

func (s *clipSliceSource) Rewind(context.Context) error {
	s.i = 0
	s.rewinds++
	return nil
}

// clipWall is the producer time of a sample of track i of f, as WriteClip
// reckons it.
func clipWall(f *Fragment, i int, s *Sample) time.Time {
	a := clipLeader(f, true)
	ap := ticksToNs(f.Samples[a][0].PTS(), f.TrackConfigs[a].TimeScale)
	return f.ProducerStart.Add(time.Duration(ticksToNs(s.PTS(), f.TrackConfigs[i].TimeScale) - ap))
}

// writeClipFile writes the clip of frags between from and to to a file and
// checks what every clip must be: the returned size is the file's and
// Clip.Size, the boxes are ftyp, moov, mdat in that order, and ffmpeg
// decodes it without a complaint.
func writeClipFile(t *testing.T, frags []*Fragment, from, to time.Time) (string, *Clip) {
	t.Helper()
	src := &clipSliceSource{frags: frags}
	c, err := PlanClip(context.Background(), src, from, to)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Stream(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(b)) || n != c.Size() {
		t.Errorf("wrote %d bytes, Size() %d, file %d", n, c.Size(), len(b))
	}
	var types []string
	for rest := b; len(rest) > 0; {
		size, typ, _, err := boxHeader(rest)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, typ)
		rest = rest[size:]
	}
	if !slices.Equal(types, []string{"ftyp", "moov", "mdat"}) {
		t.Errorf("top-level boxes %v, want ftyp moov mdat", types)
	}
	if err := testenv.CheckFile(context.Background(), p); err != nil {
		t.Error(err)
	}
	return p, c
}

type clipProbeResult struct {
	Format struct {
		Duration string            `json:"duration"`
		Tags     map[string]string `json:"tags"`
	} `json:"format"`
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		StartTime string `json:"start_time"`
		Duration  string `json:"duration"`
		NbFrames  string `json:"nb_frames"`
	} `json:"streams"`
	Frames []struct {
		KeyFrame int    `json:"key_frame"`
		PictType string `json:"pict_type"`
		PtsTime  string `json:"pts_time"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	} `json:"frames"`
}

func clipProbe(t *testing.T, path string, args ...string) clipProbeResult {
	t.Helper()
	out, err := exec.Command("ffprobe", append(append([]string{"-v", "error", "-of", "json"}, args...), path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var r clipProbeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func clipSeconds(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

// stream returns the first stream of a type ("video", "audio").
func (r clipProbeResult) stream(typ string) (codec string, start, dur float64, frames int, ok bool) {
	for _, s := range r.Streams {
		if s.CodecType == typ {
			start, _ = strconv.ParseFloat(s.StartTime, 64)
			dur, _ = strconv.ParseFloat(s.Duration, 64)
			frames, _ = strconv.Atoi(s.NbFrames)
			return s.CodecName, start, dur, frames, true
		}
	}
	return "", 0, 0, 0, false
}

// span is what a clip of frags between from and to must hold of the
// first track of a kind: the number of samples and the time from the
// keyframe the start snaps to (of the video; start is passed for audio)
// to the end of the last sample that starts before to.
func clipSpan(frags []*Fragment, kind Kind, from, to, start time.Time) (n int, first time.Time, dur time.Duration) {
	var end time.Time
	for _, f := range frags {
		for i, ss := range f.Samples {
			if f.TrackConfigs[i].Kind != kind {
				continue
			}
			for j := range ss {
				w := clipWall(f, i, &ss[j])
				if kind == KindVideo && ss[j].Keyframe && (!w.After(from) || start.IsZero()) {
					start, n, end = w, 0, time.Time{}
				}
				if !start.IsZero() && !w.Before(start) && w.Before(to) {
					if n == 0 {
						first = w
					}
					n++
					if e := w.Add(time.Duration(ticksToNs(int64(ss[j].Duration), f.TrackConfigs[i].TimeScale))); e.After(end) {
						end = e
					}
				}
			}
			break
		}
	}
	return n, first, end.Sub(start)
}

// clipVideoSpan is span of the video.
func clipVideoSpan(frags []*Fragment, from, to time.Time) (frames int, start time.Time, dur time.Duration) {
	return clipSpan(frags, KindVideo, from, to, time.Time{})
}

func clipNear(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// clipPCMUFragments adds a G.711 µ-law track (testdata/pcmu_8k.raw, 20 ms
// frames) to video-only fragments, on the video's timeline.
func clipPCMUFragments(t *testing.T, frags []*Fragment) []*Fragment {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "pcmu_8k.raw"))
	if err != nil {
		t.Fatal(err)
	}
	pcmu := Track{ID: 2, Kind: KindAudio, Codec: CodecPCMU, TimeScale: 8000, SampleRate: 8000, Channels: 1}
	for _, f := range frags {
		v := f.Samples[0]
		first := ticksToNs(v[0].DTS, f.TrackConfigs[0].TimeScale)
		last := ticksToNs(v[len(v)-1].DTS+int64(v[len(v)-1].Duration), f.TrackConfigs[0].TimeScale)
		var audio []Sample
		for n := (first + 19999999) / 20000000; n*20000000 < last; n++ {
			off := int(n*160) % len(raw)
			audio = append(audio, Sample{DTS: n * 160, Duration: 160, Keyframe: true, Payload: raw[off : off+160]})
		}
		f.TrackConfigs = append(slices.Clip(f.TrackConfigs), pcmu)
		f.Samples = append(f.Samples, audio)
		f.InitHash = ConfigHash(f.TrackConfigs)
	}
	return frags
}

// TestWriteClipCodecs writes whole clips of every codec and checks them
// with ffmpeg and ffprobe: decoded without a complaint, moov before mdat,
// video from 0 with every frame, the duration of the footage.
func TestWriteClipCodecs(t *testing.T) {
	for _, tc := range []struct{ clip, video, audio string }{
		{"h264_aac.ts", "h264", "aac"},
		{"h264_bframes_aac.ts", "h264", "aac"},
		{"h265_aac.ts", "hevc", "aac"},
		{"h264_opus.ts", "h264", "opus"},
		{"h264.ts+pcmu", "h264", "pcm_mulaw"},
	} {
		t.Run(tc.clip, func(t *testing.T) {
			var frags []*Fragment
			if tc.audio == "pcm_mulaw" {
				_, frags = ffmpegFragments(t, "h264.ts", 6)
				frags = clipPCMUFragments(t, frags)
			} else {
				_, frags = ffmpegFragments(t, tc.clip, 6)
			}
			// the whole clip but its last fragment, which ffmpeg's -t may have cut inside a GOP
			from, to := frags[0].ProducerStart, frags[len(frags)-1].ProducerStart
			p, c := writeClipFile(t, frags, from, to)
			wantFrames, _, wantDur := clipVideoSpan(frags, from, to)
			r := clipProbe(t, p, "-show_format", "-show_streams")
			codec, start, dur, frames, ok := r.stream("video")
			if !ok || codec != tc.video || start != 0 || frames != wantFrames || !clipNear(dur, wantDur.Seconds(), 1.0/30) {
				t.Errorf("video %s from %v, %v s, %d frames; want %s from 0, %v s, %d frames", codec, start, dur, frames, tc.video, wantDur.Seconds(), wantFrames)
			}
			_, _, audioEnd := clipSpan(frags, KindAudio, from, to, from)
			acodec, astart, adur, _, ok := r.stream("audio")
			if !ok || acodec != tc.audio || astart < 0 || astart > 0.03 || !clipNear(astart+adur, audioEnd.Seconds(), 0.001) {
				t.Errorf("audio %s from %v for %v s; want %s within 30 ms of 0 and to end at %v s", acodec, astart, adur, tc.audio, audioEnd.Seconds())
			}
			if d := clipSeconds(t, r.Format.Duration); !clipNear(d, wantDur.Seconds(), 0.05) || !clipNear(d, c.Duration().Seconds(), 0.002) {
				t.Errorf("format duration %v s, Duration() %v; want %v", d, c.Duration(), wantDur)
			}
			if !c.Start().Equal(from) || c.Truncated() != nil {
				t.Errorf("Start() %v, Truncated() %v", c.Start(), c.Truncated())
			}
			// the moov is readable as an init segment
			b, _ := os.ReadFile(p)
			tracks, err := ParseInit(b)
			if err != nil || len(tracks) != 2 || !tracks[0].Equal(&frags[0].TrackConfigs[0]) || tracks[1].Codec != frags[0].TrackConfigs[1].Codec {
				t.Errorf("ParseInit of the clip: %v %v", tracks, err)
			}
		})
	}
}

// TestWriteClipMiddle cuts a range out of the middle: the start snaps back
// to the keyframe before it, the first frame is that keyframe at 0, the
// clip ends with the last frame before the end, and the creation time
// carries the real start.
func TestWriteClipMiddle(t *testing.T) {
	for _, clip := range []string{"h264_aac.ts", "h264_bframes_aac.ts", "h265_aac.ts"} {
		t.Run(clip, func(t *testing.T) {
			_, frags := ffmpegFragments(t, clip, 8)
			t0 := frags[0].ProducerStart
			from, to := t0.Add(2500*time.Millisecond), t0.Add(5200*time.Millisecond)
			p, c := writeClipFile(t, frags, from, to)
			wantFrames, wantStart, wantDur := clipVideoSpan(frags, from, to)
			if !c.Start().Equal(wantStart) || wantStart.After(from) || from.Sub(wantStart) > time.Second {
				t.Errorf("Start() %v, want the keyframe before %v: %v", c.Start(), from, wantStart)
			}
			r := clipProbe(t, p, "-show_format", "-show_streams", "-select_streams", "v:0", "-show_frames", "-read_intervals", "%+#1",
				"-show_entries", "frame=key_frame,pict_type,pts_time:stream=codec_type,start_time,duration,nb_frames:format=duration:format_tags")
			if len(r.Frames) != 1 || r.Frames[0].KeyFrame != 1 || r.Frames[0].PictType != "I" || clipSeconds(t, r.Frames[0].PtsTime) != 0 {
				t.Errorf("first frame %+v, want a keyframe at 0", r.Frames)
			}
			_, start, dur, frames, _ := r.stream("video")
			// with B-frames the file holds the reference after the last frame, which the edit list hides
			if start != 0 || !clipNear(dur, wantDur.Seconds(), 1.0/30) || frames < wantFrames || frames > wantFrames+2 {
				t.Errorf("video from %v, %v s, %d frames; want from 0, %v s, %d frames", start, dur, frames, wantDur.Seconds(), wantFrames)
			}
			if d := clipSeconds(t, r.Format.Duration); !clipNear(d, wantDur.Seconds(), 1.0/30) {
				t.Errorf("format duration %v, want %v ± 1 frame", d, wantDur)
			}
			if got, want := r.Format.Tags["creation_time"], wantStart.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05.000000Z"); got != want {
				t.Errorf("creation_time %q, want %q", got, want)
			}
			if got, want := r.Format.Tags["date"], wantStart.UTC().Format("2006-01-02T15:04:05.000Z07:00"); got != want {
				t.Errorf("date %q, want %q", got, want)
			}
		})
	}
}

// clipOutOfBandParams moves the in-band SPS and PPS of H.264 fragments into
// their track configuration (what the cutter does when a camera changes
// its SPS) and drops them, with the access unit delimiters, from the
// payloads, so that only the sample entries tell a decoder the size.
func clipOutOfBandParams(t *testing.T, frags []*Fragment) {
	for _, f := range frags {
		tracks := slices.Clone(f.TrackConfigs)
		for i, ss := range f.Samples {
			if tracks[i].Codec != CodecH264 {
				continue
			}
			for j := range ss {
				var out []byte
				for b := ss[j].Payload; len(b) >= 4; {
					n := int(binary.BigEndian.Uint32(b))
					nalu := b[4 : 4+n]
					b = b[4+n:]
					switch nalu[0] & 0x1f {
					case 7:
						if j == 0 {
							tracks[i].SPS = nalu
						}
					case 8:
						if j == 0 {
							tracks[i].PPS = nalu
						}
					case 9:
					default:
						out = binary.BigEndian.AppendUint32(out, uint32(n))
						out = append(out, nalu...)
					}
				}
				ss[j].Payload = out
			}
			if err := tracks[i].FillFromParams(); err != nil {
				t.Fatal(err)
			}
		}
		f.TrackConfigs = tracks
		f.InitHash = ConfigHash(tracks)
	}
}

// clipStsdEntries returns the sample entry types of every track of an MP4.
func clipStsdEntries(t *testing.T, b []byte) [][]string {
	moov, err := findBox(b, "moov")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	eachBox(moov, func(typ string, trak []byte) error {
		if typ != "trak" {
			return nil
		}
		stsd, err := findBox(trak, "mdia", "minf", "stbl", "stsd")
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		eachBox(stsd[8:], func(typ string, _ []byte) error {
			types = append(types, typ)
			return nil
		})
		if n := binary.BigEndian.Uint32(stsd[4:]); int(n) != len(types) {
			t.Errorf("stsd says %d entries, holds %d", n, len(types))
		}
		out = append(out, types)
		return nil
	})
	return out
}

// TestWriteClipConfigChange cuts across SPS changes (640x360, then
// 320x180, then 640x360 again after a restart of the clip): one sample
// entry per configuration, and ffmpeg decodes both sizes.
func TestWriteClipConfigChange(t *testing.T) {
	_, frags := ffmpegFragments(t, "h264_reschange.ts", 8)
	clipOutOfBandParams(t, frags)
	_, again := ffmpegFragments(t, "h264_reschange.ts", 3)
	clipOutOfBandParams(t, again)
	shift := frags[len(frags)-1].ProducerEnd.Sub(again[0].ProducerStart)
	for _, f := range again { // the camera loops: a new session, timestamps restart
		f.ProducerStart, f.ProducerEnd = f.ProducerStart.Add(shift), f.ProducerEnd.Add(shift)
	}
	frags = append(frags, again...)
	if frags[2].InitHash == frags[6].InitHash || frags[2].InitHash != frags[len(frags)-1].InitHash {
		t.Fatal("the test clip does not change its SPS")
	}
	t0 := frags[0].ProducerStart
	from, to := t0.Add(2500*time.Millisecond), t0.Add(9500*time.Millisecond)
	p, c := writeClipFile(t, frags, from, to)
	if c.Truncated() != nil {
		t.Error(c.Truncated())
	}
	b, _ := os.ReadFile(p)
	if got := clipStsdEntries(t, b); !slices.Equal(got[0], []string{"avc1", "avc1"}) {
		t.Errorf("sample entries %v, want two avc1", got)
	}
	r := clipProbe(t, p, "-show_frames", "-show_entries", "frame=width,height,key_frame")
	sizes := map[[2]int]int{}
	for _, f := range r.Frames {
		sizes[[2]int{f.Width, f.Height}]++
	}
	wantFrames, _, _ := clipVideoSpan(frags, from, to)
	if len(r.Frames) != wantFrames || sizes[[2]int{640, 360}] == 0 || sizes[[2]int{320, 180}] == 0 {
		t.Errorf("%d frames of sizes %v, want %d of 640x360 and 320x180", len(r.Frames), sizes, wantFrames)
	}
	// the changes come in order: 640 up to the change at 4 s, 320 to 8 s, 640 again
	var order [][2]int
	for _, f := range r.Frames {
		if s := [2]int{f.Width, f.Height}; len(order) == 0 || order[len(order)-1] != s {
			order = append(order, s)
		}
	}
	if !slices.Equal(order, [][2]int{{640, 360}, {320, 180}, {640, 360}}) {
		t.Errorf("frame sizes in order %v", order)
	}
}

// TestWriteClipCodecChange: a track that changes codec ends the clip at
// the change, and Truncated says so.
func TestWriteClipCodecChange(t *testing.T) {
	_, h264 := ffmpegFragments(t, "h264.ts", 3)
	_, h265 := ffmpegFragments(t, "h265.ts", 3)
	end := h264[len(h264)-1].ProducerEnd
	shift := end.Sub(h265[0].ProducerStart)
	for _, f := range h265 {
		f.ProducerStart, f.ProducerEnd = f.ProducerStart.Add(shift), f.ProducerEnd.Add(shift)
	}
	frags := append(h264, h265...)
	from, to := frags[0].ProducerStart, frags[len(frags)-1].ProducerEnd
	p, c := writeClipFile(t, frags, from, to)
	if !errors.Is(c.Truncated(), ErrClipTruncated) {
		t.Errorf("Truncated() = %v, want ErrClipTruncated", c.Truncated())
	}
	r := clipProbe(t, p, "-show_streams")
	codec, _, dur, _, _ := r.stream("video")
	if codec != "h264" || !clipNear(dur, end.Sub(from).Seconds(), 1.0/30) {
		t.Errorf("video %s of %v s, want h264 up to the change (%v)", codec, dur, end.Sub(from))
	}
	t.Log(c.Truncated())
}

// TestWriteClipAudioConfigChange: an audio configuration change ends the
// clip; a change of track fields that leaves the sample entry as it was
// does not.
func TestWriteClipAudioConfigChange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		change    func(*Track)
		truncated bool
	}{
		{"AAC stereo", func(a *Track) { a.Config, a.Channels = []byte{0x11, 0x90}, 2 }, true},
		{"same sample entry", func(a *Track) { a.Width = 7 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, frags := ffmpegFragments(t, "h264_aac.ts", 6)
			for _, f := range frags[3:] {
				f.TrackConfigs = slices.Clone(f.TrackConfigs)
				tc.change(&f.TrackConfigs[1])
				f.InitHash = ConfigHash(f.TrackConfigs)
			}
			from, to := frags[0].ProducerStart, frags[len(frags)-1].ProducerStart
			p, c := writeClipFile(t, frags, from, to)
			want := to.Sub(from)
			if tc.truncated {
				want = frags[3].ProducerStart.Sub(from)
				if !errors.Is(c.Truncated(), ErrClipTruncated) {
					t.Errorf("Truncated() = %v, want ErrClipTruncated", c.Truncated())
				}
				t.Log(c.Truncated())
			} else if c.Truncated() != nil {
				t.Errorf("Truncated() = %v", c.Truncated())
			}
			r := clipProbe(t, p, "-show_streams")
			if _, _, dur, _, _ := r.stream("video"); !clipNear(dur, want.Seconds(), 1.0/30) {
				t.Errorf("video of %v s, want %v", dur, want)
			}
			b, _ := os.ReadFile(p)
			if got := clipStsdEntries(t, b); !slices.Equal(got[1], []string{"mp4a"}) {
				t.Errorf("audio sample entries %v, want one mp4a", got[1])
			}
		})
	}
}

// clipShiftFrags moves fragments from index k on by wall in producer time and
// restarts their DTS at restart ticks of 90 kHz (scaled per track), as
// after a reconnect.
func clipShiftFrags(frags []*Fragment, k int, wall time.Duration, restart int64) {
	base := make([]int64, len(frags[k].Samples))
	for i, ss := range frags[k].Samples {
		base[i] = ss[0].DTS
	}
	for _, f := range frags[k:] {
		f.ProducerStart, f.ProducerEnd = f.ProducerStart.Add(wall), f.ProducerEnd.Add(wall)
		for i, ss := range f.Samples {
			r := restart * int64(f.TrackConfigs[i].TimeScale) / 90000
			for j := range ss {
				ss[j].DTS += r - base[i]
			}
		}
		f.Discontinuity = f == frags[k]
	}
}

// TestWriteClipGaps closes gaps, overlaps and timestamp restarts up: the
// clip is the footage back to back, and the audio stays with the video.
func TestWriteClipGaps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wall    time.Duration
		restart int64
	}{
		{"gap", 37 * time.Second, -1},
		{"gap with restart", 5 * time.Minute, 0},
		{"overlap", -300 * time.Millisecond, -1},
		{"overlap with restart", -700 * time.Millisecond, 123456},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, frags := ffmpegFragments(t, "h264_aac.ts", 6)
			restart := tc.restart
			if restart < 0 {
				restart = frags[3].Samples[0][0].DTS + 777 // timestamps jump too
			}
			clipShiftFrags(frags, 3, tc.wall, restart)
			from, to := frags[0].ProducerStart, frags[len(frags)-1].ProducerEnd
			p, c := writeClipFile(t, frags, from, to)
			var want time.Duration
			for _, f := range frags {
				want += f.Duration
			}
			r := clipProbe(t, p, "-show_streams", "-show_format")
			_, _, vdur, vframes, _ := r.stream("video")
			_, astart, adur, _, _ := r.stream("audio")
			if !clipNear(vdur, want.Seconds(), 1.0/30) || vframes != 180 || !clipNear(c.Duration().Seconds(), want.Seconds(), 0.05) {
				t.Errorf("video %v s, %d frames, Duration() %v; want the footage, %v, 180 frames", vdur, vframes, c.Duration(), want)
			}
			if !clipNear(astart+adur, vdur, 0.05) {
				t.Errorf("audio ends at %v s, video at %v s", astart+adur, vdur)
			}
		})
	}
}

// TestWriteClipTrackSets: tracks that appear, disappear and come back, and
// audio-only fragments.
func TestWriteClipTrackSets(t *testing.T) {
	dropAudio := func(f *Fragment) {
		f.TrackConfigs, f.Samples = f.TrackConfigs[:1], f.Samples[:1]
		f.InitHash = ConfigHash(f.TrackConfigs)
	}
	t.Run("audio appears late and has a hole", func(t *testing.T) {
		_, frags := ffmpegFragments(t, "h264_aac.ts", 8)
		for _, k := range []int{0, 1, 5} {
			dropAudio(frags[k])
		}
		from, to := frags[0].ProducerStart, frags[len(frags)-1].ProducerEnd
		p, _ := writeClipFile(t, frags, from, to)
		r := clipProbe(t, p, "-show_streams")
		_, vstart, vdur, _, _ := r.stream("video")
		_, astart, adur, _, _ := r.stream("audio")
		audioAt := frags[2].ProducerStart.Sub(from).Seconds()
		if vstart != 0 || !clipNear(astart, audioAt, 0.03) || !clipNear(astart+adur, vstart+vdur, 0.05) {
			t.Errorf("video %v+%v s, audio %v+%v s; want audio from %v s to the end", vstart, vdur, astart, adur, audioAt)
		}
	})
	t.Run("audio only", func(t *testing.T) {
		_, frags := ffmpegFragments(t, "h264_aac.ts", 6)
		for _, f := range frags {
			a := f.Samples[1][0]
			f.ProducerStart = clipWall(f, 1, &a)
			f.TrackConfigs, f.Samples = f.TrackConfigs[1:], f.Samples[1:]
			f.InitHash = ConfigHash(f.TrackConfigs)
		}
		t0 := frags[0].ProducerStart
		from, to := t0.Add(1500*time.Millisecond), t0.Add(4*time.Second)
		p, c := writeClipFile(t, frags, from, to)
		r := clipProbe(t, p, "-show_streams", "-show_format")
		codec, start, dur, _, _ := r.stream("audio")
		if len(r.Streams) != 1 || codec != "aac" || start != 0 || !clipNear(dur, 2.5, 0.03) || from.Sub(c.Start()) > 25*time.Millisecond || from.Before(c.Start()) {
			t.Errorf("%d streams, %s from %v for %v s, Start() %v; want aac from 0 for 2.5 s, from the frame at %v", len(r.Streams), codec, start, dur, c.Start(), from)
		}
	})
}

// TestWriteClipEarlyAudio: audio that arrived before the keyframe it goes
// with sits at the end of the previous fragment; a clip that starts on that
// keyframe takes it from there, and one that ends before the next fragment's
// keyframe takes the audio in that fragment.
func TestWriteClipEarlyAudio(t *testing.T) {
	_, frags := ffmpegFragments(t, "h264_aac.ts", 6)
	for k := len(frags) - 1; k > 0; k-- {
		f, prev := frags[k], frags[k-1]
		prev.Samples[1] = append(slices.Clip(prev.Samples[1]), f.Samples[1][:5]...)
		f.Samples[1] = f.Samples[1][5:]
	}
	t0 := frags[0].ProducerStart
	from, to := frags[2].ProducerStart.Add(100*time.Millisecond), frags[4].ProducerStart.Add(-10*time.Millisecond)
	p, c := writeClipFile(t, frags, from, to)
	if !c.Start().Equal(frags[2].ProducerStart) {
		t.Errorf("Start() %v, want %v", c.Start().Sub(t0), frags[2].ProducerStart.Sub(t0))
	}
	_, first, end := clipSpan(frags, KindAudio, from, to, c.Start())
	r := clipProbe(t, p, "-show_streams")
	_, astart, adur, _, _ := r.stream("audio")
	if want := first.Sub(c.Start()).Seconds(); !clipNear(astart, want, 0.001) || want > 0.03 || !clipNear(astart+adur, end.Seconds(), 0.001) {
		t.Errorf("audio from %v to %v s, want from %v to %v", astart, astart+adur, want, end.Seconds())
	}
}

// TestWriteClipEdges: ranges that hold nothing, a single fragment, starts
// in gaps and fragments without a keyframe before the start.
func TestWriteClipEdges(t *testing.T) {
	_, base := ffmpegFragments(t, "h264_aac.ts", 6)
	t0 := base[0].ProducerStart
	end := base[len(base)-1].ProducerEnd
	clone := func() []*Fragment {
		out := make([]*Fragment, len(base))
		for i, f := range base {
			g := *f
			g.Samples = make([][]Sample, len(f.Samples))
			for k, ss := range f.Samples {
				g.Samples[k] = slices.Clone(ss)
			}
			out[i] = &g
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		frags     func() []*Fragment
		from, to  time.Time
		empty     bool
		wantStart time.Time
		wantDur   time.Duration // ± 1 frame
	}{
		{name: "before the first fragment", from: t0.Add(-time.Hour), to: t0.Add(-time.Minute), empty: true},
		{name: "ending at the first fragment", from: t0.Add(-time.Hour), to: t0, empty: true},
		{name: "after the last fragment", from: end, to: end.Add(time.Hour), empty: true},
		{name: "end before start", from: t0.Add(3 * time.Second), to: t0.Add(2 * time.Second), empty: true},
		{name: "end equals start", from: t0.Add(3 * time.Second), to: t0.Add(3 * time.Second), empty: true},
		{name: "no source", frags: func() []*Fragment { return nil }, from: t0, to: end, empty: true},
		{name: "from before the first fragment", from: t0.Add(-time.Hour), to: t0.Add(2 * time.Second), wantStart: t0, wantDur: 2 * time.Second},
		{name: "single fragment", frags: func() []*Fragment { return clone()[2:3] }, from: t0, to: end,
			wantStart: base[2].ProducerStart, wantDur: base[2].Duration},
		{name: "one frame", from: base[1].ProducerStart, to: base[1].ProducerStart.Add(time.Millisecond),
			wantStart: base[1].ProducerStart, wantDur: time.Second / 30},
		{name: "from on a keyframe", from: base[3].ProducerStart, to: base[4].ProducerStart,
			wantStart: base[3].ProducerStart, wantDur: base[3].Duration},
		{name: "from in a gap", frags: func() []*Fragment {
			fr := clone()
			clipShiftFrags(fr, 3, time.Minute, fr[3].Samples[0][0].DTS)
			return fr
		}, from: base[3].ProducerStart.Add(30 * time.Second), to: end.Add(time.Hour),
			wantStart: base[3].ProducerStart.Add(time.Minute), wantDur: end.Sub(base[3].ProducerStart)},
		{name: "range in a gap", frags: func() []*Fragment {
			fr := clone()
			clipShiftFrags(fr, 3, time.Minute, fr[3].Samples[0][0].DTS)
			return fr
		}, from: base[3].ProducerStart.Add(10 * time.Second), to: base[3].ProducerStart.Add(20 * time.Second), empty: true},
		{name: "no keyframe before from", frags: func() []*Fragment {
			fr := clone()
			fr[0].Samples[0][0].Keyframe = false
			return fr
		}, from: t0.Add(500 * time.Millisecond), to: t0.Add(3 * time.Second),
			wantStart: base[1].ProducerStart, wantDur: t0.Add(3 * time.Second).Sub(base[1].ProducerStart)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frags := clone()
			if tc.frags != nil {
				frags = tc.frags()
			}
			if tc.empty {
				var buf bytes.Buffer
				n, err := WriteClip(context.Background(), &buf, &clipSliceSource{frags: frags}, tc.from, tc.to)
				if !errors.Is(err, ErrEmptyClip) || n != 0 || buf.Len() != 0 {
					t.Errorf("WriteClip: %d bytes, %v; want nothing and ErrEmptyClip", buf.Len(), err)
				}
				return
			}
			p, c := writeClipFile(t, frags, tc.from, tc.to)
			r := clipProbe(t, p, "-show_streams")
			_, start, dur, _, _ := r.stream("video")
			if !c.Start().Equal(tc.wantStart) || start != 0 || !clipNear(dur, tc.wantDur.Seconds(), 1.0/30+0.001) {
				t.Errorf("start %v, video from %v for %v s; want start %v, %v", c.Start(), start, dur, tc.wantStart, tc.wantDur)
			}
		})
	}
}

// clipCancelSource cancels a context in the second pass.
type clipCancelSource struct {
	clipSliceSource
	after  int
	cancel context.CancelFunc
}

func (s *clipCancelSource) Next(ctx context.Context) (*Fragment, error) {
	if s.rewinds > 0 && s.i == s.after {
		s.cancel()
	}
	return s.clipSliceSource.Next(ctx)
}

func TestWriteClipStops(t *testing.T) {
	_, frags := ffmpegFragments(t, "h264_aac.ts", 6)
	t0 := frags[0].ProducerStart
	t.Run("reads no further than the end", func(t *testing.T) {
		src := &clipSliceSource{frags: frags}
		if _, err := WriteClip(context.Background(), io.Discard, src, t0.Add(1500*time.Millisecond), t0.Add(2500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		// pass 1: fragments 1-3 (the 3rd holds the end); pass 2: 2-3 are written, read from the first
		if src.rewinds != 1 || src.reads != 3+3 {
			t.Errorf("%d rewinds, %d reads", src.rewinds, src.reads)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		src := &clipCancelSource{clipSliceSource: clipSliceSource{frags: frags}, after: 2, cancel: cancel}
		n, err := WriteClip(ctx, io.Discard, src, t0, t0.Add(time.Hour))
		if !errors.Is(err, context.Canceled) || n == 0 {
			t.Errorf("%d bytes, %v; want some bytes and context.Canceled", n, err)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var buf bytes.Buffer
		if n, err := WriteClip(ctx, &buf, &clipSliceSource{frags: frags}, t0, t0.Add(time.Hour)); !errors.Is(err, context.Canceled) || n != 0 || buf.Len() != 0 {
			t.Errorf("%d bytes, %v", n, err)
		}
	})
	t.Run("source changed", func(t *testing.T) {
		src := &clipSliceSource{frags: slices.Clone(frags)}
		c, err := PlanClip(context.Background(), src, t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		g := *src.frags[2]
		g.Samples = slices.Clone(g.Samples)
		g.Samples[0] = slices.Clone(g.Samples[0])
		g.Samples[0][5].Payload = g.Samples[0][5].Payload[1:]
		src.frags[2] = &g
		if _, err := c.Stream(context.Background(), io.Discard); err == nil {
			t.Error("a sample that changed size between passes went unnoticed")
		}
		src.frags = src.frags[:3]
		if _, err := c.Stream(context.Background(), io.Discard); err == nil {
			t.Error("a source that ended early went unnoticed")
		}
	})
	t.Run("unsupported codec", func(t *testing.T) {
		f := *frags[0]
		f.TrackConfigs = slices.Clone(f.TrackConfigs)
		f.TrackConfigs[0].Codec = CodecVP8
		if _, err := WriteClip(context.Background(), io.Discard, &clipSliceSource{frags: []*Fragment{&f}}, t0, t0.Add(time.Hour)); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("VP8: %v, want ErrUnsupportedCodec", err)
		}
	})
}

// clipLoopSource gives n 2 s fragments of one template (the payloads of real
// fragments, rebased), sized like a 4 Mbit/s stream, without allocating per
// fragment.
type clipLoopSource struct {
	tmpl    *Fragment
	n, i    int
	f       Fragment
	samples [][]Sample
	bytes   int64 // media bytes of one fragment
}

// newClipLoopSource builds a 2 s template of H.264 + AAC whose video payloads
// are the real ones padded to 4 Mbit/s with filler data (still a valid
// stream).
func newClipLoopSource(t testing.TB, n int) *clipLoopSource {
	_, frags := ffmpegFragments(t, "h264_aac.ts", 4)
	a, b := frags[1], frags[2] // two 1 s GOPs
	tmpl := &Fragment{Metadata: a.Metadata, TrackConfigs: a.TrackConfigs, Samples: make([][]Sample, 2)}
	var videoBytes int
	for i := range tmpl.Samples {
		tmpl.Samples[i] = append(slices.Clone(a.Samples[i]), b.Samples[i]...)
		if i == 0 {
			for _, s := range tmpl.Samples[i] {
				videoBytes += len(s.Payload)
			}
		}
	}
	const target = 4_000_000 / 8 * 2 // bytes of 2 s of 4 Mbit/s
	s := &clipLoopSource{tmpl: tmpl, n: n, samples: make([][]Sample, 2)}
	for j := range tmpl.Samples[0] {
		// the frame, then a filler-data NAL unit up to its share of 4 Mbit/s
		v := &tmpl.Samples[0][j]
		p := make([]byte, len(v.Payload)*target/videoBytes)
		n := copy(p, v.Payload)
		if fill := len(p) - n - 4; fill >= 2 {
			binary.BigEndian.PutUint32(p[n:], uint32(fill))
			p[n+4] = 12 // filler data
			for k := n + 5; k < len(p)-1; k++ {
				p[k] = 0xff
			}
			p[len(p)-1] = 0x80
		} else {
			p = p[:n]
		}
		v.Payload = p
	}
	for _, ss := range tmpl.Samples {
		for _, x := range ss {
			s.bytes += int64(len(x.Payload))
		}
	}
	return s
}

func (s *clipLoopSource) Next(context.Context) (*Fragment, error) {
	if s.i >= s.n {
		return nil, io.EOF
	}
	s.f = *s.tmpl
	for k, ss := range s.tmpl.Samples {
		period := 2 * int64(s.tmpl.TrackConfigs[k].TimeScale) * int64(s.i)
		s.samples[k] = append(s.samples[k][:0], ss...)
		for j := range s.samples[k] {
			s.samples[k][j].DTS += period
		}
	}
	s.f.Samples = s.samples
	s.f.Number = uint64(s.i + 1)
	s.f.ProducerStart = s.tmpl.ProducerStart.Add(time.Duration(s.i) * 2 * time.Second)
	s.f.ProducerEnd = s.f.ProducerStart.Add(2 * time.Second)
	s.i++
	return &s.f, nil
}

func (s *clipLoopSource) Rewind(context.Context) error {
	s.i = 0
	return nil
}

// TestWriteClip1h writes an hour of a 4 Mbit/s stream (1,800 fragments of
// 2 s, 1.8 GB) to io.Discard and checks that the heap stays small: the
// writer holds sample tables, not media.
func TestWriteClip1h(t *testing.T) {
	src := newClipLoopSource(t, 1800)
	t0 := src.tmpl.ProducerStart
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	start := time.Now()
	c, err := PlanClip(context.Background(), src, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	planned := time.Since(start)
	hw := &clipHeaderWriter{buf: make([]byte, len(c.header))}
	n, err := c.Stream(context.Background(), hw)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	media := src.bytes * 1800
	if n < media || n > media+8<<20 || n != c.Size() {
		t.Errorf("wrote %d bytes for %d of media, Size() %d", n, media, c.Size())
	}
	const limit = 64 << 20
	if p := peak.Load(); p > limit {
		t.Errorf("peak heap in use %d MB, want under %d MB", p>>20, limit>>20)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > limit {
		t.Errorf("allocated %d MB in all, want under %d MB", a>>20, limit>>20)
	}
	// the tables: every frame, and the audio still with the video after an hour
	info := clipHeaderInfo(t, hw.buf)
	if len(info) != 2 || info[0].samples != 1800*60 || !clipNear(info[0].seconds, 3600, 1.0/30) || !clipNear(info[1].seconds, info[0].seconds, 0.03) ||
		info[0].chunks != 1800 || info[0].bytes+info[1].bytes+int64(len(c.header)) != n {
		t.Errorf("tracks %+v", info)
	}
	t.Logf("1 h clip of 4 Mbit/s: %.2f GB (header %.2f MB) in %v (first pass %v, %.0f MB/s); peak heap in use %.1f MB (%.1f MB before), %.1f MB allocated in all",
		float64(n)/1e9, float64(len(c.header))/1e6, elapsed.Round(time.Millisecond), planned.Round(time.Millisecond), float64(n)/1e6/elapsed.Seconds(),
		float64(peak.Load())/(1<<20), float64(before.HeapInuse)/(1<<20), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
}

type clipTrackInfo struct {
	id              uint32
	samples, chunks int
	seconds         float64 // media duration
	bytes           int64   // sum of the sample sizes
}

// clipHeaderInfo reads the sample tables of an MP4 header (ftyp, moov and
// the start of the mdat).
func clipHeaderInfo(t *testing.T, b []byte) []clipTrackInfo {
	fsize := int(binary.BigEndian.Uint32(b))
	moov, err := findBox(b[fsize:fsize+int(binary.BigEndian.Uint32(b[fsize:]))], "moov")
	if err != nil {
		t.Fatal(err)
	}
	var out []clipTrackInfo
	eachBox(moov, func(typ string, trak []byte) error {
		if typ != "trak" {
			return nil
		}
		ti := clipTrackInfo{id: trackID(trak)}
		mdhd, err := findBox(trak, "mdia", "mdhd")
		if err != nil {
			t.Fatal(err)
		}
		if mdhd[0] == 0 {
			ti.seconds = float64(binary.BigEndian.Uint32(mdhd[16:])) / float64(binary.BigEndian.Uint32(mdhd[12:]))
		} else {
			ti.seconds = float64(binary.BigEndian.Uint64(mdhd[24:])) / float64(binary.BigEndian.Uint32(mdhd[20:]))
		}
		stbl, err := findBox(trak, "mdia", "minf", "stbl")
		if err != nil {
			t.Fatal(err)
		}
		stsz, err := findBox(stbl, "stsz")
		if err != nil {
			t.Fatal(err)
		}
		ti.samples = int(binary.BigEndian.Uint32(stsz[8:]))
		for i := range ti.samples {
			ti.bytes += int64(binary.BigEndian.Uint32(stsz[12+4*i:]))
		}
		co64, err := findBox(stbl, "co64")
		if err != nil {
			t.Fatal(err)
		}
		ti.chunks = int(binary.BigEndian.Uint32(co64[4:]))
		out = append(out, ti)
		return nil
	})
	return out
}

// BenchmarkWriteClip1h writes an hour of a 4 Mbit/s stream to io.Discard.
func BenchmarkWriteClip1h(b *testing.B) {
	src := newClipLoopSource(b, 1800)
	t0 := src.tmpl.ProducerStart
	b.SetBytes(src.bytes * 1800)
	b.ReportAllocs()
	for b.Loop() {
		src.Rewind(context.Background())
		if _, err := WriteClip(context.Background(), io.Discard, src, t0, t0.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}

// clipHeaderWriter keeps the first len(buf) bytes written and counts the rest.
type clipHeaderWriter struct {
	buf []byte
	n   int64
}

func (w *clipHeaderWriter) Write(p []byte) (int, error) {
	if w.n < int64(len(w.buf)) {
		copy(w.buf[w.n:], p)
	}
	w.n += int64(len(p))
	return len(p), nil
}

// TestWriteClipOver4GB writes a clip of more than 4 GiB: the mdat has a
// 64-bit size and the co64 offsets go past 4 GiB.
func TestWriteClipOver4GB(t *testing.T) {
	tracks, _ := ffmpegFragments(t, "h264.ts", 1)
	payload := make([]byte, 1<<20)
	const perFrag, nfrag = 50, 92 // 4.49 GiB
	frags := make([]*Fragment, nfrag)
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for k := range frags {
		ss := make([]Sample, perFrag)
		for j := range ss {
			ss[j] = Sample{DTS: int64(k*perFrag+j) * 3600, Duration: 3600, Keyframe: j == 0, Payload: payload}
		}
		frags[k] = &Fragment{Metadata: Metadata{Number: uint64(k + 1), ProducerStart: t0.Add(time.Duration(k) * 2 * time.Second)},
			TrackConfigs: tracks[:1], Samples: [][]Sample{ss}}
	}
	c, err := PlanClip(context.Background(), &clipSliceSource{frags: frags}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	w := &clipHeaderWriter{buf: make([]byte, 1<<16)}
	n, err := c.Stream(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	media := int64(nfrag * perFrag << 20)
	if n != c.Size() || n < media {
		t.Fatalf("wrote %d, Size() %d", n, c.Size())
	}
	b := w.buf
	_, _, _, err = boxHeader(b) // ftyp
	if err != nil {
		t.Fatal(err)
	}
	fsize := int(binary.BigEndian.Uint32(b))
	msize := int(binary.BigEndian.Uint32(b[fsize:]))
	moov := b[fsize : fsize+msize]
	mdat := b[fsize+msize:]
	if string(mdat[4:8]) != "mdat" || binary.BigEndian.Uint32(mdat) != 1 || binary.BigEndian.Uint64(mdat[8:]) != uint64(media+16) {
		t.Errorf("mdat header % x, want a 64-bit size of %d", mdat[:16], media+16)
	}
	co64, err := findBox(moov[8:], "trak", "mdia", "minf", "stbl", "co64")
	if err != nil {
		t.Fatal(err)
	}
	if cnt := binary.BigEndian.Uint32(co64[4:]); cnt != nfrag {
		t.Fatalf("%d chunks, want %d", cnt, nfrag)
	}
	last := binary.BigEndian.Uint64(co64[8+8*(nfrag-1):])
	if want := uint64(n) - perFrag<<20; last != want {
		t.Errorf("last chunk at %d, want %d", last, want)
	}
	if tr, err := ParseInit(b[:fsize+msize]); err != nil || !tr[0].Equal(&tracks[0]) {
		t.Errorf("ParseInit: %v %v", tr, err)
	}
}

// clipPlayPage plays the clip at /clip.mp4 in a <video> and POSTs what it
// saw to /report when it ends, fails, or after 30 s.
const clipPlayPage = `<!doctype html><html><body><video id=v muted playsinline></video><script>
const v = document.getElementById('v'), sizes = [];
v.addEventListener('resize', () => sizes.push(v.videoWidth + 'x' + v.videoHeight));
let sent = false;
function report(why) {
  if (sent) return; sent = true;
  const q = v.getVideoPlaybackQuality();
  fetch('/report', {method: 'POST', body: JSON.stringify({why, time: v.currentTime, duration: v.duration,
    error: v.error ? v.error.code + ' ' + v.error.message : '', sizes, frames: q.totalVideoFrames})});
}
v.addEventListener('ended', () => report('ended'));
v.addEventListener('error', () => report('error'));
setTimeout(() => report('timeout'), 30000);
v.src = '/clip.mp4';
v.playbackRate = 4;
v.play().catch(e => report('play: ' + e));
</script></body></html>`

type clipChromiumReport struct {
	Why      string
	Time     float64
	Duration float64
	Error    string
	Sizes    []string
	Frames   int
}

// clipPlayInChromium serves the clip of frags between from and to the way the
// playback API does (PlanClip, Content-Length, Stream, no range requests)
// and plays it in a headless Chromium to its end.
func clipPlayInChromium(t *testing.T, frags []*Fragment, from, to time.Time) clipChromiumReport {
	t.Helper()
	bin := testenv.RequireChromium(t)
	reports := make(chan clipChromiumReport, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, clipPlayPage)
	})
	mux.HandleFunc("GET /clip.mp4", func(w http.ResponseWriter, r *http.Request) {
		c, err := PlanClip(r.Context(), &clipSliceSource{frags: frags}, from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(c.Size(), 10))
		if _, err := c.Stream(r.Context(), w); err != nil {
			t.Logf("serving the clip: %v", err)
		}
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep clipChromiumReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err == nil {
			select {
			case reports <- rep:
			default:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	profile, err := os.MkdirTemp("", "tributary-clip-chromium-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)
	var log bytes.Buffer
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-breakpad",
		"--disable-extensions", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
		"--user-data-dir="+filepath.Join(profile, "profile"), srv.URL+"/")
	cmd.Stdout, cmd.Stderr, cmd.Dir = &log, &log, profile
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(profile, "config"), "XDG_CACHE_HOME="+filepath.Join(profile, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the browser and its helpers, all started here
		<-done
	}()
	select {
	case rep := <-reports:
		return rep
	case <-time.After(60 * time.Second):
		t.Fatal("no report from Chromium within 60 s")
	}
	return clipChromiumReport{}
}

// TestWriteClipChromium plays clips in a browser, served as the playback
// API serves them: B-frames with an edit list, and SPS changes, which
// Chromium follows through the in-band parameter sets (it keeps the first
// sample entry).
func TestWriteClipChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("plays clips in Chromium: skipped with -short")
	}
	t.Run("B-frames", func(t *testing.T) {
		_, frags := ffmpegFragments(t, "h264_bframes_aac.ts", 8)
		t0 := frags[0].ProducerStart
		from, to := t0.Add(2500*time.Millisecond), t0.Add(6200*time.Millisecond)
		frames, _, dur := clipVideoSpan(frags, from, to)
		rep := clipPlayInChromium(t, frags, from, to)
		if rep.Why != "ended" || rep.Error != "" || rep.Frames < frames-2 || !clipNear(rep.Duration, dur.Seconds(), 0.05) {
			t.Errorf("Chromium: %+v; want the end of %v s and %d frames", rep, dur.Seconds(), frames)
		}
	})
	t.Run("SPS changes", func(t *testing.T) {
		_, frags := ffmpegFragments(t, "h264_reschange.ts", 8)
		clipOutOfBandParams(t, frags)
		t0 := frags[0].ProducerStart
		from, to := t0.Add(2500*time.Millisecond), t0.Add(8*time.Second)
		frames, _, dur := clipVideoSpan(frags, from, to)
		rep := clipPlayInChromium(t, frags, from, to)
		if rep.Why != "ended" || rep.Error != "" || rep.Frames < frames-2 || !clipNear(rep.Duration, dur.Seconds(), 0.05) ||
			!slices.Contains(rep.Sizes, "640x360") || !slices.Contains(rep.Sizes, "320x180") {
			t.Errorf("Chromium: %+v; want the end of %v s, %d frames of 640x360 then 320x180", rep, dur.Seconds(), frames)
		}
	})
}
