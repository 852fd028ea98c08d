package rtsp

import (
	"encoding/binary"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/rtpmedia"
	"github.com/tributary-io/tributary/internal/camsim"
)

// replay serves a recording over and over, each pass later in time, in
// reads of up to 32 KiB, as a socket would.
type replay struct {
	rec      *camsim.Recording
	orig     []frameRef
	pos      int
	pass     int
	buf      []byte
	net.Conn // not called
}

func (r *replay) Read(p []byte) (int, error) {
	if r.pos == len(r.buf) {
		r.pos = 0
		if r.buf == nil {
			r.buf = append([]byte(nil), r.rec.Stream...)
			for _, f := range r.rec.Frames {
				h := r.buf[f.Header:]
				r.orig = append(r.orig, frameRef{binary.BigEndian.Uint16(h[2:]), binary.BigEndian.Uint32(h[4:])})
			}
		}
		for i, f := range r.rec.Frames {
			rate := int64(r.rec.Desc.Medias[f.Media].Formats[0].ClockRate())
			// ticks of one loop first: pass × ns × rate overflows int64
			// after 12,800 loops (28 h of media)
			shift := uint32(int64(r.pass) * (int64(r.rec.Duration) * rate / int64(time.Second)))
			h := r.buf[f.Header:]
			binary.BigEndian.PutUint16(h[2:], r.orig[i].seq+uint16(r.pass*r.rec.Packets[f.Media]))
			binary.BigEndian.PutUint32(h[4:], r.orig[i].ts+shift)
		}
		r.pass++
	}
	n := copy(p[:min(len(p), 32<<10)], r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// cutterSink records what a session delivers into fragments, as the agent
// does (without the archive).
type cutterSink struct {
	c     fragment.Cutter
	out   []byte
	frags int
}

func (s *cutterSink) StartSession(ss ingest.Session)                   { s.c.Reset(ss.Tracks, false) }
func (s *cutterSink) WriteSample(i int, smp fragment.Sample)           { s.c.Write(i, smp) }
func (s *cutterSink) UpdateTracks(t []fragment.Track)                  { s.c.SetTracks(t) }
func (s *cutterSink) ClockChanged(string, string, time.Duration, bool) {}
func (s *cutterSink) EndSession(error)                                 { s.c.Flush() }

type frameRef struct {
	seq uint16
	ts  uint32
}

// rig replays a camera's recording through the TCP hot path into a
// cutter.
type rig struct {
	rec  *camsim.Recording
	src  *Source
	sink *cutterSink
	pass func() // one loop of the recording
}

func newRig(tb testing.TB) *rig {
	rec, err := camsim.Record("../../testdata/h264_aac.ts")
	if err != nil {
		tb.Fatal(err)
	}
	sink := &cutterSink{}
	sink.c.Emit = func(f *fragment.Fragment) {
		sink.out = fragment.AppendFMP4(sink.out[:0], f)
		sink.frags++
	}
	src := &Source{Counters: &ingest.Counters{}, Logger: slog.New(slog.DiscardHandler)}
	tracks, deps, _ := rtpmedia.Build(rec.Desc, src.Counters, rtpmedia.Options{})
	channels := make([]int, len(deps))
	for i := range deps {
		channels[i] = 2 * i
	}
	var ss session
	ss.init(src, tracks, deps, channels, sink, func() {}, ingest.Session{Tracks: tracks})
	rp := &replay{rec: rec}
	pc := newPacedConn(rp, 0, true)
	pc.keepalive = 0 // hand the reader a keepalive after each read: Read returns
	pc.start(ss.onFrame, 1)
	gortsplib := make([]byte, 4096)
	return &rig{rec: rec, src: src, sink: sink, pass: func() {
		for start := rp.pass; rp.pass == start; {
			if _, err := pc.Read(gortsplib); err != nil {
				tb.Fatal(err)
			}
		}
	}}
}

// mallocsPerPacket runs loops of the recording, after two to warm up, and
// returns the heap allocations per packet.
func (r *rig) mallocsPerPacket(loops int) float64 {
	r.pass()
	r.pass()
	packets := r.src.Counters.Packets.Load()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	for range loops {
		r.pass()
	}
	runtime.ReadMemStats(&ms)
	return float64(ms.Mallocs-mallocs) / float64(r.src.Counters.Packets.Load()-packets)
}

// TestIngestAllocations: packet in, fragment out, nothing allocated per
// packet in steady state (a handful per fragment, and the log lines of the
// producer clock stepping, which replaying 10 s loops in microseconds
// causes).
func TestIngestAllocations(t *testing.T) {
	r := newRig(t)
	per := r.mallocsPerPacket(20)
	if c := r.src.Counters; r.sink.frags < 20 || c.DecodeErrors.Load() != 0 || c.PacketsLost.Load() != 0 {
		t.Fatalf("%d fragments, %d decode errors, %d lost", r.sink.frags, c.DecodeErrors.Load(), c.PacketsLost.Load())
	}
	t.Logf("%.4f allocations per packet", per)
	if per > 0.01 {
		t.Errorf("%.4f allocations per packet", per)
	}
}

// BenchmarkIngestTCP measures the hot path of an RTSP/TCP camera, packet
// in to fragment out: the paced connection framing the byte stream, RTP
// parsing, depacketizing, the producer clock, the cutter and the fMP4
// encoding of each fragment. One op is one loop of testdata/h264_aac.ts
// (640x360 H.264 + AAC) as camsim sends it.
func BenchmarkIngestTCP(b *testing.B) {
	r := newRig(b)
	src, rec, sink, pass := r.src, r.rec, r.sink, r.pass
	pass() // warm up: buffers grow to the largest unit
	pass()
	packets := src.Counters.Packets.Load()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pass()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	packets = src.Counters.Packets.Load() - packets
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(packets), "ns/packet")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(packets), "allocs/packet")
	b.ReportMetric(float64(packets)/float64(b.N)/rec.Duration.Seconds(), "packets/s-of-video")
	if sink.frags == 0 || src.Counters.DecodeErrors.Load() != 0 || src.Counters.PacketsLost.Load() != 0 {
		b.Fatalf("%d fragments, %d decode errors, %d lost", sink.frags, src.Counters.DecodeErrors.Load(), src.Counters.PacketsLost.Load())
	}
}
