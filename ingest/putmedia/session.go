package putmedia

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// relativeBefore: timecodes earlier than this (2001-09-09) are taken as
// relative to the producer start even when the producer says ABSOLUTE:
// ffmpeg and GStreamer start their timecodes at 0.
const relativeBefore = 1_000_000_000 * int64(time.Second)

// trackState converts one track's frames to samples.
type trackState struct {
	t      fragment.Track
	dts264 *h264.DTSExtractor
	dts265 *h265.DTSExtractor
	nalus  [][]byte
	last   int64 // last frame time (ns), for order checks
	seen   bool
}

// run reads the body until it ends or fails, feeding the target.
func (s *session) run(body io.Reader) {
	rr := &rateReader{r: body, limit: s.h.MaxBytesPerSecond, burst: 5 * time.Second, total: &s.h.Counters.Bytes}
	mr := fragment.NewMKVReader(rr)
	mr.MaxBlockSize = s.h.MaxFrameSize
	var (
		tracks      []*trackState
		byNumber    map[uint64]int
		segment     = -1
		started     bool
		lastCluster int64 // ns
		haveCluster bool
		base        int64 // ns of the session's first frame: the timeline origin
		haveBase    bool
		offset      int64 // added to frame times to make them absolute (ns)
	)
	end := func(err error) {
		if started {
			s.target.EndSession(err)
			started = false
		}
	}
	fail := func(code ErrorCode, tc int64, err error) {
		s.log.Warn("push refused", "code", code.Name, "err", err)
		s.ack(ErrorAck(code, tc, err.Error()))
		end(err)
	}
	for {
		c, err := mr.Next()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				end(nil)
			case errors.Is(err, io.ErrUnexpectedEOF):
				fail(CodeStreamRead, lastCluster/1e6, err)
			case errors.Is(err, errRate):
				fail(CodeRateExceeded, lastCluster/1e6, err)
			case errors.Is(err, fragment.ErrMKVLimit):
				fail(CodeFrameTooLarge, lastCluster/1e6, err)
			case errors.Is(err, fragment.ErrInvalidMKV):
				fail(CodeInvalidMKV, lastCluster/1e6, err)
			default:
				select {
				case <-s.target.Done():
					end(nil) // shutting down: the fragment in progress is stored
				default:
					fail(CodeStreamRead, lastCluster/1e6, err)
				}
			}
			return
		}
		if c.Segment != segment {
			// a new segment: its tracks start a new session
			segment = c.Segment
			if len(c.Tracks) > s.h.MaxTracks {
				fail(CodeTooManyTracks, 0, fmt.Errorf("%d tracks, at most %d", len(c.Tracks), s.h.MaxTracks))
				return
			}
			prev := tracks
			tracks, byNumber = nil, map[uint64]int{}
			var ts []fragment.Track
			for _, mt := range c.Tracks {
				t, err := fragment.TrackFromMKV(mt)
				if err != nil {
					code := CodeInvalidMKV
					if errors.Is(err, fragment.ErrUnsupportedCodec) {
						code = CodeUnsupportedCodec
					}
					fail(code, 0, err)
					return
				}
				t.ID = uint32(len(ts) + 1)
				st := &trackState{t: t}
				switch t.Codec {
				case fragment.CodecH264:
					st.dts264 = &h264.DTSExtractor{}
					st.dts264.Initialize()
				case fragment.CodecH265:
					st.dts265 = &h265.DTSExtractor{}
					st.dts265.Initialize()
				}
				byNumber[mt.Number] = len(tracks)
				tracks = append(tracks, st)
				ts = append(ts, t)
			}
			if started && sameTracks(prev, ts) {
				// the same tracks in a new segment (a KVS-style producer
				// sends one per fragment): the session goes on
				for i := range tracks {
					tracks[i] = prev[i]
				}
			} else {
				end(nil)
				s.target.StartSession(ingest.Session{Tracks: ts, Transport: "putmedia", Started: time.Now()})
				started = true
				haveBase = false
			}
		}
		clusterNs := c.Timecode * int64(c.TimecodeScale)
		if !haveBase {
			if s.tcType == TimecodeRelative || (s.tcType == "" && clusterNs < relativeBefore) {
				offset = s.producerStart.UnixNano()
			} else {
				offset = 0
			}
		}
		abs := clusterNs + offset
		if haveCluster && abs < lastCluster {
			// KVS drops such a fragment and goes on
			s.ack(ErrorAck(CodeTimecodeLower, abs/1e6, fmt.Sprintf("cluster timecode %d ms is before the previous one", abs/1e6)))
			continue
		}
		lastCluster, haveCluster = abs, true
		s.ack(Ack{EventType: EventBuffering, FragmentTimecode: ptr(abs / 1e6)})
		s.target.CutAtNextKeyframe()
		for _, fr := range c.Frames {
			i, ok := byNumber[fr.Track]
			if !ok {
				fail(CodeTrackMismatch, abs/1e6, fmt.Errorf("a frame of track %d, which the segment does not declare", fr.Track))
				return
			}
			st := tracks[i]
			t := fr.Time + offset
			if !haveBase {
				base, haveBase = t, true
			}
			if st.seen && t < st.last-int64(5*time.Second) {
				s.ack(ErrorAck(CodeTimecodeLower, abs/1e6, fmt.Sprintf("track %d: a frame at %d ms, 5 s before the previous", fr.Track, t/1e6)))
				continue
			}
			st.last, st.seen = t, true
			sample, ok := s.sample(st, fr, t, base)
			if !ok {
				continue
			}
			s.h.Counters.Frames.Add(1)
			s.target.WriteSample(i, sample)
		}
	}
}

func ptr(v int64) *int64 { return &v }

func sameTracks(prev []*trackState, ts []fragment.Track) bool {
	if len(prev) != len(ts) {
		return false
	}
	for i := range prev {
		if !prev[i].t.Equal(&ts[i]) {
			return false
		}
	}
	return true
}

// sample converts a frame whose absolute time is t (ns) to a sample on the
// session timeline that starts at base.
func (s *session) sample(st *trackState, fr fragment.MKVFrame, t, base int64) (fragment.Sample, bool) {
	scale := st.t.TimeScale
	pts := nsToTicks(t-base, scale)
	smp := fragment.Sample{DTS: pts, Keyframe: fr.Keyframe || st.t.Kind != fragment.KindVideo, Time: t, Payload: fr.Data}
	switch st.t.Codec {
	case fragment.CodecH264, fragment.CodecH265:
		dts, ok := s.videoDTS(st, fr.Data, pts, smp.Keyframe)
		if !ok {
			return smp, false
		}
		smp.DTS, smp.PTSOffset = dts, int32(pts-dts)
	case fragment.CodecAAC:
		smp.Duration = mpeg4audio.SamplesPerAccessUnit
	case fragment.CodecOpus:
		smp.Duration = uint32(max(opus.PacketDuration2(fr.Data), 1))
	case fragment.CodecPCMU, fragment.CodecPCMA:
		smp.Duration = uint32(max(len(fr.Data)/max(st.t.Channels, 1), 1))
	}
	return smp, true
}

// videoDTS derives the decode timestamp of an H.264/H.265 frame (MKV keeps
// presentation times only) with mediacommon's DTS extractors, which read the
// picture order from the slice headers.
func (s *session) videoDTS(st *trackState, avcc []byte, pts int64, key bool) (int64, bool) {
	st.nalus = st.nalus[:0]
	if key {
		// the parameter sets live in CodecPrivate: the extractor wants them
		if st.t.Codec == fragment.CodecH265 {
			st.nalus = append(st.nalus, st.t.VPS)
		}
		st.nalus = append(st.nalus, st.t.SPS, st.t.PPS)
	}
	for b := avcc; len(b) > 0; {
		if len(b) < 4 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint32(b))
		if n == 0 || n > len(b)-4 {
			return 0, false
		}
		st.nalus = append(st.nalus, b[4:4+n])
		b = b[4+n:]
	}
	var dts int64
	var err error
	if st.dts264 != nil {
		dts, err = st.dts264.Extract(st.nalus, pts)
	} else {
		dts, err = st.dts265.Extract(st.nalus, pts)
	}
	if err != nil {
		// an unreadable slice header: without B-frames DTS is PTS, and a
		// broken frame is the producer's; keep the stream going
		if st.dts264 != nil {
			st.dts264 = &h264.DTSExtractor{}
			st.dts264.Initialize()
		} else {
			st.dts265 = &h265.DTSExtractor{}
			st.dts265.Initialize()
		}
		return pts, key
	}
	return dts, true
}

func nsToTicks(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	sec := int64(time.Second)
	if v >= 0 {
		return (v/sec)*ts + (v%sec)*ts/sec
	}
	return -((-v/sec)*ts + (-v%sec)*ts/sec)
}
