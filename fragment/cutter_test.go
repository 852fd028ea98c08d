package fragment

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// testSPS is a 640x360 High-profile H.264 SPS (from x264).
var (
	testSPS = []byte{0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96}
	testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	// AAC-LC 48 kHz stereo.
	testASC = []byte{0x11, 0x90}
)

func testTracks() []Track {
	v := Track{ID: 1, Kind: KindVideo, Codec: CodecH264, TimeScale: 90000, SPS: testSPS, PPS: testPPS}
	if err := v.FillFromParams(); err != nil {
		panic(err)
	}
	a := Track{ID: 2, Kind: KindAudio, Codec: CodecAAC, TimeScale: 48000, Config: testASC}
	if err := a.FillFromParams(); err != nil {
		panic(err)
	}
	return []Track{v, a}
}

type feed struct {
	fps     int
	gop     int // frames per GOP
	audio   bool
	bframes bool
	base    time.Time
	frameNo int
	audioNo int
}

// run feeds d of media into c, interleaving audio ahead of video by ~40 ms
// like a real camera might.
func (f *feed) run(c *Cutter, d time.Duration) {
	frames := int(d.Seconds() * float64(f.fps))
	frameTicks := int64(90000 / f.fps)
	for i := 0; i < frames; i++ {
		n := f.frameNo
		f.frameNo++
		dts := int64(n) * frameTicks
		s := Sample{
			DTS:      dts,
			Keyframe: n%f.gop == 0,
			Payload:  bytes.Repeat([]byte{byte(n)}, 100+n%7),
		}
		if f.bframes {
			s.PTSOffset = int32(2 * frameTicks)
		}
		s.Time = f.base.Add(time.Duration(dts+int64(s.PTSOffset)) * time.Second / 90000).UnixNano()
		c.Write(0, s)
		if f.audio {
			// audio up to 40 ms ahead of this frame
			until := (dts + frameTicks) * 48000 / 90000
			until += 48000 * 40 / 1000
			for int64(f.audioNo)*1024 < until {
				ad := int64(f.audioNo) * 1024
				c.Write(1, Sample{DTS: ad, Duration: 1024, Keyframe: true, Time: f.base.Add(time.Duration(ad) * time.Second / 48000).UnixNano(), Payload: []byte{1, 2, 3}})
				f.audioNo++
			}
		}
	}
}

func collect(c *Cutter) *[]Fragment {
	var out []Fragment
	c.Emit = func(f *Fragment) {
		cp := *f
		cp.TrackConfigs = append([]Track(nil), f.TrackConfigs...)
		cp.Tracks = append([]TrackRef(nil), f.Tracks...)
		cp.Samples = make([][]Sample, len(f.Samples))
		for i, ss := range f.Samples {
			for _, s := range ss {
				s.Payload = append([]byte(nil), s.Payload...)
				cp.Samples[i] = append(cp.Samples[i], s)
			}
		}
		out = append(out, cp)
	}
	return &out
}

func TestCutterTargets(t *testing.T) {
	base := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		target  time.Duration
		fps     int
		gop     int
		audio   bool
		bframes bool
		want    time.Duration // duration of every full fragment
	}{
		{"2s target, 1s GOP", 2 * time.Second, 30, 30, true, false, 2 * time.Second},
		{"2s target, 0.8s GOP", 2 * time.Second, 30, 24, true, false, 2400 * time.Millisecond},
		{"0.5s target, 1s GOP", 500 * time.Millisecond, 30, 30, false, false, time.Second},
		{"10s target, 1s GOP", 10 * time.Second, 25, 25, true, true, 10 * time.Second},
		{"2s target, 3s GOP", 2 * time.Second, 30, 90, true, true, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cutter{Target: tc.target}
			out := collect(c)
			c.Reset(testTracks(), false)
			f := &feed{fps: tc.fps, gop: tc.gop, audio: tc.audio, bframes: tc.bframes, base: base}
			f.run(c, 31*time.Second)
			c.Flush()
			frags := *out
			if len(frags) < 3 {
				t.Fatalf("got %d fragments", len(frags))
			}
			for i, fr := range frags {
				v := fr.Samples[0]
				if !v[0].Keyframe {
					t.Errorf("fragment %d does not start with a keyframe", i)
				}
				if i < len(frags)-1 && fr.Duration != tc.want {
					t.Errorf("fragment %d: duration %v, want %v", i, fr.Duration, tc.want)
				}
				if fr.Discontinuity {
					t.Errorf("fragment %d flagged discontinuous", i)
				}
				if i > 0 {
					prev := frags[i-1]
					if d := fr.ProducerStart.Sub(prev.ProducerEnd); d != 0 {
						t.Errorf("fragment %d does not abut: gap %v", i, d)
					}
					// decode timeline continuous per track
					for ti := range fr.Samples {
						ps, cs := prev.Samples[ti], fr.Samples[ti]
						if len(ps) == 0 || len(cs) == 0 {
							continue
						}
						last := ps[len(ps)-1]
						if last.DTS+int64(last.Duration) != cs[0].DTS {
							t.Errorf("fragment %d track %d: tfdt %d, previous ended at %d", i, ti, cs[0].DTS, last.DTS+int64(last.Duration))
						}
					}
				}
				for ti, ss := range fr.Samples {
					for j, s := range ss {
						if s.Duration == 0 {
							t.Errorf("fragment %d track %d sample %d: zero duration", i, ti, j)
						}
					}
				}
			}
			if frags[0].Samples[0][0].DTS != 0 {
				t.Errorf("first tfdt %d, want 0", frags[0].Samples[0][0].DTS)
			}
		})
	}
}

func TestCutterWaitsForKeyframe(t *testing.T) {
	c := &Cutter{}
	out := collect(c)
	c.Reset(testTracks(), false)
	// three non-keyframes, then a keyframe
	for i := 0; i < 3; i++ {
		c.Write(0, Sample{DTS: int64(i) * 3000, Payload: []byte{1}})
		c.Write(1, Sample{DTS: int64(i) * 1600, Duration: 1024, Keyframe: true, Payload: []byte{1}})
	}
	c.Write(0, Sample{DTS: 9000, Keyframe: true, Time: 1e9, Payload: []byte{2}})
	c.Write(0, Sample{DTS: 12000, Time: 1e9 + 33e6, Payload: []byte{3}})
	c.Flush()
	if len(*out) != 1 {
		t.Fatalf("got %d fragments", len(*out))
	}
	f := (*out)[0]
	if len(f.Samples[0]) != 2 || f.Samples[0][0].DTS != 0 {
		t.Fatalf("video samples %+v", f.Samples[0])
	}
	if len(f.Samples[1]) != 0 {
		t.Fatalf("audio from before the keyframe was kept: %+v", f.Samples[1])
	}
}

func TestCutterGOPTooLong(t *testing.T) {
	c := &Cutter{MaxDuration: 5 * time.Second}
	out := collect(c)
	var drops []error
	c.OnDrop = func(err error, n int, b int64) { drops = append(drops, err) }
	c.Reset(testTracks()[:1], false)
	// keyframe, 7 s of P frames, keyframe, 3 s, keyframe
	dts := int64(0)
	write := func(key bool) {
		c.Write(0, Sample{DTS: dts, Keyframe: key, Time: dts * 1e9 / 90000, Payload: []byte{1, 2}})
		dts += 3000
	}
	write(true)
	for dts < 7*90000 {
		write(false)
	}
	write(true)
	for dts < 10*90000 {
		write(false)
	}
	write(true)
	c.Flush()
	if len(drops) != 1 || !errors.Is(drops[0], ErrGOPTooLong) {
		t.Fatalf("drops %v", drops)
	}
	if len(*out) != 2 {
		t.Fatalf("got %d fragments", len(*out))
	}
	f := (*out)[0]
	if !f.Discontinuity {
		t.Error("fragment after a dropped GOP is not flagged discontinuous")
	}
	if f.Duration > 5*time.Second {
		t.Errorf("fragment of %v", f.Duration)
	}
}

func TestCutterGOPTooLarge(t *testing.T) {
	c := &Cutter{MaxBytes: 1000}
	out := collect(c)
	var drops []error
	c.OnDrop = func(err error, n int, b int64) { drops = append(drops, err) }
	c.Reset(testTracks()[:1], false)
	for i := 0; i < 100; i++ {
		c.Write(0, Sample{DTS: int64(i) * 3000, Keyframe: i%60 == 0, Payload: make([]byte, 50)})
	}
	c.Flush()
	if len(drops) == 0 || !errors.Is(drops[0], ErrGOPTooLarge) {
		t.Fatalf("drops %v", drops)
	}
	for _, f := range *out {
		n := 0
		for _, s := range f.Samples[0] {
			n += len(s.Payload)
		}
		if n > 1000 {
			t.Errorf("emitted a fragment of %d bytes", n)
		}
	}
}

func TestCutterConfigChange(t *testing.T) {
	c := &Cutter{Target: 2 * time.Second}
	out := collect(c)
	tracks := testTracks()
	c.Reset(tracks, false)
	f := &feed{fps: 30, gop: 30, audio: true, base: time.Unix(1e9, 0)}
	f.run(c, 2500*time.Millisecond)
	nt := append([]Track(nil), tracks...)
	nt[0].PPS = []byte{0x68, 0xee, 0x3c, 0x80}
	c.SetTracks(nt)
	f.run(c, 5*time.Second)
	c.Flush()
	frags := *out
	if len(frags) < 3 {
		t.Fatalf("got %d fragments", len(frags))
	}
	// the fragment open at the change closes at the next keyframe (3 s)
	if frags[1].Duration != time.Second {
		t.Errorf("fragment at config change: %v", frags[1].Duration)
	}
	if frags[1].InitHash == frags[2].InitHash {
		t.Error("init hash did not change with the codec config")
	}
	if !bytes.Equal(frags[2].TrackConfigs[0].PPS, nt[0].PPS) {
		t.Error("new fragment does not carry the new PPS")
	}
	if frags[2].Discontinuity {
		t.Error("config change flagged as discontinuity")
	}
}

func TestCutterResetAndPrevious(t *testing.T) {
	c := &Cutter{}
	out := collect(c)
	base := time.Unix(1e9, 0)
	c.SetPrevious(base.Add(-10 * time.Second))
	c.Reset(testTracks(), false)
	f := &feed{fps: 30, gop: 30, audio: true, base: base}
	f.run(c, 4*time.Second)
	// reconnect: new session, timestamps restart
	c.Reset(testTracks(), true)
	f2 := &feed{fps: 30, gop: 30, audio: true, base: base.Add(7 * time.Second)}
	f2.run(c, 3*time.Second)
	c.Flush()
	frags := *out
	want := []bool{true, false, true, false}
	if len(frags) != len(want) {
		t.Fatalf("got %d fragments, want %d", len(frags), len(want))
	}
	for i, w := range want {
		if frags[i].Discontinuity != w {
			t.Errorf("fragment %d: discontinuity %v, want %v", i, frags[i].Discontinuity, w)
		}
	}
	if frags[2].Samples[0][0].DTS != 0 {
		t.Error("new session does not restart tfdt at 0")
	}
}

func TestCutterAudioOnly(t *testing.T) {
	c := &Cutter{}
	out := collect(c)
	c.Reset(testTracks()[1:], false)
	for i := 0; i < 48000*7/1024; i++ {
		c.Write(0, Sample{DTS: int64(i) * 1024, Duration: 1024, Keyframe: true, Time: int64(i) * 1024 * 1e9 / 48000, Payload: []byte{1}})
	}
	c.Flush()
	if len(*out) != 4 {
		t.Fatalf("got %d fragments", len(*out))
	}
	for _, f := range (*out)[:3] {
		if f.Duration < 2*time.Second || f.Duration > 2*time.Second+22*time.Millisecond {
			t.Errorf("audio fragment of %v", f.Duration)
		}
	}
}

func TestCutterSteadyStateAllocs(t *testing.T) {
	c := &Cutter{Emit: func(*Fragment) {}}
	c.Reset(testTracks(), false)
	f := &feed{fps: 30, gop: 30, audio: true, base: time.Unix(1e9, 0)}
	f.run(c, 10*time.Second) // warm up buffers
	payload := make([]byte, 1200)
	n := f.frameNo
	allocs := testing.AllocsPerRun(1000, func() {
		c.Write(0, Sample{DTS: int64(n) * 3000, Keyframe: n%30 == 0, Time: int64(n) * 33e6, Payload: payload})
		n++
	})
	if allocs > 0 {
		t.Errorf("%v allocations per sample in steady state", allocs)
	}
}

// TestCutterParts: the parts of a fragment are exactly its samples, in
// order, each part at most about PartTarget long, the last one Final.
func TestCutterParts(t *testing.T) {
	c := &Cutter{Target: 2 * time.Second, PartTarget: 500 * time.Millisecond}
	frags := collect(c)
	type part struct {
		samples    [][]Sample
		final, ind bool
		dur        time.Duration
	}
	var parts []part
	c.EmitPart = func(p *Part) {
		cp := part{final: p.Final, ind: p.Independent, dur: p.Duration}
		for _, ss := range p.Samples {
			cp.samples = append(cp.samples, append([]Sample(nil), ss...))
		}
		parts = append(parts, cp)
	}
	c.Reset(testTracks(), false)
	(&feed{fps: 30, gop: 30, audio: true, bframes: true, base: time.Unix(1e9, 0)}).run(c, 9*time.Second)
	c.Flush()
	pi := 0
	for fi, f := range *frags {
		got := make([][]Sample, len(f.Samples))
		n := 0
		for {
			p := parts[pi]
			pi++
			n++
			if p.dur > 600*time.Millisecond {
				t.Errorf("fragment %d part %d lasts %v", fi, n, p.dur)
			}
			if n == 1 && !p.ind {
				t.Errorf("fragment %d: first part not independent", fi)
			}
			for ti := range p.samples {
				got[ti] = append(got[ti], p.samples[ti]...)
			}
			if p.final {
				break
			}
		}
		for ti := range f.Samples {
			if len(got[ti]) != len(f.Samples[ti]) {
				t.Fatalf("fragment %d track %d: parts hold %d samples, the fragment %d", fi, ti, len(got[ti]), len(f.Samples[ti]))
			}
			for j := range got[ti] {
				if got[ti][j].DTS != f.Samples[ti][j].DTS || got[ti][j].Duration != f.Samples[ti][j].Duration {
					t.Fatalf("fragment %d track %d sample %d differs in its part", fi, ti, j)
				}
			}
		}
		if n < 3 && fi < len(*frags)-1 {
			t.Errorf("fragment %d in %d parts", fi, n)
		}
	}
	if pi != len(parts) {
		t.Errorf("%d parts left over", len(parts)-pi)
	}
}

// TestCutterMemoryBounded: a 20 Mbit/s camera with 10 s GOPs (25 MB
// fragments) for 2 minutes of footage, each fragment encoded to fMP4 as the
// agent does: the heap stays within a few fragments' worth and does not
// grow from the first minute to the second.
func TestCutterMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 300 MB")
	}
	const fps, gop = 30, 300
	frame := 20_000_000 / 8 / fps // 83 kB
	var out []byte
	frags := 0
	c := &Cutter{Emit: func(f *Fragment) {
		out = AppendFMP4(out[:0], f)
		frags++
	}}
	c.Reset(testTracks()[:1], false)
	payload := make([]byte, frame)
	var ms runtime.MemStats
	heap := func() uint64 { // the Go heap and the sample chunks
		runtime.GC()
		runtime.ReadMemStats(&ms)
		inUse, free := chunks.residentBytes()
		return ms.HeapInuse + uint64(inUse+free)
	}
	before := heap()
	var firstMinute uint64
	for n := range 120 * fps {
		c.Write(0, Sample{DTS: int64(n) * 3000, Keyframe: n%gop == 0, Time: int64(n) * 1e9 / fps, Payload: payload})
		if n == 60*fps-1 { // the same point of a GOP as the end
			firstMinute = heap()
		}
	}
	after := heap()
	runtime.KeepAlive(c) // the cutter and its buffers are live at both points
	gopBytes := uint64(frame * gop)
	t.Logf("%d fragments of %d MB: memory %d MB before, %d MB after 1 min, %d MB after 2 min",
		frags, gopBytes>>20, before>>20, firstMinute>>20, after>>20)
	if frags < 10 {
		t.Fatalf("%d fragments", frags)
	}
	if after > before+3*gopBytes {
		t.Errorf("memory grew by %d MB for %d MB GOPs", (after-before)>>20, gopBytes>>20)
	}
	if after > firstMinute+gopBytes/2 {
		t.Errorf("memory grows: %d MB after 1 min, %d MB after 2 min", firstMinute>>20, after>>20)
	}
}

// TestCutterDataTrack: a sparse data track's samples (ONVIF documents,
// instants without a duration) stay in the fragment whose time holds them,
// the last one before a cut included; the fragment's config hash is its
// audio and video's.
func TestCutterDataTrack(t *testing.T) {
	tracks := append(testTracks()[:1], Track{ID: 2, Kind: KindData, Codec: CodecONVIF, TimeScale: 90000})
	c := &Cutter{Target: time.Second}
	out := collect(c)
	c.Reset(tracks, false)
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// 25 fps, a keyframe a second; a document every 700 ms, sent as it
	// would come, before the frame of its time
	doc := 0
	for n := range 25 * 5 {
		dts := int64(n) * 3600
		for int64(doc)*63000 < dts { // written once a frame of its time or later came
			d := int64(doc) * 63000
			c.Write(1, Sample{DTS: d, Keyframe: true, Time: base.Add(time.Duration(d) * time.Second / 90000).UnixNano(), Payload: []byte("<doc/>")})
			doc++
		}
		c.Write(0, Sample{DTS: dts, Keyframe: n%25 == 0, Time: base.Add(time.Duration(dts) * time.Second / 90000).UnixNano(), Payload: []byte{byte(n)}})
	}
	c.Flush()
	if len(*out) != 5 {
		t.Fatalf("%d fragments, want 5", len(*out))
	}
	seen := 0
	for i, f := range *out {
		if f.InitHash != ConfigHash(tracks[:1]) {
			t.Fatalf("fragment %d: hash %s", i, f.InitHash)
		}
		for _, s := range f.Samples[1] {
			at := base.Add(time.Duration(s.DTS) * time.Second / 90000) // DTS: on the session's timeline
			if at.Before(f.ProducerStart) || !at.Before(f.ProducerEnd) {
				t.Fatalf("fragment %d [%v, %v) holds a document of %v", i, f.ProducerStart, f.ProducerEnd, at)
			}
			seen++
		}
	}
	if seen != doc {
		t.Fatalf("%d documents in fragments, %d written", seen, doc)
	}
}

// TestCutterLateData: a data sample that comes after the keyframe that
// closed the fragment of its time goes into that fragment, which waits for
// it (DataWait) and is emitted after Closing; one later than DataWait goes
// into the next fragment at its start; one over MaxDataBytes is dropped,
// not the GOP; Flush keeps one of a time past the last frame.
func TestCutterLateData(t *testing.T) {
	tracks := append(testTracks()[:1], Track{ID: 2, Kind: KindData, Codec: CodecONVIF, TimeScale: 90000})
	var events []string
	var drops []error
	c := &Cutter{Target: time.Second, DataWait: 500 * time.Millisecond, MaxDataBytes: 100}
	out := collect(c)
	emit := c.Emit
	c.Emit = func(f *Fragment) {
		events = append(events, "emit")
		emit(f)
	}
	c.Closing = func(f *Fragment) { events = append(events, "closing") }
	c.OnDrop = func(err error, _ int, _ int64) { drops = append(drops, err) }
	c.Reset(tracks, false)
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	frame := func(n int) {
		dts := int64(n) * 3600
		c.Write(0, Sample{DTS: dts, Keyframe: n%25 == 0, Time: base.Add(time.Duration(dts) * time.Second / 90000).UnixNano(), Payload: []byte{byte(n)}})
	}
	doc := func(at time.Duration, size int) {
		c.Write(1, Sample{DTS: int64(at / (time.Second / 90000)), Keyframe: true, Payload: bytes.Repeat([]byte("<"), size)})
	}
	for n := range 26 { // fragment 0 closes at frame 25 (1 s)
		frame(n)
	}
	if !c.Held() || len(*out) != 0 || len(events) != 1 || events[0] != "closing" {
		t.Fatalf("after the cut: held %v, %d emitted, events %v", c.Held(), len(*out), events)
	}
	doc(960*time.Millisecond, 10) // late: of fragment 0's time
	for n := 26; n < 30; n++ {
		frame(n)
	}
	doc(1100*time.Millisecond, 10) // of fragment 1's time: fragment 0 needs wait no more
	if c.Held() || len(*out) != 1 {
		t.Fatalf("a later document did not release the held fragment: held %v, %d emitted", c.Held(), len(*out))
	}
	if got := (*out)[0].Samples[1]; len(got) != 1 || got[0].DTS != 86400 {
		t.Fatalf("fragment 0's documents: %+v", got)
	}
	for n := 30; n < 51; n++ { // fragment 1 closes at frame 50 (2 s)
		frame(n)
	}
	doc(1200*time.Millisecond, 1000) // over MaxDataBytes: dropped alone
	for n := 51; n < 64; n++ {       // 2.52 s: fragment 1 waited DataWait
		frame(n)
	}
	if c.Held() || len(*out) != 2 {
		t.Fatalf("DataWait: held %v, %d emitted", c.Held(), len(*out))
	}
	if len(drops) != 1 || drops[0] != ErrDataTooLarge {
		t.Fatalf("drops %v", drops)
	}
	doc(1900*time.Millisecond, 10) // too late even for waiting: at fragment 2's start
	for n := 64; n < 70; n++ {
		frame(n)
	}
	doc(5*time.Second, 10) // past the last frame at the flush: kept, at the end
	c.Flush()
	if len(*out) != 3 {
		t.Fatalf("%d fragments", len(*out))
	}
	f2 := (*out)[2]
	if got := f2.Samples[1]; len(got) != 2 || got[0].DTS != 50*3600 || got[1].DTS != 70*3600-1 {
		t.Fatalf("fragment 2's documents: %+v", got)
	}
	if n := len((*out)[1].Samples[1]); n != 1 {
		t.Fatalf("fragment 1 has %d documents, want 1 (the one of 1.1 s)", n)
	}
	if len((*out)[1].Samples[0]) != 25 {
		t.Fatalf("fragment 1 has %d frames: the dropped document cost video", len((*out)[1].Samples[0]))
	}
	want := []string{"closing", "emit", "closing", "emit", "closing", "emit"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
}

// FuzzCutterData drives a Cutter with video (a keyframe every k frames),
// AAC audio and data samples whose times lag the video by a varying
// amount, all from the input, and checks what it emits: every data sample
// written once a fragment was open comes out once, in order, inside its
// fragment's time range; Closing precedes each Emit of the same fragment;
// fragments follow each other; nothing is held after Flush.
func FuzzCutterData(f *testing.F) {
	f.Add([]byte{30, 0, 10, 0, 200, 5, 90, 0, 120, 3, 40, 250, 7, 7, 7})
	f.Add([]byte{5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{12, 255, 255, 0, 0, 128, 64, 32, 16, 8, 4, 2, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		tracks := append(testTracks(), Track{ID: 3, Kind: KindData, Codec: CodecONVIF, TimeScale: 90000})
		gop := 1 + int(in[0]%60)
		c := &Cutter{Target: time.Second, DataWait: time.Duration(in[1]%8) * 200 * time.Millisecond}
		if c.DataWait == 0 {
			c.DataWait = -1 // no waiting
		}
		var closing []time.Time
		var frags []Fragment
		out := collect(c)
		emit := c.Emit
		c.Emit = func(fr *Fragment) {
			if len(closing) != len(*out)+1 || !closing[len(*out)].Equal(fr.ProducerStart) {
				t.Fatalf("Emit of %v after Closing of %v", fr.ProducerStart, closing)
			}
			emit(fr)
		}
		c.Closing = func(fr *Fragment) { closing = append(closing, fr.ProducerStart) }
		c.Reset(tracks, false)
		base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
		at := func(ticks int64, scale int64) int64 {
			return base.Add(time.Duration(ticks) * time.Second / time.Duration(scale)).UnixNano()
		}
		written := 0 // data samples written while a fragment was open
		var lastDoc int64 = -1
		audio := int64(0)
		for n, b := range in[2:] {
			for frame := range 1 + int(b%4) {
				fn := int64(n*4 + frame)
				dts := fn * 3000
				open := c.started
				c.Write(0, Sample{DTS: dts, Keyframe: fn%int64(gop) == 0, Time: at(dts, 90000), Payload: []byte{1}})
				for audio*1024*90000/48000 < dts {
					c.Write(1, Sample{DTS: audio * 1024, Duration: 1024, Keyframe: true, Time: at(audio*1024, 48000), Payload: []byte{2}})
					audio++
				}
				if b&0x80 != 0 && frame == 0 {
					// a document of up to 1.5 s ago, never older than the last
					doc := max(dts-int64(b&0x7f)*1000, lastDoc, 0)
					if c.started || open {
						written++
					}
					lastDoc = doc
					c.Write(2, Sample{DTS: doc, Keyframe: true, Time: at(doc, 90000), Payload: []byte("<d/>")})
				}
			}
		}
		c.Flush()
		if c.Held() {
			t.Fatal("held after Flush")
		}
		frags = *out
		got := 0
		prev := int64(-1)
		for i, fr := range frags {
			if i > 0 && !fr.ProducerStart.After(frags[i-1].ProducerStart) {
				t.Fatalf("fragment %d starts at %v, after %v", i, fr.ProducerStart, frags[i-1].ProducerStart)
			}
			start := fr.Samples[0][0].DTS
			end := start + int64(fr.Duration/(time.Second/90000))
			for _, s := range fr.Samples[2] {
				if s.DTS < start || s.DTS >= end+1 || s.DTS < prev {
					t.Fatalf("fragment %d [%d, %d) holds a document at %d (previous %d)", i, start, end, s.DTS, prev)
				}
				prev = s.DTS
				got++
			}
		}
		if got != written {
			t.Fatalf("%d documents out, %d written", got, written)
		}
	})
}

// TestCutterHeldDuringDrop: a fragment held for late data is emitted
// DataWait after its end even while the fragment after it was dropped (a
// GOP over MaxBytes) and the cutter waits for a keyframe.
func TestCutterHeldDuringDrop(t *testing.T) {
	tracks := append(testTracks()[:1], Track{ID: 2, Kind: KindData, Codec: CodecONVIF, TimeScale: 90000})
	c := &Cutter{Target: time.Second, DataWait: 500 * time.Millisecond, MaxBytes: 40 << 10}
	out := collect(c)
	c.Reset(tracks, false)
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for n := range 90 { // a keyframe every 3 s; fragment 0 closes at 3 s
		dts := int64(n) * 3000
		size := 100
		if n >= 31 {
			size = 10000 // the next GOP outgrows MaxBytes within 4 frames and is dropped
		}
		c.Write(0, Sample{DTS: dts, Keyframe: n%90 == 0 || n == 30, Time: base.Add(time.Duration(dts) * time.Second / 90000).UnixNano(), Payload: make([]byte, size)})
	}
	if c.Held() || len(*out) != 1 {
		t.Fatalf("2 s after the cut, while a dropped GOP waits for a keyframe: held %v, %d emitted", c.Held(), len(*out))
	}
}
