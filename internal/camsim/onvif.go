package camsim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// ONVIF metadata track of a camera (Camera.ONVIF).
const (
	// ONVIFPayloadType is the dynamic payload type of the metadata track.
	ONVIFPayloadType = 107
	// ONVIFPeriod is how often a camera sends a metadata document.
	ONVIFPeriod = time.Second
	// onvifMTU is the largest payload of a metadata packet.
	onvifMTU = 1000
)

// ONVIFMotion reports whether the simulated motion detector of a camera
// sees motion in the n-th second of its metadata (from 0): 3 s out of 10.
func ONVIFMotion(n int64) bool { return n%10 >= 4 && n%10 < 7 }

// onvifTrack is the state of a camera's metadata track.
type onvifTrack struct {
	camTrack
	n    int64 // documents sent
	next int64 // the camera time line's tick of the next document
	buf  []byte
}

func newONVIFTrack() (*onvifTrack, error) {
	f := &format.Generic{PayloadTyp: ONVIFPayloadType, RTPMa: "vnd.onvif.metadata/90000"}
	if err := f.Init(); err != nil {
		return nil, err
	}
	return &onvifTrack{camTrack: camTrack{
		media:    &description.Media{Type: description.MediaTypeApplication, Formats: []format.Format{f}},
		clock:    tsClock,
		rtpStart: rand.Uint32(),
		pkt: rtp.Packet{Header: rtp.Header{
			Version:        2,
			PayloadType:    ONVIFPayloadType,
			SequenceNumber: uint16(rand.Uint32()),
		}},
	}}, nil
}

// sendONVIF sends the metadata documents due at or before tick now of the
// camera's time line (90 kHz), whose tick 0 is anchor on the wall clock.
func (c *camera) sendONVIF(now int64, anchor time.Time) {
	o := c.onvif
	for o.next <= now {
		ts := o.rtpStart + uint32(o.next)
		wall := anchor.Add(ticks(o.next))
		o.buf = appendONVIFDocument(o.buf[:0], wall, o.n)
		doc := o.buf
		for len(doc) > 0 {
			n := min(len(doc), onvifMTU)
			o.pkt.Timestamp = ts
			o.pkt.Marker = n == len(doc)
			o.pkt.Payload = doc[:n]
			if err := c.stream.WritePacketRTPWithNTP(o.media, &o.pkt, wall); err != nil {
				return
			}
			o.pkt.SequenceNumber++
			doc = doc[n:]
		}
		o.n++
		o.next += int64(ONVIFPeriod / time.Second * tsClock)
	}
}

// appendONVIFDocument appends the n-th metadata document of a camera, of
// time at: a tt:MetadataStream with a video analytics frame (one object
// moving across the scene while there is motion) and, when the motion
// detector's state changes (and in the first document), its event, in the
// shape ONVIF Profile S/T cameras send.
func appendONVIFDocument(b []byte, at time.Time, n int64) []byte {
	utc := at.UTC().Format("2006-01-02T15:04:05.000Z")
	motion := ONVIFMotion(n)
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tns1="http://www.onvif.org/ver10/topics">`...)
	b = append(b, `<tt:VideoAnalytics><tt:Frame UtcTime="`...)
	b = append(b, utc...)
	b = append(b, `">`...)
	if motion {
		x := -0.8 + 0.4*float64(n%10-4)
		b = fmt.Appendf(b, `<tt:Object ObjectId="%d"><tt:Appearance><tt:Shape>`+
			`<tt:BoundingBox left="%.2f" top="0.40" right="%.2f" bottom="-0.40"/>`+
			`<tt:CenterOfGravity x="%.2f" y="0.00"/></tt:Shape>`+
			`<tt:Class><tt:Type Likelihood="0.90">Human</tt:Type></tt:Class></tt:Appearance></tt:Object>`,
			n/10+1, x-0.1, x+0.1, x)
	}
	b = append(b, `</tt:Frame></tt:VideoAnalytics>`...)
	if n == 0 || motion != ONVIFMotion(n-1) {
		op := "Changed"
		if n == 0 {
			op = "Initialized"
		}
		b = append(b, `<tt:Event><wsnt:NotificationMessage>`+
			`<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>`+
			`<wsnt:Message><tt:Message UtcTime="`...)
		b = append(b, utc...)
		b = append(b, `" PropertyOperation="`...)
		b = append(b, op...)
		b = append(b, `"><tt:Source>`+
			`<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSource_1"/>`+
			`<tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalytics_1"/>`+
			`<tt:SimpleItem Name="Rule" Value="MotionDetectorRule"/>`+
			`</tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="`...)
		b = strconv.AppendBool(b, motion)
		b = append(b, `"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event>`...)
	}
	return append(b, `</tt:MetadataStream>`...)
}
