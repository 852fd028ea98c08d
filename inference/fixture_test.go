package inference

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/internal/fixture"
	"github.com/tributary-io/tributary/internal/testenv"
)

// encodedClip encodes 2 s of 320x240 H.264 at 10 fps (a keyframe every
// second, no B-frames) with ffmpeg and returns its access units, in MP4
// sample format, with the SPS and PPS.
func encodedClip(t testing.TB) (aus [][]byte, keys []bool, sps, pps []byte) {
	testenv.RequireFFmpeg(t)
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "2",
		"-c:v", "libx264", "-g", "10", "-bf", "0", "-x264-params", "aud=1", "-pix_fmt", "yuv420p", "-f", "h264", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	var cur []byte
	key := false
	flush := func() {
		if len(cur) > 0 {
			aus, keys = append(aus, cur), append(keys, key)
		}
		cur, key = nil, false
	}
	for _, n := range splitAnnexB(out) {
		switch n[0] & 0x1f {
		case 9:
			flush()
		case 7:
			sps = n
		case 8:
			pps = n
		default:
			if n[0]&0x1f == 5 {
				key = true
			}
			cur = binary.BigEndian.AppendUint32(cur, uint32(len(n)))
			cur = append(cur, n...)
		}
	}
	flush()
	return aus, keys, sps, pps
}

func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 {
			break
		}
		b = b[i+3:]
		j := bytes.Index(b, []byte{0, 0, 1})
		n := b
		if j >= 0 {
			n = b[:j]
		}
		n = bytes.TrimRight(n, "\x00")
		if len(n) > 0 {
			out = append(out, n)
		}
		if j < 0 {
			break
		}
		b = b[j:]
	}
	return out
}

// clipInput makes the stored form of a fragment of the encoded clip:
// fMP4 init segment and fragment.
func clipInput(t testing.TB, stream string, number uint64, start time.Time) *Input {
	aus, keys, sps, pps := encodedClip(t)
	tr := fragment.Track{ID: 1, Kind: fragment.KindVideo, Codec: fragment.CodecH264, TimeScale: 90000, SPS: sps, PPS: pps}
	if err := tr.FillFromParams(); err != nil {
		t.Fatal(err)
	}
	f := &fragment.Fragment{TrackConfigs: []fragment.Track{tr}, Samples: make([][]fragment.Sample, 1)}
	for i, au := range aus[:10] {
		f.Samples[0] = append(f.Samples[0], fragment.Sample{DTS: int64(i) * 9000, Duration: 9000, Keyframe: keys[i], Payload: au})
	}
	f.Metadata = fragment.Metadata{Stream: stream, Number: number, ProducerStart: start, ProducerEnd: start.Add(time.Second),
		ServerTime: start.Add(time.Second), Duration: time.Second, Container: fragment.ContainerFMP4, Keyframes: 1, SampleCount: 10}
	enc, err := fixture.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return &Input{Meta: enc.Meta, Init: enc.Init, Data: enc.Data}
}

// syntheticInput is a fragment of made-up samples (valid containers,
// undecodable pictures) of the given sizes, the first a keyframe.
func syntheticInput(t testing.TB, stream string, number uint64, start time.Time, sizes ...int) *Input {
	f, err := fixture.Synthetic(stream, number, start, sizes...)
	if err != nil {
		t.Fatal(err)
	}
	return &Input{Meta: f.Meta, Init: f.Init, Data: f.Data}
}

// localRecords is a record store over a local archive in a temporary
// directory.
func localRecords(t testing.TB) *Records {
	return &Records{Store: &archive.Local{Root: filepath.Join(t.TempDir(), "archive")}}
}

var quiet = slog.New(slog.DiscardHandler)

// storeInput puts a fragment and its init segment in an archive as the
// agent does.
func storeInput(t testing.TB, st archive.Store, in *Input) {
	f := &fixture.Fragment{Meta: in.Meta, Init: in.Init, Data: in.Data}
	if err := f.Put(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}
