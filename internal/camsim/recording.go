package camsim

import (
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// Recording is one loop of a clip as a camera sends it over RTSP/TCP after
// PLAY: one interleaved frame per RTP packet, media i on channel 2i, in
// send order. Benchmarks replay it into a client without a network.
type Recording struct {
	// Desc describes the media; each has one format.
	Desc *description.Session
	// Stream is the interleaved byte stream.
	Stream []byte
	// Frames locates each frame's RTP header in Stream, to shift sequence
	// numbers and timestamps for the next loop.
	Frames []RecordedFrame
	// Duration is the loop's period.
	Duration time.Duration
	// Packets counts the packets of each media in one loop.
	Packets []int
}

// RecordedFrame is one interleaved frame of a Recording.
type RecordedFrame struct {
	Header int // offset of the RTP header in Stream
	Media  int
}

// Record packetizes the clip at path (an MPEG-TS file, as Camera.Clip).
func Record(path string) (*Recording, error) {
	cl, err := loadClip(path, "")
	if err != nil {
		return nil, err
	}
	rec := &Recording{
		Desc:     &description.Session{},
		Duration: ticks(cl.duration),
		Packets:  make([]int, len(cl.tracks)),
	}
	for _, t := range cl.tracks {
		rec.Desc.Medias = append(rec.Desc.Medias, &description.Media{Type: t.mediaType, Formats: []format.Format{cloneFormat(t.format)}})
	}
	for _, e := range cl.events {
		for _, p := range cl.packets[e.pktFirst : e.pktFirst+e.pktCount] {
			pkt := rtp.Packet{
				Header: rtp.Header{
					Version: 2, Marker: p.marker, PayloadType: cl.tracks[e.track].format.PayloadType(),
					SequenceNumber: uint16(rec.Packets[e.track]), Timestamp: uint32(e.rtp), SSRC: 0x5ca1ab1e + uint32(e.track),
				},
				Payload: p.payload,
			}
			b, err := pkt.Marshal()
			if err != nil {
				return nil, err
			}
			if len(b) > 0xffff {
				return nil, fmt.Errorf("%s: RTP packet of %d bytes", path, len(b))
			}
			rec.Frames = append(rec.Frames, RecordedFrame{Header: len(rec.Stream) + 4, Media: e.track})
			rec.Stream = append(rec.Stream, '$', byte(2*e.track), byte(len(b)>>8), byte(len(b)))
			rec.Stream = append(rec.Stream, b...)
			rec.Packets[e.track]++
		}
	}
	return rec, nil
}
