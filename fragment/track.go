package fragment

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
)

// Kind is the kind of a track.
type Kind string

// Track kinds.
const (
	KindVideo Kind = "video"
	KindAudio Kind = "audio"
	KindData  Kind = "data"
)

// Codec names a codec.
type Codec string

// Codecs known to Tributary.
const (
	CodecH264 Codec = "H264"
	CodecH265 Codec = "H265"
	CodecAAC  Codec = "AAC"
	CodecOpus Codec = "Opus"
	// CodecPCMU is G.711 µ-law.
	CodecPCMU Codec = "PCMU"
	// CodecPCMA is G.711 A-law.
	CodecPCMA Codec = "PCMA"
	CodecVP8  Codec = "VP8"
	// CodecVP9 tracks carry profile, bit depth, chroma subsampling and
	// range in Config (VP9Config), when known.
	CodecVP9 Codec = "VP9"
	// CodecAV1 tracks carry their av1C configuration in Config.
	CodecAV1 Codec = "AV1"
	// CodecJSON is a data track of JSON records (sensor readings).
	CodecJSON Codec = "JSON"
	// CodecONVIF is a data track of ONVIF metadata (RTP payload format
	// vnd.onvif.metadata): one XML document (tt:MetadataStream) a sample,
	// on the camera's 90 kHz clock.
	CodecONVIF Codec = "ONVIF"
)

// Kind returns the kind of track that carries the codec.
func (c Codec) Kind() Kind {
	switch c {
	case CodecH264, CodecH265, CodecVP8, CodecVP9, CodecAV1:
		return KindVideo
	case CodecAAC, CodecOpus, CodecPCMU, CodecPCMA:
		return KindAudio
	}
	return KindData
}

// Track describes one elementary stream of a Stream.
type Track struct {
	// ID is the track number inside a fragment, starting at 1.
	ID uint32 `json:"id"`
	// Kind is video, audio or data.
	Kind Kind `json:"kind"`
	// Codec of the samples.
	Codec Codec `json:"codec"`
	// TimeScale is the number of ticks per second of the sample timestamps
	// (90000 for video, the sample rate for audio).
	TimeScale uint32 `json:"timescale"`

	// VPS, SPS and PPS are the parameter sets of H.264 (SPS, PPS) and H.265
	// (VPS, SPS, PPS) tracks, without start codes.
	VPS []byte `json:"vps,omitempty"`
	SPS []byte `json:"sps,omitempty"`
	PPS []byte `json:"pps,omitempty"`
	// Config is the AAC AudioSpecificConfig.
	Config []byte `json:"config,omitempty"`

	// Width and Height of a video track in pixels.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// SampleRate and Channels of an audio track.
	SampleRate int `json:"sample_rate,omitempty"`
	Channels   int `json:"channels,omitempty"`

	// Name of a data track, which tells data tracks apart (the MKV track
	// name): GetMedia names a sensor's track after its stream; an ONVIF
	// track is named MKVNameONVIF whatever this says. Not part of the
	// configuration hash (init segments carry no data tracks).
	Name string `json:"name,omitempty"`
}

// Equal reports whether two tracks describe the same codec configuration.
func (t *Track) Equal(o *Track) bool {
	return t.ID == o.ID && t.Kind == o.Kind && t.Codec == o.Codec && t.TimeScale == o.TimeScale &&
		slices.Equal(t.VPS, o.VPS) && slices.Equal(t.SPS, o.SPS) && slices.Equal(t.PPS, o.PPS) &&
		slices.Equal(t.Config, o.Config) && t.Width == o.Width && t.Height == o.Height &&
		t.SampleRate == o.SampleRate && t.Channels == o.Channels && t.Name == o.Name
}

// String describes the track for logs and status.
func (t *Track) String() string {
	switch t.Kind {
	case KindVideo:
		return fmt.Sprintf("%d:%s %dx%d", t.ID, t.Codec, t.Width, t.Height)
	case KindAudio:
		return fmt.Sprintf("%d:%s %dHz/%dch", t.ID, t.Codec, t.SampleRate, t.Channels)
	}
	return fmt.Sprintf("%d:%s", t.ID, t.Codec)
}

// MediaTracks returns the audio and video tracks of tracks (all of them,
// not a copy, when there is no data track).
func MediaTracks(tracks []Track) []Track {
	if !slices.ContainsFunc(tracks, func(t Track) bool { return t.Kind == KindData }) {
		return tracks
	}
	out := make([]Track, 0, len(tracks))
	for _, t := range tracks {
		if t.Kind != KindData {
			out = append(out, t)
		}
	}
	return out
}

// TracksEqual reports whether two track lists describe the same configuration.
func TracksEqual(a, b []Track) bool {
	return slices.EqualFunc(a, b, func(x, y Track) bool { return x.Equal(&y) })
}

// ConfigHash returns a short, stable name for a codec configuration: the
// first 16 hex digits of a sha256 over every field of every audio and
// video track. Init segments are stored under this name, so equal
// configurations share one. Data tracks are left out, as init segments
// leave them out (MarshalInit): a camera's fragments with and without its
// metadata track share the init segment of their video and audio.
func ConfigHash(tracks []Track) string {
	h := sha256.New()
	var b [8]byte
	field := func(p []byte) {
		binary.BigEndian.PutUint64(b[:], uint64(len(p)))
		h.Write(b[:])
		h.Write(p)
	}
	num := func(v uint64) {
		binary.BigEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	for _, t := range tracks {
		if t.Kind == KindData {
			continue
		}
		num(uint64(t.ID))
		field([]byte(t.Kind))
		field([]byte(t.Codec))
		num(uint64(t.TimeScale))
		field(t.VPS)
		field(t.SPS)
		field(t.PPS)
		field(t.Config)
		num(uint64(t.Width))
		num(uint64(t.Height))
		num(uint64(t.SampleRate))
		num(uint64(t.Channels))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
