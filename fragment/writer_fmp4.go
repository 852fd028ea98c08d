package fragment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// ErrUnsupportedCodec is returned for a codec a container cannot carry.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// Sample flags of trun entries (ISO/IEC 14496-12 8.8.3.1).
const (
	sampleFlagsSync    = 0x02000000 // sample_depends_on = 2 (does not depend on others)
	sampleFlagsNonSync = 0x01010000 // sample_depends_on = 1, sample_is_non_sync_sample
)

// FMP4Carries reports whether fMP4 carries every track: VP8 and data
// tracks have no fMP4 entry here and are recorded as MKV. FMP4CarriesMedia
// asks the same of the audio and video tracks alone.
func FMP4Carries(tracks []Track) bool {
	for i := range tracks {
		switch tracks[i].Codec {
		case CodecH264, CodecH265, CodecVP9, CodecAV1, CodecAAC, CodecOpus, CodecPCMU, CodecPCMA:
		default:
			return false
		}
	}
	return true
}

// FMP4CarriesMedia reports whether fMP4 carries the audio and video tracks
// of tracks, and there is at least one: whether an fMP4 rendition without
// the data tracks (HLS, the live edge, MP4 clips) can be made.
func FMP4CarriesMedia(tracks []Track) bool {
	media := MediaTracks(tracks)
	return len(media) > 0 && FMP4Carries(media)
}

// VP9Config is the Config of a VP9 track: profile, bit depth, chroma
// subsampling (vpcC's: 0 4:2:0 vertical, 1 4:2:0 colocated, 2 4:2:2,
// 3 4:4:4) and full range.
func VP9Config(profile, bitDepth, chroma uint8, fullRange bool) []byte {
	r := byte(0)
	if fullRange {
		r = 1
	}
	return []byte{profile, bitDepth, chroma, r}
}

// vp9Params reads a VP9 Config; without one (a track read from MKV), the
// common case: profile 0, 8 bits, 4:2:0, limited range.
func vp9Params(c []byte) (profile, depth, chroma uint8, full bool) {
	if len(c) < 4 {
		return 0, 8, 1, false
	}
	return c[0], c[1], c[2], c[3] == 1
}

// MarshalInit returns the fMP4 (CMAF) init segment of a set of tracks:
// ftyp and moov with one trak per audio or video track (data tracks are
// left out, as AppendFMP4 leaves out their samples). H.265 is tagged hvc1 (what Apple
// players want), and G.711 is kept as it is, 8-bit µ-law ('ulaw') or A-law
// ('alaw') samples, which ffmpeg, VLC and GStreamer play (browsers do not).
func MarshalInit(tracks []Track) ([]byte, error) {
	init := fmp4.Init{}
	var g711 []Track
	for _, t := range tracks {
		if t.Kind == KindData {
			continue
		}
		it := &fmp4.InitTrack{ID: int(t.ID), TimeScale: t.TimeScale}
		switch t.Codec {
		case CodecH264:
			if len(t.SPS) == 0 || len(t.PPS) == 0 {
				return nil, fmt.Errorf("track %d: H264 without SPS/PPS", t.ID)
			}
			it.Codec = &codecs.H264{SPS: t.SPS, PPS: t.PPS}
		case CodecH265:
			if len(t.VPS) == 0 || len(t.SPS) == 0 || len(t.PPS) == 0 {
				return nil, fmt.Errorf("track %d: H265 without VPS/SPS/PPS", t.ID)
			}
			it.Codec = &codecs.H265{VPS: t.VPS, SPS: t.SPS, PPS: t.PPS}
		case CodecVP9:
			if t.Width <= 0 || t.Height <= 0 {
				return nil, fmt.Errorf("track %d: VP9 without a size", t.ID)
			}
			profile, depth, chroma, full := vp9Params(t.Config)
			it.Codec = &codecs.VP9{Width: t.Width, Height: t.Height, Profile: profile, BitDepth: depth, ChromaSubsampling: chroma, ColorRange: full}
		case CodecAV1:
			if len(t.Config) < 5 || t.Config[0] != 0x81 {
				return nil, fmt.Errorf("track %d: AV1 without its av1C record", t.ID)
			}
			// the configOBUs of av1C hold the sequence header
			it.Codec = &codecs.AV1{SequenceHeader: t.Config[4:]}
		case CodecAAC:
			var asc mpeg4audio.AudioSpecificConfig
			if err := asc.Unmarshal(t.Config); err != nil {
				return nil, fmt.Errorf("track %d: AAC config: %w", t.ID, err)
			}
			it.Codec = &codecs.MPEG4Audio{Config: asc}
		case CodecOpus:
			it.Codec = &codecs.Opus{ChannelCount: max(t.Channels, 1)}
		case CodecPCMU, CodecPCMA:
			// Written as LPCM by mediacommon, then rewritten below.
			it.Codec = &codecs.LPCM{BitDepth: 16, SampleRate: t.SampleRate, ChannelCount: max(t.Channels, 1)}
			g711 = append(g711, t)
		default:
			return nil, fmt.Errorf("track %d: %w %q in fMP4", t.ID, ErrUnsupportedCodec, t.Codec)
		}
		init.Tracks = append(init.Tracks, it)
	}
	if len(init.Tracks) == 0 {
		return nil, fmt.Errorf("init segment: no audio or video track")
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("init segment: %w", err)
	}
	b := buf.Bytes()
	for _, t := range g711 {
		var err error
		b, err = replaceSampleEntry(b, t.ID, g711SampleEntry(t))
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// WriteInit writes the init segment of tracks to w.
func WriteInit(w io.Writer, tracks []Track) error {
	b, err := MarshalInit(tracks)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// g711SampleEntry is a QuickTime-style 'ulaw'/'alaw' AudioSampleEntry.
func g711SampleEntry(t Track) []byte {
	typ := "ulaw"
	if t.Codec == CodecPCMA {
		typ = "alaw"
	}
	b := make([]byte, 36)
	binary.BigEndian.PutUint32(b[0:], 36)
	copy(b[4:], typ)
	// 6 reserved bytes, data_reference_index = 1
	binary.BigEndian.PutUint16(b[14:], 1)
	// 8 reserved bytes
	binary.BigEndian.PutUint16(b[24:], uint16(max(t.Channels, 1)))
	binary.BigEndian.PutUint16(b[26:], 8) // sample size
	// pre_defined, reserved
	binary.BigEndian.PutUint32(b[32:], uint32(t.SampleRate)<<16)
	return b
}

// replaceSampleEntry replaces the first sample entry of the stsd of track
// id with entry, fixing the sizes of every enclosing box.
func replaceSampleEntry(b []byte, id uint32, entry []byte) ([]byte, error) {
	path := []string{"moov", "trak", "mdia", "minf", "stbl", "stsd"}
	out, ok, err := rewrite(b, path, id, entry)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("init segment: no sample entry for track %d", id)
	}
	return out, nil
}

// rewrite walks boxes in b along path; inside the trak whose tkhd has the
// track id, it replaces the stsd's first entry.
func rewrite(b []byte, path []string, id uint32, entry []byte) ([]byte, bool, error) {
	var out []byte
	done := false
	for len(b) > 0 {
		size, typ, hdr, err := boxHeader(b)
		if err != nil {
			return nil, false, err
		}
		box := b[:size]
		b = b[size:]
		if done || len(path) == 0 || typ != path[0] {
			out = append(out, box...)
			continue
		}
		body := box[hdr:]
		if typ == "trak" && trackID(body) != id {
			out = append(out, box...)
			continue
		}
		var nb []byte
		if typ == "stsd" {
			if len(body) < 8 {
				return nil, false, errors.New("init segment: short stsd")
			}
			esize, _, _, err := boxHeader(body[8:])
			if err != nil {
				return nil, false, err
			}
			nb = append(append(append([]byte{}, body[:8]...), entry...), body[8+esize:]...)
			done = true
		} else {
			var ok bool
			nb, ok, err = rewrite(body, path[1:], id, entry)
			if err != nil {
				return nil, false, err
			}
			done = ok
		}
		hdrb := make([]byte, 8)
		binary.BigEndian.PutUint32(hdrb, uint32(8+len(nb)))
		copy(hdrb[4:], typ)
		out = append(append(out, hdrb...), nb...)
	}
	return out, done, nil
}

func trackID(trak []byte) uint32 {
	for len(trak) > 0 {
		size, typ, hdr, err := boxHeader(trak)
		if err != nil {
			return 0
		}
		if typ == "tkhd" {
			body := trak[hdr:size]
			if len(body) < 4 {
				return 0
			}
			if body[0] == 1 {
				if len(body) < 24 {
					return 0
				}
				return binary.BigEndian.Uint32(body[20:])
			}
			if len(body) < 16 {
				return 0
			}
			return binary.BigEndian.Uint32(body[12:])
		}
		trak = trak[size:]
	}
	return 0
}

// AppendFMP4 appends the CMAF fragment of f (one moof and one mdat) to dst
// and returns the extended buffer. Tracks without samples and data tracks
// (which MarshalInit leaves out) get no traf. The
// mfhd sequence number is the fragment number (mod 2^32). Each traf's tfdt
// is its first sample's DTS, so the decode timeline is continuous across the
// fragments of one session. It allocates nothing when dst has room.
func AppendFMP4(dst []byte, f *Fragment) []byte {
	start := len(dst)
	// moof
	dst = appendBoxHeader(dst, 0, "moof")
	dst = appendBoxHeader(dst, 16, "mfhd")
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(f.Number))

	var offsets [16]int // positions of trun data_offset fields (up to 16 tracks inline)
	var offsetsX []int
	ntraf := 0
	for i, ss := range f.Samples {
		t := &f.TrackConfigs[i]
		if len(ss) == 0 || t.Kind == KindData {
			continue
		}
		trafStart := len(dst)
		dst = appendBoxHeader(dst, 0, "traf")
		// tfhd: default-base-is-moof
		dst = appendBoxHeader(dst, 16, "tfhd")
		dst = append(dst, 0, 0x02, 0x00, 0x00)
		dst = binary.BigEndian.AppendUint32(dst, t.ID)
		// tfdt v1
		dst = appendBoxHeader(dst, 20, "tfdt")
		dst = append(dst, 1, 0, 0, 0)
		dst = binary.BigEndian.AppendUint64(dst, uint64(ss[0].DTS))
		// trun v1: data offset, duration, size, flags, composition offset
		dst = appendBoxHeader(dst, uint32(20+16*len(ss)), "trun")
		dst = append(dst, 1, 0x00, 0x0f, 0x01)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(ss)))
		if ntraf < len(offsets) {
			offsets[ntraf] = len(dst)
		} else {
			offsetsX = append(offsetsX, len(dst))
		}
		ntraf++
		dst = append(dst, 0, 0, 0, 0)
		for j := range ss {
			s := &ss[j]
			dst = binary.BigEndian.AppendUint32(dst, s.Duration)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(s.Payload)))
			flags := uint32(sampleFlagsSync)
			if !s.Keyframe {
				flags = sampleFlagsNonSync
			}
			dst = binary.BigEndian.AppendUint32(dst, flags)
			dst = binary.BigEndian.AppendUint32(dst, uint32(s.PTSOffset))
		}
		binary.BigEndian.PutUint32(dst[trafStart:], uint32(len(dst)-trafStart))
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	moofSize := len(dst) - start

	// mdat
	mdatStart := len(dst)
	dst = appendBoxHeader(dst, 0, "mdat")
	k := 0
	for i, ss := range f.Samples {
		if len(ss) == 0 || f.TrackConfigs[i].Kind == KindData {
			continue
		}
		var at int
		if k < len(offsets) {
			at = offsets[k]
		} else {
			at = offsetsX[k-len(offsets)]
		}
		k++
		binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-mdatStart+moofSize))
		for j := range ss {
			dst = append(dst, ss[j].Payload...)
		}
	}
	binary.BigEndian.PutUint32(dst[mdatStart:], uint32(len(dst)-mdatStart))
	return dst
}

func appendBoxHeader(dst []byte, size uint32, typ string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, size)
	return append(dst, typ[0], typ[1], typ[2], typ[3])
}
