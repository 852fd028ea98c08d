package rtpmedia

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/fixture"
)

// recordSink keeps the samples a Session writes.
type recordSink struct {
	mu      sync.Mutex
	samples map[int][]fragment.Sample
}

func (s *recordSink) StartSession(ingest.Session) {}
func (s *recordSink) WriteSample(i int, smp fragment.Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples == nil {
		s.samples = map[int][]fragment.Sample{}
	}
	smp.Payload = nil
	s.samples[i] = append(s.samples[i], smp)
}
func (s *recordSink) UpdateTracks([]fragment.Track)                    {}
func (s *recordSink) ClockChanged(string, string, time.Duration, bool) {}
func (s *recordSink) EndSession(error)                                 {}

// ntpOf is t as a 64-bit NTP timestamp.
func ntpOf(t time.Time) uint64 {
	const unixFrom1900 = 2208988800
	return uint64(t.Unix()+unixFrom1900)<<32 | uint64(t.Nanosecond())<<32/1e9
}

// newDataSession starts a session of an H.264 video, the given other
// medias, and an ONVIF metadata media (the last), recording into a sink.
func newDataSession(t *testing.T, medias ...*description.Media) (*recordSink, *Session, []*Media) {
	t.Helper()
	g := &format.Generic{PayloadTyp: 107, RTPMa: "vnd.onvif.metadata/90000"}
	if err := g.Init(); err != nil {
		t.Fatal(err)
	}
	h := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: fixture.SPS, PPS: fixture.PPS}
	desc := &description.Session{Medias: append(append([]*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{h}}}, medias...),
		&description.Media{Type: description.MediaTypeApplication, Formats: []format.Format{g}})}
	ctr := &ingest.Counters{}
	tracks, deps, _ := Build(desc, ctr, Options{ONVIFMetadata: true})
	if len(tracks) != len(desc.Medias) {
		t.Fatalf("%d tracks of %d medias", len(tracks), len(desc.Medias))
	}
	sink := &recordSink{}
	ss := &Session{Counters: ctr}
	ss.Init(tracks, sink, nil, ingest.Session{})
	return sink, ss, deps
}

// onvifSession is a session of a video and an ONVIF metadata media: the
// camera's frames come at 30 fps from base, its documents once a second,
// stamped with the time of a frame, and received lag after it.
func onvifSession(t *testing.T, reports bool, lag time.Duration, seconds int) (*recordSink, *Session) {
	t.Helper()
	sink, ss, deps := newDataSession(t)
	base := time.Now()
	const vStart, mStart = 1000, 500000
	if reports {
		ss.SenderReport(deps[0], ntpOf(base), vStart)
		ss.SenderReport(deps[1], ntpOf(base), mStart)
	}
	var seq uint16
	for n := 0; n <= seconds*30; n++ {
		at := base.Add(time.Duration(n) * time.Second / 30)
		for _, p := range encodeH264(t, [][]byte{idr(200)}, uint32(vStart+n*3000)) {
			ss.Packet(deps[0], p, at)
		}
		if n%30 == 0 {
			for _, p := range split("<doc/>", seq, uint32(mStart+n*3000), 3) {
				pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq, Timestamp: p.ts, Marker: p.marker}, Payload: []byte(p.payload)}
				ss.Packet(deps[1], pkt, at.Add(lag))
				seq = p.seq + 1
			}
		}
	}
	return sink, ss
}

// TestSessionDataPlacement: a camera's documents, sent 400 ms after the
// frames of their time, are placed at the time of those frames when the
// camera sends sender reports, and when they came otherwise.
func TestSessionDataPlacement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reports bool
		want    time.Duration // a document's offset from its frame
	}{
		{"sender reports", true, 0},
		{"receive time", false, 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, _ := onvifSession(t, tc.reports, 400*time.Millisecond, 3)
			video, docs := sink.samples[0], sink.samples[1]
			if len(docs) != 4 || len(video) != 91 {
				t.Fatalf("%d documents, %d frames", len(docs), len(video))
			}
			for k, d := range docs {
				frame := video[30*k]
				if got := time.Duration(TicksToNs(d.DTS-frame.DTS, 90000)); got < tc.want-time.Millisecond || got > tc.want+time.Millisecond {
					t.Errorf("document %d is %v from its frame, want %v", k, got, tc.want)
				}
				if d.PTSOffset != 0 || !d.Keyframe {
					t.Errorf("document %d: %+v", k, d)
				}
			}
		})
	}
}

// TestSessionDataStall: documents going on while the video stopped do not
// hold off the stall timeout.
func TestSessionDataStall(t *testing.T) {
	_, ss := onvifSession(t, true, 0, 0)
	g := &format.Generic{PayloadTyp: 107, RTPMa: "vnd.onvif.metadata/90000", ClockRat: 90000}
	d := New(g)
	d.idx = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := uint16(100); ctx.Err() == nil; i++ {
			ss.Packet(d, &rtp.Packet{Header: rtp.Header{SequenceNumber: i, Timestamp: uint32(i) * 9000, Marker: true}, Payload: []byte("<doc/>")}, time.Now())
			time.Sleep(50 * time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- ss.Wait(ctx, nil, 300*time.Millisecond, func(err error) error { return err }) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("documents kept a session without video from stalling")
	}
}

// TestSessionDataPlacementAudio: with sender reports on every media, a
// document stamped with a frame's capture time lands on that frame's DTS
// (the cutter cuts on the video), whatever an audio track whose decoder
// timeline is 200 ms off the video's (the decoder lines tracks up by their
// first packets): video places data, not audio.
func TestSessionDataPlacementAudio(t *testing.T) {
	a := &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
	sink, ss, deps := newDataSession(t, &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{a}})
	base := time.Now()
	const vStart, aStart, mStart = 1000, 7000, 500000
	ss.SenderReport(deps[0], ntpOf(base), vStart)
	ss.SenderReport(deps[1], ntpOf(base), aStart)
	ss.SenderReport(deps[2], ntpOf(base), mStart)
	var seq, aseq uint16
	for n := 0; n <= 90; n++ {
		at := base.Add(time.Duration(n) * time.Second / 30)
		for _, p := range encodeH264(t, [][]byte{idr(200)}, uint32(vStart+n*3000)) {
			ss.Packet(deps[0], p, at)
		}
		// audio of 200 ms before (its encoder is that much behind), sent with this frame
		if n >= 6 {
			ats := uint32(aStart + (n-6)*8000/30)
			ss.Packet(deps[1], &rtp.Packet{Header: rtp.Header{PayloadType: 0, SequenceNumber: aseq, Timestamp: ats, Marker: true}, Payload: make([]byte, 266)}, at)
			aseq++
		}
		if n%30 == 0 {
			for _, p := range split("<doc/>", seq, uint32(mStart+n*3000), 3) {
				pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq, Timestamp: p.ts, Marker: p.marker}, Payload: []byte(p.payload)}
				ss.Packet(deps[2], pkt, at)
				seq = p.seq + 1
			}
		}
	}
	video, docs := sink.samples[0], sink.samples[2]
	if len(docs) < 3 || len(sink.samples[1]) == 0 {
		t.Fatalf("%d documents, %d audio", len(docs), len(sink.samples[1]))
	}
	for k, d := range docs {
		frame := video[30*k]
		if got := time.Duration(TicksToNs(d.DTS-frame.DTS, 90000)); got < -time.Millisecond || got > time.Millisecond {
			t.Errorf("document %d is %v from its frame, want 0", k, got)
		}
	}
}

// TestSessionDataStaleReport: event-only metadata idle for 7 h sends no
// sender reports (RFC 3550: only senders do); the first document after it
// would map through the old report, whose RTP difference wraps (int32 at
// 90 kHz: 6.6 h), 13 h back. Its camera time disagrees with its arrival by
// far more than a lag: it is placed by its arrival.
func TestSessionDataStaleReport(t *testing.T) {
	sink, ss, deps := newDataSession(t)
	base := time.Now().Add(-7 * time.Hour)
	const vStart, mStart = 1000, 500000
	ss.SenderReport(deps[1], ntpOf(base), mStart) // the metadata's only report
	for hr := 0; hr <= 7; hr++ {                  // video all along (a frame an hour is enough here)
		at := base.Add(time.Duration(hr) * time.Hour)
		vts := uint32(vStart + int64(hr)*3600*90000)
		ss.SenderReport(deps[0], ntpOf(at), vts)
		for _, p := range encodeH264(t, [][]byte{idr(200)}, vts) {
			ss.Packet(deps[0], p, at)
		}
	}
	at := base.Add(7 * time.Hour)
	for _, p := range split("<motion/>", 1, uint32(mStart+int64(7*3600*90000)), 100) {
		ss.Packet(deps[1], &rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq, Timestamp: p.ts, Marker: p.marker}, Payload: []byte(p.payload)}, at)
	}
	video, docs := sink.samples[0], sink.samples[1]
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	if got := time.Duration(TicksToNs(docs[0].DTS-video[7].DTS, 90000)); got < -time.Second || got > time.Second {
		t.Errorf("the document is %v from the frame it came with", got)
	}
}
