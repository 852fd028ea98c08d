package fragment

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var (
	testVPS265 = []byte{0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0x95, 0x98, 0x09}
	testSPS265 = []byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24, 0xca, 0xe0, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0xe0, 0x80}
	testPPS265 = []byte{0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40}
)

func allCodecTracks(t testing.TB) []Track {
	tr := testTracks()
	h265 := Track{ID: 3, Kind: KindVideo, Codec: CodecH265, TimeScale: 90000, VPS: testVPS265, SPS: testSPS265, PPS: testPPS265}
	if err := h265.FillFromParams(); err != nil {
		t.Fatal(err)
	}
	return append(tr, h265,
		Track{ID: 4, Kind: KindAudio, Codec: CodecOpus, TimeScale: 48000, SampleRate: 48000, Channels: 2},
		Track{ID: 5, Kind: KindAudio, Codec: CodecPCMU, TimeScale: 8000, SampleRate: 8000, Channels: 1},
		Track{ID: 6, Kind: KindAudio, Codec: CodecPCMA, TimeScale: 8000, SampleRate: 8000, Channels: 1},
		Track{ID: 7, Kind: KindVideo, Codec: CodecVP9, TimeScale: 90000, Width: 640, Height: 360, Config: VP9Config(0, 8, 1, false)},
		// av1C around the sequence header Chrome sends over WebRTC (1920x804)
		Track{ID: 8, Kind: KindVideo, Codec: CodecAV1, TimeScale: 90000, Width: 1920, Height: 804,
			Config: []byte{0x81, 0x08, 0x0c, 0x00, 0x0a, 0x0b, 0, 0, 0, 66, 167, 191, 228, 96, 13, 0, 64}},
	)
}

func TestInitRoundTrip(t *testing.T) {
	tracks := allCodecTracks(t)
	for i := range tracks {
		one := tracks[i : i+1]
		b, err := MarshalInit(one)
		if err != nil {
			t.Fatalf("%s: %v", tracks[i].Codec, err)
		}
		got, err := ParseInit(b)
		if err != nil {
			t.Fatalf("%s: %v", tracks[i].Codec, err)
		}
		if !TracksEqual(got, one) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", tracks[i].Codec, got, one)
		}
	}
	b, err := MarshalInit(tracks)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseInit(b)
	if err != nil {
		t.Fatal(err)
	}
	if !TracksEqual(got, tracks) {
		t.Errorf("all tracks: round trip\n got %+v\nwant %+v", got, tracks)
	}
	if !bytes.Contains(b, []byte("hvc1")) || bytes.Contains(b, []byte("hev1")) {
		t.Error("H265 is not tagged hvc1")
	}
}

func TestFragmentRoundTrip(t *testing.T) {
	c := &Cutter{}
	tracks := testTracks()
	var frags [][]byte
	var want []Fragment
	collected := collect(c)
	emit := c.Emit
	c.Emit = func(f *Fragment) {
		f.Number = uint64(len(frags) + 7)
		frags = append(frags, AppendFMP4(nil, f))
		emit(f)
	}
	c.Reset(tracks, false)
	(&feed{fps: 30, gop: 30, audio: true, bframes: true, base: time.Unix(1e9, 0)}).run(c, 7*time.Second)
	c.Flush()
	want = *collected
	for i, b := range frags {
		got, err := ParseFMP4(b, tracks)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if got.Number != want[i].Number {
			t.Errorf("fragment %d: number %d", i, got.Number)
		}
		for ti := range tracks {
			g, w := got.Samples[ti], want[i].Samples[ti]
			if len(g) != len(w) {
				t.Fatalf("fragment %d track %d: %d samples, want %d", i, ti, len(g), len(w))
			}
			for j := range g {
				if g[j].DTS != w[j].DTS || g[j].PTSOffset != w[j].PTSOffset || g[j].Duration != w[j].Duration ||
					g[j].Keyframe != w[j].Keyframe || !bytes.Equal(g[j].Payload, w[j].Payload) {
					t.Fatalf("fragment %d track %d sample %d: got %+v want %+v", i, ti, j, g[j], w[j])
				}
			}
		}
		if got.Keyframes != want[i].Keyframes {
			t.Errorf("keyframes %d, want %d", got.Keyframes, want[i].Keyframes)
		}
	}
}

func TestAppendFMP4Allocs(t *testing.T) {
	var f *Fragment
	c := &Cutter{Emit: func(fr *Fragment) {
		if f == nil {
			cp := *fr
			f = &cp
		}
	}}
	c.Reset(testTracks(), false)
	(&feed{fps: 30, gop: 30, audio: true, base: time.Unix(1e9, 0)}).run(c, 5*time.Second)
	if f == nil {
		t.Fatal("no fragment")
	}
	buf := make([]byte, 0, 1<<20)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFMP4(buf[:0], f) }); n != 0 {
		t.Errorf("%v allocations per fragment", n)
	}
}

var parseCases = []struct {
	name string
	in   []byte
}{
	{"empty", nil},
	{"short header", []byte{0, 0, 0}},
	{"box larger than input", []byte{0, 0, 0, 100, 'm', 'o', 'o', 'f'}},
	{"size below header", []byte{0, 0, 0, 4, 'm', 'o', 'o', 'f'}},
	{"large size", []byte{0, 0, 0, 1, 'm', 'o', 'o', 'f', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	{"trun count huge", append([]byte{0, 0, 0, 0x34, 'm', 'o', 'o', 'f', 0, 0, 0, 0x2c, 't', 'r', 'a', 'f',
		0, 0, 0, 0x10, 't', 'f', 'h', 'd', 0, 2, 0, 0, 0, 0, 0, 1,
		0, 0, 0, 0x0c, 't', 'f', 'd', 't', 0, 0, 0, 0,
		0, 0, 0, 0x10, 't', 'r', 'u', 'n', 0, 0, 0x0f, 0x01}, 0xff, 0xff, 0xff, 0xff)},
	{"unknown box", []byte{0, 0, 0, 8, 'j', 'u', 'n', 'k'}},
}

func TestParseRejects(t *testing.T) {
	tracks := testTracks()
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseFMP4(tc.in, tracks); !errors.Is(err, ErrInvalidFMP4) {
				t.Errorf("ParseFMP4: %v", err)
			}
			if _, err := ParseInit(tc.in); err == nil {
				t.Errorf("ParseInit accepted it")
			}
		})
	}
}

func FuzzParseFMP4(f *testing.F) {
	tracks := testTracks()
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	c := &Cutter{Emit: func(fr *Fragment) { f.Add(AppendFMP4(nil, fr)) }}
	c.Reset(tracks, false)
	(&feed{fps: 30, gop: 15, audio: true, bframes: true, base: time.Unix(1e9, 0)}).run(c, 1*time.Second)
	c.Flush()
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFMP4(b, tracks)
		if err != nil {
			return
		}
		for _, ss := range fr.Samples {
			for _, s := range ss {
				_ = len(s.Payload)
			}
		}
	})
}

func FuzzParseInit(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	for _, tr := range allCodecTracks(f) {
		b, err := MarshalInit([]Track{tr})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tracks, err := ParseInit(b)
		if err != nil {
			return
		}
		if len(tracks) == 0 {
			t.Fatal("no tracks and no error")
		}
	})
}
