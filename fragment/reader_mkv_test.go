package fragment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testenv"
)

// ---- a tiny EBML writer for tests (tw*) ----

func twCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func twID(id uint32) []byte {
	switch {
	case id >= 1<<24:
		return []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	case id >= 1<<16:
		return []byte{byte(id >> 16), byte(id >> 8), byte(id)}
	case id >= 1<<8:
		return []byte{byte(id >> 8), byte(id)}
	}
	return []byte{byte(id)}
}

// twSize encodes n as the shortest EBML size.
func twSize(n int) []byte {
	for l := 1; l <= 8; l++ {
		if uint64(n) < 1<<(7*l)-1 {
			v := uint64(n) | 1<<(7*l)
			b := make([]byte, l)
			for i := range l {
				b[i] = byte(v >> (8 * (l - 1 - i)))
			}
			return b
		}
	}
	panic("size")
}

// twUnknown is the 8-byte unknown size.
var twUnknown = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// twEl is an element of known size with the given body.
func twEl(id uint32, body ...[]byte) []byte {
	b := twCat(body...)
	return twCat(twID(id), twSize(len(b)), b)
}

// twOpen is the header of an element of unknown size.
func twOpen(id uint32) []byte { return twCat(twID(id), twUnknown) }

func twUint(id uint32, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	i := 0
	for i < 7 && b[i] == 0 {
		i++
	}
	return twEl(id, b[i:])
}

func twStr(id uint32, s string) []byte { return twEl(id, []byte(s)) }

func twFloat(id uint32, f float64) []byte {
	return twEl(id, binary.BigEndian.AppendUint64(nil, math.Float64bits(f)))
}

func twEBMLHeader() []byte {
	return twEl(mkvEBML, twUint(mkvEBMLVersion, 1), twUint(mkvEBMLReadVersion, 1), twUint(mkvEBMLMaxIDLength, 4),
		twUint(mkvEBMLMaxSizeLength, 8), twStr(mkvDocType, "matroska"), twUint(mkvDocTypeVersion, 4),
		twUint(mkvDocTypeReadVersion, 2))
}

func twInfo(scale uint64) []byte { return twEl(mkvInfo, twUint(mkvTimecodeScale, scale)) }

// twVideo and twAudio are TrackEntry elements.
func twVideo(num uint64) []byte {
	return twEl(mkvTrackEntry, twUint(mkvTrackNumber, num), twUint(mkvTrackUID, 100+num), twUint(mkvTrackType, mkvTrackVideo),
		twStr(mkvCodecID, "V_MPEG4/ISO/AVC"), twEl(mkvCodecPrivate, []byte{1, 0x64, 0, 0x1e, 0xff}),
		twUint(mkvDefaultDuration, 33333333), twEl(mkvVideo, twUint(mkvPixelWidth, 640), twUint(mkvPixelHeight, 360)))
}

func twAudio(num, defaultDuration uint64) []byte {
	parts := [][]byte{twUint(mkvTrackNumber, num), twUint(mkvTrackUID, 100+num), twUint(mkvTrackType, mkvTrackAudio),
		twStr(mkvCodecID, "A_AAC"), twEl(mkvCodecPrivate, []byte{0x11, 0x88}),
		twEl(mkvAudio, twFloat(mkvSamplingFrequency, 48000), twUint(mkvChannels, 2))}
	if defaultDuration > 0 {
		parts = append(parts, twUint(mkvDefaultDuration, defaultDuration))
	}
	return twEl(mkvTrackEntry, parts...)
}

func twSimpleTag(name, value string) []byte {
	return twEl(mkvSimpleTag, twStr(mkvTagName, name), twStr(mkvTagString, value))
}

// twTags is a Tags element with one segment-wide Tag of name/value pairs.
func twTags(kv ...string) []byte {
	parts := [][]byte{twEl(mkvTargets, twUint(mkvTargetTypeVal, 50))}
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, twSimpleTag(kv[i], kv[i+1]))
	}
	return twEl(mkvTags, twEl(mkvTag, parts...))
}

// twBlockBody is a (Simple)Block body: track, relative timecode, flags, data.
func twBlockBody(track uint64, rel int16, flags byte, data ...[]byte) []byte {
	return twCat([]byte{0x80 | byte(track), byte(uint16(rel) >> 8), byte(rel)}, []byte{flags}, twCat(data...))
}

func twSimpleBlock(track uint64, rel int16, key bool, data []byte) []byte {
	var flags byte
	if key {
		flags = 0x80
	}
	return twEl(mkvSimpleBlock, twBlockBody(track, rel, flags, data))
}

// twFrame is a frame payload of n bytes starting with tag.
func twFrame(tag byte, n int) []byte {
	b := bytes.Repeat([]byte{tag}, n)
	return b
}

// twSignedVint encodes an EBML-lacing size difference.
func twSignedVint(d int64) []byte {
	for l := 1; l <= 8; l++ {
		bias := int64(1)<<(7*l-1) - 1
		if d >= -bias && d <= bias {
			v := uint64(d+bias) | 1<<(7*l)
			b := make([]byte, l)
			for i := range l {
				b[i] = byte(v >> (8 * (l - 1 - i)))
			}
			return b
		}
	}
	panic("vint")
}

// twKVSFragment is one GetMedia fragment: an EBML header, a Segment and a
// Cluster of unknown size, the fragment tags before the cluster and the
// continuation tags after it, as Kinesis Video Streams returns them.
func twKVSFragment(number uint64, producerMs uint64) []byte {
	secs := func(ms uint64) string { return fmt.Sprintf("%d.%03d", ms/1000, ms%1000) }
	return twCat(
		twEBMLHeader(),
		twOpen(mkvSegment),
		twInfo(1000000),
		twEl(mkvTracks, twVideo(1), twAudio(2, 0)),
		twTags(TagFragmentNumber, strconv.FormatUint(number, 10), TagServerTimestamp, secs(producerMs+1500),
			TagProducerTimestamp, secs(producerMs)),
		twOpen(mkvCluster),
		twUint(mkvTimecode, producerMs),
		twSimpleBlock(1, 0, true, twFrame(0x65, 100)),
		twSimpleBlock(2, 0, true, twFrame(0x21, 10)),
		twSimpleBlock(2, 21, true, twFrame(0x21, 11)),
		twSimpleBlock(1, 33, false, twFrame(0x41, 20)),
		twEl(mkvVoid, make([]byte, 3)),
		twSimpleBlock(2, 43, true, twFrame(0x21, 12)),
		twTags(TagMillisBehindNow, "42", TagContinuationToken, strconv.FormatUint(number+1, 10)),
	)
}

// ---- helpers ----

// readMKV reads every cluster of b (cloned), and the final error (nil at io.EOF).
func readMKV(b []byte, setup func(*MKVReader)) ([]*MKVCluster, error) {
	r := NewMKVReader(bytes.NewReader(b))
	if setup != nil {
		setup(r)
	}
	var out []*MKVCluster
	for {
		c, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, c.Clone())
	}
}

func mkvSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mkv", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allFrames(cs []*MKVCluster) []MKVFrame {
	var fs []MKVFrame
	for _, c := range cs {
		fs = append(fs, c.Frames...)
	}
	return fs
}

// ---- tests ----

// mkvFiles are the committed samples (fragment/testdata/mkv/gen.sh). The
// frame counts are ffprobe's:
//
//	ffprobe -v error -count_packets -show_entries stream=index,codec_name,nb_read_packets -of csv=p=0 FILE
//
// and the keyframes (indexes among the video frames) come from
//
//	ffprobe -v error -select_streams v:0 -show_entries packet=flags -of csv=p=0 FILE | grep -n K
var mkvFiles = []struct {
	name      string
	codecs    []string
	frames    []int // per track
	clusters  int
	keyframes []int // video frame indexes
	bframes   bool  // video timestamps are not monotonic
	scale     uint64
}{
	{"h264_aac.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, []int{36, 57}, 2, []int{0, 30}, false, 1000000},
	{"h265_aac.mkv", []string{"V_MPEGH/ISO/HEVC", "A_AAC"}, []int{15, 24}, 1, []int{0}, false, 1000000},
	{"h264_opus.mkv", []string{"V_MPEG4/ISO/AVC", "A_OPUS"}, []int{15, 25}, 1, []int{0}, false, 1000000},
	{"h264_bframes_aac.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, []int{20, 29}, 1, []int{0}, true, 1000000},
	{"live.mkv", []string{"V_MPEG4/ISO/AVC", "A_OPUS"}, []int{18, 30}, 3, []int{0}, false, 1000000},
	{"gst.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, []int{18, 28}, 1, []int{0}, false, 1000000},
	{"laced.mka", []string{"A_AAC"}, []int{29}, 1, nil, false, 20832},
}

func TestMKVReaderFiles(t *testing.T) {
	for _, tc := range mkvFiles {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := readMKV(mkvSample(t, tc.name), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != tc.clusters {
				t.Errorf("%d clusters, want %d", len(cs), tc.clusters)
			}
			checkMKVClusters(t, cs, tc.codecs, tc.frames, tc.keyframes, tc.bframes, tc.scale, 0)
		})
	}
}

func checkMKVClusters(t *testing.T, cs []*MKVCluster, codecs []string, frames, keyframes []int, bframes bool, scale uint64, segment int) {
	t.Helper()
	if len(cs) == 0 {
		t.Fatal("no clusters")
	}
	tracks := cs[0].Tracks
	// GStreamer's matroskamux sets no keyframe flag on audio SimpleBlocks.
	noAudioKeys := strings.HasPrefix(tracks[0].Name, "Video")
	if len(tracks) != len(codecs) {
		t.Fatalf("%d tracks, want %d", len(tracks), len(codecs))
	}
	for i, tr := range tracks {
		if tr.CodecID != codecs[i] {
			t.Errorf("track %d: codec %q, want %q", i, tr.CodecID, codecs[i])
		}
		if len(tr.CodecPrivate) == 0 {
			t.Errorf("track %d: no CodecPrivate", i)
		}
		switch tr.CodecID {
		case "V_MPEG4/ISO/AVC", "V_MPEGH/ISO/HEVC":
			if tr.Type != mkvTrackVideo || tr.PixelWidth != 640 || tr.PixelHeight != 360 || tr.CodecPrivate[0] != 1 {
				t.Errorf("video track %+v", tr)
			}
		case "A_OPUS":
			if !bytes.HasPrefix(tr.CodecPrivate, []byte("OpusHead")) || tr.SeekPreRoll != 80000000 {
				t.Errorf("opus track %+v", tr)
			}
			fallthrough
		default:
			if tr.Type != mkvTrackAudio || tr.SamplingFrequency != 48000 || tr.Channels != 1 {
				t.Errorf("audio track %+v", tr)
			}
		}
	}
	var prevTC int64 = -1
	for _, c := range cs {
		if c.Segment != segment || c.TimecodeScale != scale {
			t.Errorf("cluster: segment %d scale %d", c.Segment, c.TimecodeScale)
		}
		if c.Timecode <= prevTC {
			t.Errorf("cluster timecode %d after %d", c.Timecode, prevTC)
		}
		prevTC = c.Timecode
	}
	count := make([]int, len(tracks))
	last := make([]int64, len(tracks))
	var keys []int
	for _, f := range allFrames(cs) {
		i := int(f.Track) - 1
		if i < 0 || i >= len(tracks) || tracks[i].Number != f.Track {
			t.Fatalf("frame of track %d", f.Track)
		}
		if len(f.Data) == 0 || cap(f.Data) != len(f.Data) {
			t.Fatalf("frame %d of track %d: len %d cap %d", count[i], f.Track, len(f.Data), cap(f.Data))
		}
		if tracks[i].Type == mkvTrackVideo {
			// length-prefixed NAL units that fill the frame exactly
			d := f.Data
			for len(d) > 0 {
				if len(d) < 4 || int(binary.BigEndian.Uint32(d)) > len(d)-4 {
					t.Fatalf("video frame %d: NAL lengths do not fit the frame", count[i])
				}
				d = d[4+binary.BigEndian.Uint32(d):]
			}
			if f.Keyframe {
				keys = append(keys, count[i])
			}
			if f.Duration != 33333333 {
				t.Errorf("video frame %d: duration %d", count[i], f.Duration)
			}
		} else if !f.Keyframe && !noAudioKeys {
			t.Errorf("audio frame %d not a keyframe", count[i])
		}
		if count[i] > 0 && f.Time <= last[i] && !(bframes && tracks[i].Type == mkvTrackVideo) {
			t.Errorf("track %d frame %d: time %d after %d", f.Track, count[i], f.Time, last[i])
		}
		last[i] = f.Time
		count[i]++
	}
	if !slices.Equal(count, frames) {
		t.Errorf("frames per track %v, want %v", count, frames)
	}
	if keyframes != nil && !slices.Equal(keys, keyframes) {
		t.Errorf("keyframes at %v, want %v", keys, keyframes)
	}
}

// TestMKVReaderBFrames: blocks carry presentation timestamps in decode
// order, so with B-frames the video times go back and forth.
func TestMKVReaderBFrames(t *testing.T) {
	cs, err := readMKV(mkvSample(t, "h264_bframes_aac.mkv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var times []int64
	for _, f := range allFrames(cs) {
		if f.Track == 1 {
			times = append(times, f.Time)
		}
	}
	if slices.IsSorted(times) {
		t.Error("B-frame video times are in order")
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	// the cut at 0.6 s leaves a hole before the last frame (a P-frame whose
	// B-frames were cut off)
	for i := 1; i < len(sorted)-1; i++ {
		if d := sorted[i] - sorted[i-1]; d < 32e6 || d > 35e6 {
			t.Errorf("presentation times %d apart (%v)", d, sorted[:i+1])
			break
		}
	}
}

// TestMKVReaderMatchesFFprobe compares every frame with the packets ffprobe
// reads: order, size, keyframe flag and timestamp.
func TestMKVReaderMatchesFFprobe(t *testing.T) {
	testenv.RequireFFmpeg(t)
	for _, tc := range mkvFiles {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join("testdata", "mkv", tc.name)
			out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,size,flags", "-of", "csv=p=0", p).Output()
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Fields(string(out))
			cs, err := readMKV(mkvSample(t, tc.name), nil)
			if err != nil {
				t.Fatal(err)
			}
			fs := allFrames(cs)
			if len(fs) != len(lines) {
				t.Fatalf("%d frames, ffprobe reads %d packets", len(fs), len(lines))
			}
			for i, l := range lines {
				var idx, size int
				var pts float64
				var flags string
				if _, err := fmt.Sscanf(strings.ReplaceAll(l, ",", " "), "%d %f %d %s", &idx, &pts, &size, &flags); err != nil {
					t.Fatalf("ffprobe line %q: %v", l, err)
				}
				f := fs[i]
				// ffmpeg marks every audio packet a keyframe (its codecs are
				// intra-only), whatever the block says: compare video only.
				key := strings.HasPrefix(flags, "K") || cs[0].Tracks[idx].Type != mkvTrackVideo
				if int(f.Track) != idx+1 || len(f.Data) != size || (f.Keyframe || cs[0].Tracks[idx].Type != mkvTrackVideo) != key || math.Abs(float64(f.Time)/1e9-pts) > 0.0005 {
					t.Errorf("frame %d: track %d size %d key %v time %.6f; ffprobe: stream %d size %d flags %s pts %.6f",
						i, f.Track, len(f.Data), f.Keyframe, float64(f.Time)/1e9, idx, size, flags, pts)
				}
			}
		})
	}
}

func TestMKVReaderConcatenated(t *testing.T) {
	a, b := mkvSample(t, "h264_aac.mkv"), mkvSample(t, "h265_aac.mkv")
	cs, err := readMKV(twCat(a, b, a), nil)
	if err != nil {
		t.Fatal(err)
	}
	var segs []int
	for _, c := range cs {
		if len(segs) == 0 || segs[len(segs)-1] != c.Segment {
			segs = append(segs, c.Segment)
		}
	}
	if !slices.Equal(segs, []int{0, 1, 2}) {
		t.Fatalf("segments %v", segs)
	}
	checkMKVClusters(t, cs[:2], mkvFiles[0].codecs, mkvFiles[0].frames, mkvFiles[0].keyframes, false, 1000000, 0)
	checkMKVClusters(t, cs[2:3], mkvFiles[1].codecs, mkvFiles[1].frames, mkvFiles[1].keyframes, false, 1000000, 1)
	checkMKVClusters(t, cs[3:], mkvFiles[0].codecs, mkvFiles[0].frames, mkvFiles[0].keyframes, false, 1000000, 2)
}

// twUnknownSizes rewrites the sizes of the Segment and of every Cluster of
// a file to "unknown" in place (all ones in the same number of bytes).
func twUnknownSizes(t *testing.T, b []byte) []byte {
	b = bytes.Clone(b)
	hdr := func(p int) (id uint32, sizeAt, sizeLen int, size int) {
		n := mrIDLen(b[p])
		for _, c := range b[p : p+n] {
			id = id<<8 | uint32(c)
		}
		m := mrSizeLen(b[p+n])
		return id, p + n, m, int(mrSizeValue(b[p+n : p+n+m]))
	}
	unknown := func(at, n int) {
		b[at] = byte(0xFF >> (n - 1))
		for i := 1; i < n; i++ {
			b[at+i] = 0xFF
		}
	}
	p := 0
	for p < len(b) {
		id, at, n, size := hdr(p)
		if id != mkvSegment {
			p = at + n + size
			continue
		}
		end := at + n + size
		if size < 0 {
			end = len(b)
		}
		unknown(at, n)
		q := at + n
		for q < end {
			id, at, n, size := hdr(q)
			if id == mkvCluster {
				unknown(at, n)
			}
			q = at + n + size
		}
		p = end
	}
	return b
}

// TestMKVReaderUnknownSizes reads the ffmpeg samples with the sizes of the
// Segment and the Clusters made unknown, as live producers write them: the
// same frames come out.
func TestMKVReaderUnknownSizes(t *testing.T) {
	for _, name := range []string{"h264_aac.mkv", "live.mkv", "h264_opus.mkv"} {
		t.Run(name, func(t *testing.T) {
			orig := mkvSample(t, name)
			want, err := readMKV(orig, nil)
			if err != nil {
				t.Fatal(err)
			}
			mod := twUnknownSizes(t, orig)
			if bytes.Equal(mod, orig) {
				t.Fatal("nothing rewritten")
			}
			got, err := readMKV(twCat(mod, mod), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2*len(want) {
				t.Fatalf("%d clusters, want %d", len(got), 2*len(want))
			}
			for i, c := range got {
				w := want[i%len(want)]
				if c.Segment != i/len(want) || c.Timecode != w.Timecode || len(c.Frames) != len(w.Frames) {
					t.Fatalf("cluster %d: segment %d timecode %d, %d frames; want timecode %d, %d frames", i, c.Segment, c.Timecode, len(c.Frames), w.Timecode, len(w.Frames))
				}
				for j := range c.Frames {
					a, b := c.Frames[j], w.Frames[j]
					if a.Track != b.Track || a.Time != b.Time || a.Keyframe != b.Keyframe || !bytes.Equal(a.Data, b.Data) {
						t.Fatalf("cluster %d frame %d differs", i, j)
					}
				}
			}
		})
	}
}

// TestMKVReaderKVS reads a GetMedia-like stream: one segment per fragment,
// segments and clusters of unknown size, tags before and after the cluster.
func TestMKVReaderKVS(t *testing.T) {
	stream := twCat(twKVSFragment(7, 1795748400000), twKVSFragment(8, 1795748402000))
	cs, err := readMKV(stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d clusters", len(cs))
	}
	for i, c := range cs {
		num := strconv.Itoa(7 + i)
		if c.Segment != i || c.Tags[TagFragmentNumber] != num || c.Tags[TagContinuationToken] != strconv.Itoa(8+i) || c.Tags[TagMillisBehindNow] != "42" {
			t.Errorf("cluster %d: segment %d tags %v", i, c.Segment, c.Tags)
		}
		p, err := strconv.ParseFloat(c.Tags[TagProducerTimestamp], 64)
		if err != nil || int64(math.Round(p*1000)) != c.Timecode {
			t.Errorf("producer timestamp %q, cluster timecode %d", c.Tags[TagProducerTimestamp], c.Timecode)
		}
		want := []struct {
			track uint64
			ms    int64
			key   bool
			size  int
			dur   int64
		}{{1, 0, true, 100, 33333333}, {2, 0, true, 10, 0}, {2, 21, true, 11, 0}, {1, 33, false, 20, 33333333}, {2, 43, true, 12, 0}}
		if len(c.Frames) != len(want) {
			t.Fatalf("%d frames", len(c.Frames))
		}
		for j, w := range want {
			f := c.Frames[j]
			if f.Track != w.track || f.Time != (c.Timecode+w.ms)*1e6 || f.Keyframe != w.key || len(f.Data) != w.size || f.Duration != w.dur {
				t.Errorf("frame %d: %+v", j, f)
			}
		}
	}
	if cs[0].Tags[TagFragmentNumber] != "7" {
		t.Error("the first segment's tags changed when the second was read")
	}
}

// TestMKVReaderWriterRoundTrip reads what MKVWriter writes, fragments
// concatenated as GetMedia serves them.
func TestMKVReaderWriterRoundTrip(t *testing.T) {
	tracks, frags := ffmpegFragments(t, "h264_bframes_aac.ts", 3)
	var w MKVWriter
	var stream []byte
	var err error
	for _, f := range frags {
		if stream, err = w.Append(stream, f); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := readMKV(stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	var segs int
	got := make(map[uint64][]MKVFrame)
	for _, c := range cs {
		if c.Segment+1 > segs {
			segs = c.Segment + 1
			f := frags[c.Segment]
			if c.Tags[TagFragmentNumber] != strconv.FormatUint(f.Number, 10) || c.Tags["site"] != "lab" || len(c.Binary[TagTiming]) == 0 {
				t.Errorf("segment %d tags %v", c.Segment, c.Tags)
			}
			if c.Timecode != f.ProducerStart.UnixMilli() {
				t.Errorf("segment %d: cluster timecode %d, producer start %d", c.Segment, c.Timecode, f.ProducerStart.UnixMilli())
			}
		}
		for _, fr := range c.Frames {
			got[fr.Track] = append(got[fr.Track], fr)
		}
	}
	if segs != len(frags) {
		t.Fatalf("%d segments, want %d", segs, len(frags))
	}
	for i, tr := range tracks {
		var want []Sample
		for _, f := range frags {
			want = append(want, f.Samples[i]...)
		}
		g := got[uint64(tr.ID)]
		if len(g) != len(want) {
			t.Fatalf("track %d: %d frames, want %d", tr.ID, len(g), len(want))
		}
		for j := range want {
			if !bytes.Equal(g[j].Data, want[j].Payload) || g[j].Keyframe != want[j].Keyframe {
				t.Fatalf("track %d frame %d differs", tr.ID, j)
			}
		}
	}
}

func TestMKVReaderLacing(t *testing.T) {
	sizes := []int{300, 255, 0, 7, 10}
	var frames [][]byte
	for i, n := range sizes {
		frames = append(frames, twFrame(byte('a'+i), n))
	}
	xiph := []byte{byte(len(sizes) - 1), 255, 45, 255, 0, 0, 7}
	ebml := twCat([]byte{byte(len(sizes) - 1), 0x41, 0x2C}, // 300
		twSignedVint(255-300), twSignedVint(0-255), twSignedVint(7-0))
	fixed := twFrame('f', 4*25)
	seg := twCat(twEBMLHeader(), twEl(mkvSegment,
		twInfo(1000000),
		twEl(mkvTracks, twAudio(2, 20000000), twAudio(3, 0)),
		twEl(mkvCluster,
			twUint(mkvTimecode, 1000),
			twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x80|0x02, xiph, twCat(frames...))),
			twEl(mkvSimpleBlock, twBlockBody(2, 100, 0x80|0x06, ebml, twCat(frames...))),
			twEl(mkvSimpleBlock, twBlockBody(2, 200, 0x80|0x04, []byte{3}, fixed)),
			// a laced Block in a BlockGroup with a BlockDuration, on a track
			// without DefaultDuration: the duration is split evenly
			twEl(mkvBlockGroup,
				twEl(mkvBlock, twBlockBody(3, 300, 0x04, []byte{1}, twFrame('g', 8))),
				twUint(mkvBlockDuration, 40)),
		)))
	cs, err := readMKV(seg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := cs[0].Frames
	// the empty frame of each of the first two blocks is dropped
	if len(fs) != 2*(len(sizes)-1)+4+2 {
		t.Fatalf("%d frames", len(fs))
	}
	for k, base := range []int64{1000, 1100} {
		j := 0
		for i, n := range sizes {
			if n == 0 {
				continue
			}
			f := fs[k*(len(sizes)-1)+j]
			j++
			if !bytes.Equal(f.Data, frames[i]) || f.Time != base*1e6+int64(i)*20e6 || f.Duration != 20e6 || !f.Keyframe || f.Track != 2 {
				t.Errorf("lacing %d frame %d: %d bytes at %d (want %d), key %v", k, i, len(f.Data), f.Time, n, f.Keyframe)
			}
		}
	}
	for i, f := range fs[8:12] {
		if len(f.Data) != 25 || f.Time != 1200e6+int64(i)*20e6 {
			t.Errorf("fixed lacing frame %d: %d bytes at %d", i, len(f.Data), f.Time)
		}
	}
	for i, f := range fs[12:] {
		if len(f.Data) != 4 || f.Time != 1300e6+int64(i)*20e6 || f.Duration != 20e6 || !f.Keyframe || f.Track != 3 {
			t.Errorf("BlockGroup frame %d: %+v", i, f)
		}
	}
	// 256 empty frames in a 5-byte block make nothing
	cs, err = readMKV(twCat(twEBMLHeader(), twEl(mkvSegment, twEl(mkvTracks, twAudio(2, 0)),
		twEl(mkvCluster, twUint(mkvTimecode, 0), twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x84, []byte{255}))))), nil)
	if err != nil || len(cs) != 1 || len(cs[0].Frames) != 0 {
		t.Errorf("empty laced frames: %v, %+v", err, cs)
	}
}

func TestMKVReaderBlockGroup(t *testing.T) {
	seg := twCat(twEBMLHeader(), twEl(mkvSegment,
		twEl(mkvTracks, twVideo(1)),
		twEl(mkvCluster,
			twUint(mkvTimecode, 5),
			twEl(mkvBlockGroup, twEl(mkvBlock, twBlockBody(1, 0, 0, []byte{0, 0, 0, 1, 0x65})), twUint(mkvBlockDuration, 40)),
			twEl(mkvBlockGroup, twEl(mkvReferenceBlock, []byte{0xDF}), twEl(mkvBlock, twBlockBody(1, -3, 0, []byte{0, 0, 0, 1, 0x41}))),
		),
		// Tracks after the first cluster replace the tracks for the next ones.
		twEl(mkvTracks, twAudio(1, 0)),
		twEl(mkvInfo, twUint(mkvTimecodeScale, 1000)),
		twEl(mkvCluster, twUint(mkvTimecode, 7), twSimpleBlock(1, 1, true, []byte{1})),
	))
	cs, err := readMKV(seg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := cs[0].Frames
	if len(fs) != 2 || !fs[0].Keyframe || fs[0].Duration != 40e6 || fs[0].Time != 5e6 ||
		fs[1].Keyframe || fs[1].Time != 2e6 || fs[1].Duration != 33333333 {
		t.Errorf("frames %+v", fs)
	}
	if c := cs[1]; c.Tracks[0].CodecID != "A_AAC" || c.TimecodeScale != 1000 || c.Frames[0].Time != 8000 {
		t.Errorf("second cluster %+v", c)
	}
}

// TestMKVReaderTruncated cuts inputs at every byte: the result is an error
// wrapping io.ErrUnexpectedEOF, or a clean end where an unknown-size element
// may end (between blocks of a live cluster).
func TestMKVReaderTruncated(t *testing.T) {
	kvs := twKVSFragment(1, 1000)
	known := twCat(twEBMLHeader(), twEl(mkvSegment, twEl(mkvTracks, twVideo(1), twAudio(2, 0)), twTags("a", "b"),
		twEl(mkvCluster, twUint(mkvTimecode, 0), twSimpleBlock(1, 0, true, twFrame(1, 30)), twSimpleBlock(2, 0, true, twFrame(2, 20)))))
	opus := mkvSample(t, "h264_opus.mkv")
	for _, tc := range []struct {
		name  string
		b     []byte
		step  int
		clean bool // some cuts end cleanly
	}{{"kvs", kvs, 1, true}, {"known", known, 1, false}, {"h264_opus.mkv", opus, 7, false}} {
		t.Run(tc.name, func(t *testing.T) {
			for n := 1; n < len(tc.b); n += tc.step {
				_, err := readMKV(tc.b[:n], nil)
				switch {
				case err == nil && tc.clean:
				case !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrInvalidMKV):
					t.Fatalf("cut at %d of %d: %v", n, len(tc.b), err)
				}
			}
		})
	}
}

// mkvHostile are malformed or hostile inputs with the error they must give;
// they are also the fuzzer's seeds.
func mkvHostile() []struct {
	name string
	in   []byte
	want error
} {
	hdr := twEBMLHeader()
	tracks := twEl(mkvTracks, twVideo(1), twAudio(2, 0))
	seg := func(children ...[]byte) []byte { return twCat(hdr, twEl(mkvSegment, children...)) }
	cluster := func(children ...[]byte) []byte {
		return seg(tracks, twEl(mkvCluster, append([][]byte{twUint(mkvTimecode, 0)}, children...)...))
	}
	nested := twSimpleTag("leaf", "x")
	for range 100 {
		nested = twEl(mkvSimpleTag, twStr(mkvTagName, "n"), nested)
	}
	var manyTracks [][]byte
	for i := range 65 {
		manyTracks = append(manyTracks, twAudio(uint64(i+1), 0))
	}
	return []struct {
		name string
		in   []byte
		want error
	}{
		{"garbage", []byte("this is not a Matroska file at all, just some text."), ErrInvalidMKV},
		{"garbage after a segment", twCat(seg(tracks), []byte("GARBAGE!")), ErrInvalidMKV},
		{"id of 5 bytes", twCat(hdr, []byte{0x08, 1, 2, 3, 4, 0x81, 0}), ErrInvalidMKV},
		{"reserved id", twCat(hdr, []byte{0xFF, 0x80}), ErrInvalidMKV},
		{"size of 9 bytes", twCat(hdr, twID(mkvSegment), []byte{0, 0x80, 0, 0, 0, 0, 0, 0, 0}), ErrInvalidMKV},
		{"not matroska", twEl(mkvEBML, twStr(mkvDocType, "avi")), ErrInvalidMKV},
		{"no ebml header", twEl(mkvSegment, tracks), ErrInvalidMKV},
		{"child larger than its parent", seg(twCat(twID(mkvTracks), twSize(20), twID(mkvTrackEntry), twSize(200), make([]byte, 18))), ErrInvalidMKV},
		{"cluster larger than the segment", twCat(hdr, twID(mkvSegment), twSize(10), twID(mkvCluster), twSize(100), make([]byte, 100)), ErrInvalidMKV},
		{"block larger than its cluster", seg(tracks, twCat(twID(mkvCluster), twSize(8), twUint(mkvTimecode, 0), twID(mkvSimpleBlock), twSize(1000), make([]byte, 4))), ErrInvalidMKV},
		{"block of 1 TB", twCat(hdr, twOpen(mkvSegment), tracks, twOpen(mkvCluster), twUint(mkvTimecode, 0),
			twID(mkvSimpleBlock), []byte{0x01, 0, 0x01, 0, 0, 0, 0, 0}, []byte{0x81, 0, 0, 0x80}), ErrMKVLimit},
		{"header of 1 TB", twCat(hdr, twOpen(mkvSegment), twID(mkvTags), []byte{0x01, 0, 0x01, 0, 0, 0, 0, 0}, []byte{1, 2, 3}), ErrMKVLimit},
		{"nested 100 levels", seg(tracks, twEl(mkvTags, twEl(mkvTag, nested))), ErrMKVLimit},
		{"65 tracks", seg(twEl(mkvTracks, manyTracks...)), ErrMKVLimit},
		{"lace count overflow", cluster(twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x82, []byte{255, 255, 255}, make([]byte, 10)))), ErrInvalidMKV},
		{"xiph lace sizes past the block", cluster(twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x82, []byte{1, 200}, make([]byte, 10)))), ErrInvalidMKV},
		{"ebml lace negative size", cluster(twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x86, []byte{2, 0x85}, twSignedVint(-20), make([]byte, 10)))), ErrInvalidMKV},
		{"fixed lacing uneven", cluster(twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x84, []byte{2}, make([]byte, 10)))), ErrInvalidMKV},
		{"laced block without count", cluster(twEl(mkvSimpleBlock, twBlockBody(2, 0, 0x84))), ErrInvalidMKV},
		{"short block", cluster(twEl(mkvSimpleBlock, []byte{0x81, 0})), ErrInvalidMKV},
		{"unknown track", cluster(twSimpleBlock(9, 0, true, []byte{1, 2, 3})), ErrInvalidMKV},
		{"block before timecode", seg(tracks, twEl(mkvCluster, twSimpleBlock(1, 0, true, []byte{1}))), ErrInvalidMKV},
		{"blockgroup without block", cluster(twEl(mkvBlockGroup, twUint(mkvBlockDuration, 3))), ErrInvalidMKV},
		{"unknown-size info", twCat(hdr, twOpen(mkvSegment), twOpen(mkvInfo)), ErrInvalidMKV},
		{"timecode scale 0", seg(twInfo(0)), ErrInvalidMKV},
		{"timecode of 9 bytes", seg(tracks, twEl(mkvCluster, twEl(mkvTimecode, make([]byte, 9)))), ErrInvalidMKV},
		{"timecode overflow", seg(tracks, twEl(mkvCluster, twUint(mkvTimecode, math.MaxUint64), twSimpleBlock(1, 0, true, []byte{1}))), ErrInvalidMKV},
		{"timestamp overflow", seg(twInfo(1<<40), tracks, twEl(mkvCluster, twUint(mkvTimecode, 1<<60), twSimpleBlock(1, 0, true, []byte{1}))), ErrInvalidMKV},
		{"float of 3 bytes", seg(twEl(mkvTracks, twEl(mkvTrackEntry, twUint(mkvTrackNumber, 1), twEl(mkvAudio, twEl(mkvSamplingFrequency, []byte{1, 2, 3}))))), ErrInvalidMKV},
		{"integer of 9 bytes", seg(twEl(mkvTracks, twEl(mkvTrackEntry, twEl(mkvTrackNumber, make([]byte, 9))))), ErrInvalidMKV},
		{"track number 0", seg(twEl(mkvTracks, twEl(mkvTrackEntry, twUint(mkvTrackType, 1)))), ErrInvalidMKV},
		{"two tracks numbered 1", seg(twEl(mkvTracks, twVideo(1), twAudio(1, 0))), ErrInvalidMKV},
		{"cluster inside a known-size cluster", seg(tracks, twEl(mkvCluster, twUint(mkvTimecode, 0), twEl(mkvCluster))), ErrInvalidMKV},
		{"ebml header inside a known-size segment", seg(hdr), ErrInvalidMKV},
		{"two ebml headers", twCat(hdr, hdr), ErrInvalidMKV},
		{"truncated known-size segment", twCat(hdr, twID(mkvSegment), twSize(100), tracks), io.ErrUnexpectedEOF},
		{"truncated block", twCat(hdr, twOpen(mkvSegment), tracks, twOpen(mkvCluster), twUint(mkvTimecode, 0), twID(mkvSimpleBlock), twSize(50), []byte{0x81, 0, 0, 0x80}), io.ErrUnexpectedEOF},
		{"truncated header", twCat(hdr, twOpen(mkvSegment), tracks, []byte{0x1F, 0x43}), io.ErrUnexpectedEOF},
		{"only an ebml header", hdr, io.ErrUnexpectedEOF},
	}
}

func TestMKVReaderHostile(t *testing.T) {
	for _, tc := range mkvHostile() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMKV(tc.in, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %q does not name an offset", err)
			}
			if tc.want == ErrMKVLimit && errors.Is(err, ErrInvalidMKV) {
				t.Errorf("a limit error is also ErrInvalidMKV: %v", err)
			}
		})
	}
}

// TestMKVReaderErrorNames checks what an error says: the element, its ID
// and its offset.
func TestMKVReaderErrorNames(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{
		{"unknown track", "invalid Matroska: SimpleBlock (0xA3) at offset "},
		{"unknown track", "block for unknown track 9"},
		{"block of 1 TB", "Matroska limit exceeded: SimpleBlock (0xA3) at offset 166: size 1099511627776 over the limit"},
		{"nested 100 levels", "SimpleTag (0x67C8) at offset "},
		{"truncated block", "invalid Matroska: unexpected EOF: SimpleBlock (0xA3) at offset "},
	} {
		for _, h := range mkvHostile() {
			if h.name == tc.name {
				_, err := readMKV(h.in, nil)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error %q does not contain %q", tc.name, err, tc.want)
				}
			}
		}
	}
}

// TestMKVReaderBoundedAllocation: sizes under the limits but past the end
// of the stream allocate about what was read, not what was claimed.
func TestMKVReaderBoundedAllocation(t *testing.T) {
	hdr := twEBMLHeader()
	tracks := twEl(mkvTracks, twVideo(1))
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"block of 60 MiB", twCat(hdr, twOpen(mkvSegment), tracks, twOpen(mkvCluster), twUint(mkvTimecode, 0),
			twID(mkvSimpleBlock), []byte{0x01, 0, 0, 0, 0x03, 0xC0, 0, 0}, []byte{0x81, 0, 0, 0x80}, make([]byte, 1000))},
		{"tracks of 1 MiB", twCat(hdr, twOpen(mkvSegment), twID(mkvTracks), []byte{0x01, 0, 0, 0, 0, 0x10, 0, 0}, make([]byte, 100))},
		{"skipped cues of 1 TB", twCat(hdr, twOpen(mkvSegment), twID(mkvCues), []byte{0x01, 0, 0x01, 0, 0, 0, 0, 0}, make([]byte, 100))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := readMKV(tc.in, nil)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("allocated %d bytes", n)
			}
		})
	}
}

func TestMKVReaderLimits(t *testing.T) {
	b := mkvSample(t, "h264_aac.mkv")
	for _, tc := range []struct {
		name  string
		in    []byte
		setup func(*MKVReader)
	}{
		{"MaxBlockSize", b, func(r *MKVReader) { r.MaxBlockSize = 1000 }},
		{"MaxHeaderSize", b, func(r *MKVReader) { r.MaxHeaderSize = 100 }},
		{"MaxTracks", b, func(r *MKVReader) { r.MaxTracks = 1 }},
		{"MaxTags", twKVSFragment(1, 0), func(r *MKVReader) { r.MaxTags = 2 }},
		{"MaxFramesPerCluster", b, func(r *MKVReader) { r.MaxFramesPerCluster = 10 }},
		{"MaxClusterBytes", b, func(r *MKVReader) { r.MaxClusterBytes = 10000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMKV(tc.in, tc.setup)
			if !errors.Is(err, ErrMKVLimit) || !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %v", err)
			}
		})
	}
	// zero means the default
	if _, err := readMKV(b, func(r *MKVReader) { *r = MKVReader{br: r.br, segment: -1, segEnd: mrUnknown} }); err != nil {
		t.Error(err)
	}
}

// TestMKVReaderSticky: after an error, Next keeps returning it.
func TestMKVReaderSticky(t *testing.T) {
	r := NewMKVReader(strings.NewReader("garbage"))
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err1 != err2 {
		t.Errorf("%v then %v", err1, err2)
	}
	r = NewMKVReader(bytes.NewReader(nil))
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("empty stream: %v", err)
	}
}

func TestMKVReaderOffset(t *testing.T) {
	b := twKVSFragment(1, 0)
	r := NewMKVReader(bytes.NewReader(b))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.Offset() != int64(len(b)) { // the trailing Tags are read with the cluster
		t.Errorf("offset %d after the cluster, want %d", r.Offset(), len(b))
	}
}

// twManyClusters is one segment of n clusters of 10 frames each.
func twManyClusters(n int) []byte {
	var cl [][]byte
	for i := range n {
		var blocks [][]byte
		blocks = append(blocks, twUint(mkvTimecode, uint64(i*100)))
		for j := range 10 {
			blocks = append(blocks, twSimpleBlock(1, int16(j*10), j == 0, twFrame(byte(j), 1000+j)))
		}
		cl = append(cl, twEl(mkvCluster, blocks...))
	}
	return twCat(twEBMLHeader(), twOpen(mkvSegment), twEl(mkvTracks, twVideo(1)), twTags("a", "b"), twCat(cl...))
}

// TestMKVReaderAllocs: reading a cluster allocates the MKVCluster and
// nothing per element or per frame once the buffers have grown.
func TestMKVReaderAllocs(t *testing.T) {
	r := NewMKVReader(bytes.NewReader(twManyClusters(200)))
	for range 5 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if c, err := r.Next(); err != nil || len(c.Frames) != 10 {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%v allocations per cluster", allocs)
	}
}

// TestMKVReaderFramesReused documents that Frames are reused by Next and
// that Clone keeps them.
func TestMKVReaderFramesReused(t *testing.T) {
	r := NewMKVReader(bytes.NewReader(twManyClusters(3)))
	c0, _ := r.Next()
	keep := c0.Clone()
	first := bytes.Clone(c0.Frames[1].Data)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keep.Frames[1].Data, first) || keep.Timecode != 0 {
		t.Error("Clone did not keep the cluster")
	}
}

// TestMKVWriteFuzzSeeds writes the hostile inputs into the fuzz corpus
// (testdata/fuzz/FuzzMKVReader/hostile-*) when MKV_WRITE_FUZZ_SEEDS is set.
func TestMKVWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MKV_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MKV_WRITE_FUZZ_SEEDS=1 to rewrite the corpus seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzMKVReader")
	cases := append(mkvHostile(), struct {
		name string
		in   []byte
		want error
	}{"kvs fragment", twKVSFragment(1, 1000), nil})
	for _, tc := range cases {
		name := "hostile-" + strings.ReplaceAll(tc.name, " ", "-")
		if tc.want == nil {
			name = "valid-" + strings.ReplaceAll(tc.name, " ", "-")
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", tc.in)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mkvFuzzLimits keep the fuzzer's allocations small.
func mkvFuzzLimits(r *MKVReader) {
	r.MaxBlockSize = 1 << 20
	r.MaxClusterBytes = 4 << 20
	r.MaxHeaderSize = 64 << 10
	r.MaxFramesPerCluster = 1 << 14
}

// FuzzMKVReader feeds the reader arbitrary bytes: it must return clusters or
// an error wrapping a sentinel that names an offset, never panic, hang or
// allocate without bound. The seeds are the hostile inputs, hand-built
// streams and the committed samples; the samples are large for a fuzzer, so
// run it with a short minimization time:
//
//	go test -run XXX -fuzz FuzzMKVReader -fuzzminimizetime 5s -fuzztime 5m ./fragment/
func FuzzMKVReader(f *testing.F) {
	for _, tc := range mkvHostile() {
		f.Add(tc.in)
	}
	f.Add(twKVSFragment(1, 1000))
	f.Add(twManyClusters(2))
	for _, tc := range mkvFiles {
		f.Add(mkvSample(f, tc.name))
	}
	// Each input is also read after a valid stream head that leaves the
	// reader inside an unknown-size Cluster, so mutations reach blocks and
	// lacing quickly.
	head := twCat(twEBMLHeader(), twOpen(mkvSegment), twEl(mkvTracks, twVideo(1), twAudio(2, 20000000)),
		twOpen(mkvCluster), twUint(mkvTimecode, 1000))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzMKV(t, b)
		fuzzMKV(t, twCat(head, b))
	})
}

func fuzzMKV(t *testing.T, b []byte) {
	r := NewMKVReader(bytes.NewReader(b))
	mkvFuzzLimits(r)
	for n := 0; n < 1000; n++ { // at most 1000 clusters: bounded allocation
		c, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidMKV) && !errors.Is(err, ErrMKVLimit) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Fatalf("error names no offset: %v", err)
			}
			return
		}
		if r.Offset() > int64(len(b)) {
			t.Fatalf("offset %d past %d bytes", r.Offset(), len(b))
		}
		for _, fr := range c.Frames {
			if cap(fr.Data) != len(fr.Data) || len(fr.Data) > len(b) {
				t.Fatalf("frame of %d bytes (cap %d)", len(fr.Data), cap(fr.Data))
			}
		}
	}
}

// BenchmarkMKVRead reads a 10 s, 4 Mbit/s 720p H.264 + AAC file that
// ffmpeg writes at the start.
func BenchmarkMKVRead(b *testing.B) {
	testenv.RequireFFmpeg(b)
	p := filepath.Join(b.TempDir(), "bench.mkv")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-stream_loop", "1", "-i", filepath.Join("..", "testdata", "h264_aac.ts"),
		"-t", "10", "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-minrate", "4M", "-maxrate", "4M",
		"-bufsize", "2M", "-g", "30", "-c:a", "copy", "-f", "matroska", p)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v: %s", err, out)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := readMKV(data, nil)
	if err != nil {
		b.Fatal(err)
	}
	frames := len(allFrames(cs))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	for b.Loop() {
		r := NewMKVReader(bytes.NewReader(data))
		for {
			if _, err := r.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(frames*b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(frames*b.N), "allocs/frame")
	b.ReportMetric(float64(len(data))*8/10/1e6, "Mbit/s-file")
}
