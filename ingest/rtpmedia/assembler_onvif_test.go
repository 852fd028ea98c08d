package rtpmedia

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

const onvifDoc = `<?xml version="1.0" encoding="UTF-8"?>
<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:Event><wsnt:NotificationMessage xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message UtcTime="2026-11-27T15:00:00.000Z" PropertyOperation="Changed"><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>`

// onvifPkt is a packet of an ONVIF metadata stream.
type onvifPkt struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload string
}

// split packetizes a document in payloads of at most mtu bytes.
func split(doc string, seq uint16, ts uint32, mtu int) []onvifPkt {
	var out []onvifPkt
	for len(doc) > 0 {
		n := min(mtu, len(doc))
		out = append(out, onvifPkt{seq: seq, ts: ts, payload: doc[:n]})
		doc = doc[n:]
		seq++
	}
	out[len(out)-1].marker = true
	return out
}

// then follows pkts with the packets of doc, at timestamp ts.
func then(pkts []onvifPkt, doc string, ts uint32) []onvifPkt {
	return append(pkts, split(doc, pkts[len(pkts)-1].seq+1, ts, 1400)...)
}

var onvifCases = []struct {
	name string
	pkts []onvifPkt
	lost int // Lost before this packet index (-1: none)
	want []string
	errs int
}{
	{name: "one packet", pkts: split(onvifDoc, 10, 900, 2000), lost: -1, want: []string{onvifDoc}},
	{name: "three packets", pkts: split(onvifDoc, 65534, 900, 300), lost: -1, want: []string{onvifDoc}},
	{name: "two documents", pkts: append(split(onvifDoc, 1, 900, 400), split("<a/>", 3, 1800, 400)...), lost: -1,
		want: []string{onvifDoc, "<a/>"}},
	{name: "lost middle packet", pkts: then(slices.Delete(split(onvifDoc, 1, 900, 200), 1, 2), "<b/>", 1800), lost: -1,
		want: []string{"<b/>"}, errs: 1},
	{name: "no marker", pkts: append(split(onvifDoc, 1, 900, 200)[:2], split("<c/>", 3, 1800, 400)...), lost: -1,
		want: []string{"<c/>"}, errs: 1},
	{name: "start lost", pkts: append(split("<x/>", 1, 900, 400), split(onvifDoc, 3, 1800, 300)[1:]...), lost: -1,
		want: []string{"<x/>"}, errs: 1},
	{name: "lost reported", pkts: append(split("<x/>", 1, 900, 400), split("<y/>", 2, 1800, 400)...), lost: 1,
		want: []string{"<x/>"}, errs: 1},
	{name: "white space and padding", pkts: split("\r\n  <d/>\n\x00\x00", 7, 0, 3), lost: -1, want: []string{"<d/>"}},
	{name: "not UTF-8", pkts: split("<e>\xff\xfe</e>", 7, 0, 100), lost: -1, errs: 1},
	{name: "not XML", pkts: split("{\"json\":1}", 7, 0, 100), lost: -1, errs: 1},
	{name: "too large", pkts: then(split(strings.Repeat("<f/>", MaxONVIFDocument/4+1), 1, 9, 1400), "<g/>", 99), lost: -1,
		want: []string{"<g/>"}, errs: 1},
}

func runONVIF(a *onvifAssembler, pkts []onvifPkt, lost int) (docs []string, errs int) {
	for i, p := range pkts {
		if i == lost {
			a.lost()
		}
		doc, err := a.push(p.seq, p.ts, p.marker, []byte(p.payload))
		if err != nil {
			errs++
		}
		if doc != nil {
			docs = append(docs, string(doc))
		}
	}
	return docs, errs
}

func TestONVIFAssembler(t *testing.T) {
	for _, tc := range onvifCases {
		t.Run(tc.name, func(t *testing.T) {
			docs, errs := runONVIF(&onvifAssembler{}, tc.pkts, tc.lost)
			if !slices.Equal(docs, tc.want) || errs != tc.errs {
				t.Fatalf("got %d documents %.60q, %d errors; want %d %.60q, %d errors", len(docs), docs, errs, len(tc.want), tc.want, tc.errs)
			}
		})
	}
}

// TestONVIFMedia goes through Build and Decode: the media is taken only
// when asked for, and its documents come out as data units.
func TestONVIFMedia(t *testing.T) {
	g := &format.Generic{PayloadTyp: 107, RTPMa: "vnd.onvif.metadata/90000"}
	if err := g.Init(); err != nil {
		t.Fatal(err)
	}
	desc := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{h264Format()}},
		{Type: description.MediaTypeApplication, Formats: []format.Format{g}},
	}}
	tracks, deps, ignored := Build(desc, nil, Options{})
	if len(tracks) != 1 || !slices.Equal(ignored, []string{"vnd.onvif.metadata/90000"}) {
		t.Fatalf("without the option: tracks %v, ignored %q", tracks, ignored)
	}
	tracks, deps, ignored = Build(desc, nil, Options{ONVIFMetadata: true})
	if len(tracks) != 2 || len(ignored) != 0 {
		t.Fatalf("with the option: tracks %v, ignored %q", tracks, ignored)
	}
	want := fragment.Track{ID: 2, Kind: fragment.KindData, Codec: fragment.CodecONVIF, TimeScale: 90000}
	if !tracks[1].Equal(&want) {
		t.Fatalf("track %+v, want %+v", tracks[1], want)
	}
	d := deps[1]
	d.counters = &ingest.Counters{}
	var got []Unit
	for _, p := range split(onvifDoc, 1, 4500, 500) {
		pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq, Timestamp: p.ts, Marker: p.marker}, Payload: []byte(p.payload)}
		d.Decode(pkt, 4500, func(u Unit) {
			u.Payload = bytes.Clone(u.Payload)
			got = append(got, u)
		})
	}
	if len(got) != 1 || string(got[0].Payload) != onvifDoc || got[0].PTS != 4500 || !got[0].Key || got[0].Track != 1 {
		t.Fatalf("units %+v", got)
	}
	// a document whose last packet is empty but for its marker, then one
	// more: both come out
	next := uint16(len(split(onvifDoc, 1, 4500, 500)) + 1)
	for _, pkt := range []*rtp.Packet{
		{Header: rtp.Header{SequenceNumber: next, Timestamp: 9000}, Payload: []byte("<a/>")},
		{Header: rtp.Header{SequenceNumber: next + 1, Timestamp: 9000, Marker: true}},
		{Header: rtp.Header{SequenceNumber: next + 2, Timestamp: 18000, Marker: true}, Payload: []byte("<b/>")},
	} {
		d.Decode(pkt, 0, func(u Unit) { got = append(got, Unit{Payload: bytes.Clone(u.Payload)}) })
	}
	if len(got) != 3 || string(got[1].Payload) != "<a/>" || string(got[2].Payload) != "<b/>" {
		t.Fatalf("after an empty last packet: %d units", len(got))
	}
}

// FuzzONVIFAssembler feeds packets made from the input (a header byte each:
// sequence step, timestamp change, marker; then a length and a payload)
// and checks the assembler against the rule it follows: a document is the
// run of packets of one timestamp up to a marker, kept when no packet of
// it (nor just before it) was lost, it fits MaxONVIFDocument and it is
// UTF-8 XML; kept documents come out as sent, white space trimmed.
func FuzzONVIFAssembler(f *testing.F) {
	for _, tc := range onvifCases {
		var b []byte
		prev := onvifPkt{seq: tc.pkts[0].seq - 1, ts: tc.pkts[0].ts}
		for _, p := range tc.pkts {
			if len(p.payload) > 255 {
				break
			}
			h := byte(p.seq-prev.seq) & 0x3f
			if p.ts != prev.ts {
				h |= 0x40
			}
			if p.marker {
				h |= 0x80
			}
			b = append(b, h, byte(len(p.payload)))
			b = append(b, p.payload...)
			prev = p
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := &onvifAssembler{}
		var seq uint16
		var ts uint32
		var doc []byte
		first, inDoc, docOK := true, false, false
		for len(b) >= 2 {
			h, n := b[0], int(b[1])
			b = b[2:]
			n = min(n, len(b))
			payload := b[:n]
			b = b[n:]
			step := uint16(h & 0x3f)
			gap := !first && step != 1
			first = false
			seq += step
			if h&0x40 != 0 {
				ts += 3000
				if inDoc {
					inDoc = false
				}
			}
			if gap {
				inDoc = false
			}
			if !inDoc {
				inDoc, docOK, doc = true, !gap, nil
			}
			doc = append(doc, payload...)
			got, _ := a.push(seq, ts, h&0x80 != 0, payload)
			var want []byte
			if h&0x80 != 0 {
				inDoc = false
				if d := trimXMLSpace(doc); docOK && len(doc) <= MaxONVIFDocument && len(d) > 0 && d[0] == '<' && utf8.Valid(d) {
					want = d
				}
			}
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("got %.60q, want %.60q", got, want)
			}
		}
	})
}
