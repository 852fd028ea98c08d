package fragment_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"strconv"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// ExampleMKVReader reads a GetMedia stream (Kinesis Video Streams' or
// Tributary's GET /v1/streams/{s}/media): one Matroska segment per fragment,
// each tagged with its fragment number and timestamps. In a real consumer
// the io.Reader is the HTTP response body.
func ExampleMKVReader() {
	r := fragment.NewMKVReader(bytes.NewReader(exGetMediaStream()))
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			break // the stream ended cleanly
		}
		if err != nil {
			log.Fatalf("after %d bytes: %v", r.Offset(), err) // errors name the element and its offset
		}
		// A fragment's tags: its number, and the producer (camera) and server
		// timestamps in decimal seconds.
		fmt.Printf("fragment %s (segment %d): producer %s, server %s\n", c.Tags[fragment.TagFragmentNumber], c.Segment,
			exKVSTime(c.Tags[fragment.TagProducerTimestamp]), exKVSTime(c.Tags[fragment.TagServerTimestamp]))
		for _, t := range c.Tracks {
			switch t.Type {
			case 1:
				fmt.Printf("  track %d: %s %dx%d, %d bytes of codec private data\n", t.Number, t.CodecID, t.PixelWidth, t.PixelHeight, len(t.CodecPrivate))
			case 2:
				fmt.Printf("  track %d: %s %g Hz, %d channel(s)\n", t.Number, t.CodecID, t.SamplingFrequency, t.Channels)
			}
		}
		// Frames come in stream order. Time is in ns; cluster timecodes are
		// Unix milliseconds here, so it is a wall-clock time.
		for _, f := range c.Frames {
			kind := "delta"
			if f.Keyframe {
				kind = "key"
			}
			fmt.Printf("  track %d %s %-5s %3d bytes\n", f.Track, time.Unix(0, f.Time).UTC().Format("15:04:05.000"), kind, len(f.Data))
		}
		// f.Data is only valid until the next call to Next: copy what you keep
		// (or keep c.Clone()).
		fmt.Printf("  resume after it with continuation token %s; %s ms behind now\n",
			c.Tags[fragment.TagContinuationToken], c.Tags[fragment.TagMillisBehindNow])
	}
	// Output:
	// fragment 1001 (segment 0): producer 2026-11-27T03:00:00Z, server 2026-11-27T03:00:01.5Z
	//   track 1: V_MPEG4/ISO/AVC 640x360, 5 bytes of codec private data
	//   track 2: A_AAC 48000 Hz, 1 channel(s)
	//   track 1 03:00:00.000 key   100 bytes
	//   track 2 03:00:00.000 key     6 bytes
	//   track 2 03:00:00.021 key     6 bytes
	//   track 1 03:00:00.033 delta  20 bytes
	//   resume after it with continuation token 1002; 42 ms behind now
	// fragment 1002 (segment 1): producer 2026-11-27T03:00:00.05Z, server 2026-11-27T03:00:01.55Z
	//   track 1: V_MPEG4/ISO/AVC 640x360, 5 bytes of codec private data
	//   track 2: A_AAC 48000 Hz, 1 channel(s)
	//   track 1 03:00:00.050 key   100 bytes
	//   track 2 03:00:00.050 key     6 bytes
	//   track 2 03:00:00.071 key     6 bytes
	//   track 1 03:00:00.083 delta  20 bytes
	//   resume after it with continuation token 1003; 42 ms behind now
}

// exKVSTime turns a KVS timestamp tag ("1795748400.050") into a time.
func exKVSTime(s string) string {
	ms, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "?"
	}
	return time.UnixMilli(int64(ms*1000 + 0.5)).UTC().Format(time.RFC3339Nano)
}

// ---- building the example stream by hand ----

// Matroska element IDs (RFC 9559), with their length markers.
var (
	idEBML, idDocType                = []byte{0x1A, 0x45, 0xDF, 0xA3}, []byte{0x42, 0x82}
	idSegment, idInfo, idScale       = []byte{0x18, 0x53, 0x80, 0x67}, []byte{0x15, 0x49, 0xA9, 0x66}, []byte{0x2A, 0xD7, 0xB1}
	idTracks, idTrackEntry, idNumber = []byte{0x16, 0x54, 0xAE, 0x6B}, []byte{0xAE}, []byte{0xD7}
	idTrackType, idCodecID, idPriv   = []byte{0x83}, []byte{0x86}, []byte{0x63, 0xA2}
	idVideo, idWidth, idHeight       = []byte{0xE0}, []byte{0xB0}, []byte{0xBA}
	idAudio, idFreq                  = []byte{0xE1}, []byte{0xB5}
	idTags, idTag, idSimpleTag       = []byte{0x12, 0x54, 0xC3, 0x67}, []byte{0x73, 0x73}, []byte{0x67, 0xC8}
	idTagName, idTagString           = []byte{0x45, 0xA3}, []byte{0x44, 0x87}
	idCluster, idTimecode, idBlock   = []byte{0x1F, 0x43, 0xB6, 0x75}, []byte{0xE7}, []byte{0xA3}
	unknownSize                      = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
)

// exEl encodes an element: its ID, its size as an 8-byte EBML number, its body.
func exEl(id []byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	out := append(bytes.Clone(id), binary.BigEndian.AppendUint64(nil, uint64(len(b))|1<<56)...)
	return append(out, b...)
}

// exUint encodes an unsigned integer element (8 bytes).
func exUint(id []byte, v uint64) []byte { return exEl(id, binary.BigEndian.AppendUint64(nil, v)) }

// exTags encodes a Tags element of name/value pairs.
func exTags(kv ...string) []byte {
	var simple [][]byte
	for i := 0; i < len(kv); i += 2 {
		simple = append(simple, exEl(idSimpleTag, exEl(idTagName, []byte(kv[i])), exEl(idTagString, []byte(kv[i+1]))))
	}
	return exEl(idTags, exEl(idTag, simple...))
}

// exSimpleBlock encodes a SimpleBlock of n bytes: track number, timecode
// relative to the cluster (int16), flags (0x80: keyframe), frame.
func exSimpleBlock(track byte, rel int16, key bool, n int) []byte {
	flags := byte(0)
	if key {
		flags = 0x80
	}
	return exEl(idBlock, []byte{0x80 | track, byte(uint16(rel) >> 8), byte(rel), flags}, make([]byte, n))
}

// exGetMediaStream is two fragments as GetMedia returns them: per fragment an
// EBML header and a Segment of unknown size with Info, Tracks, the fragment
// Tags, a Cluster of unknown size (timecode: the producer time in Unix ms),
// and Tags with the continuation token after the cluster.
func exGetMediaStream() []byte {
	var out []byte
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC).UnixMilli()
	for i := range int64(2) {
		ms := start + 50*i
		secs := func(ms int64) string { return fmt.Sprintf("%d.%03d", ms/1000, ms%1000) }
		out = append(out, exEl(idEBML, exEl(idDocType, []byte("matroska")))...)
		out = append(out, idSegment...)
		out = append(out, unknownSize...)
		out = append(out, exEl(idInfo, exUint(idScale, 1000000))...)
		out = append(out, exEl(idTracks,
			exEl(idTrackEntry, exUint(idNumber, 1), exUint(idTrackType, 1), exEl(idCodecID, []byte("V_MPEG4/ISO/AVC")),
				exEl(idPriv, []byte{1, 0x64, 0, 0x1f, 0xff}), exEl(idVideo, exUint(idWidth, 640), exUint(idHeight, 360))),
			exEl(idTrackEntry, exUint(idNumber, 2), exUint(idTrackType, 2), exEl(idCodecID, []byte("A_AAC")),
				exEl(idPriv, []byte{0x11, 0x88}), exEl(idAudio, exEl(idFreq, binary.BigEndian.AppendUint32(nil, 0x473B8000)))), // 48000 as float32
		)...)
		out = append(out, exTags(fragment.TagFragmentNumber, strconv.FormatInt(1001+i, 10),
			fragment.TagServerTimestamp, secs(ms+1500), fragment.TagProducerTimestamp, secs(ms))...)
		out = append(out, idCluster...)
		out = append(out, unknownSize...)
		out = append(out, exUint(idTimecode, uint64(ms))...)
		out = append(out, exSimpleBlock(1, 0, true, 100)...)
		out = append(out, exSimpleBlock(2, 0, true, 6)...)
		out = append(out, exSimpleBlock(2, 21, true, 6)...)
		out = append(out, exSimpleBlock(1, 33, false, 20)...)
		out = append(out, exTags(fragment.TagMillisBehindNow, "42", fragment.TagContinuationToken, strconv.FormatInt(1002+i, 10))...)
	}
	return out
}
