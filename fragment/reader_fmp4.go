package fragment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrInvalidFMP4 is returned for bytes that are not a well-formed fMP4 init
// segment or fragment.
var ErrInvalidFMP4 = errors.New("invalid fMP4")

// Limits that keep hostile input from allocating without bound.
const (
	maxTracks         = 64
	maxSamplesPerTrun = 1 << 20
)

func errf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidFMP4}, args...)...)
}

// boxHeader returns the size, type and header length of the box at the
// start of b, checking that the whole box is in b.
func boxHeader(b []byte) (size int, typ string, hdr int, err error) {
	if len(b) < 8 {
		return 0, "", 0, errf("truncated box header")
	}
	s := uint64(binary.BigEndian.Uint32(b))
	typ = string(b[4:8])
	hdr = 8
	switch s {
	case 1:
		if len(b) < 16 {
			return 0, "", 0, errf("truncated large box header")
		}
		s = binary.BigEndian.Uint64(b[8:])
		hdr = 16
	case 0:
		s = uint64(len(b)) // to the end
	}
	if s < uint64(hdr) || s > uint64(len(b)) {
		return 0, "", 0, errf("box %q of size %d does not fit in %d bytes", sanitize(typ), s, len(b))
	}
	return int(s), typ, hdr, nil
}

func sanitize(typ string) string {
	for i := 0; i < len(typ); i++ {
		if typ[i] < 0x20 || typ[i] > 0x7e {
			return fmt.Sprintf("%x", typ)
		}
	}
	return typ
}

// eachBox calls fn for every box in b, in order.
func eachBox(b []byte, fn func(typ string, body []byte) error) error {
	for len(b) > 0 {
		size, typ, hdr, err := boxHeader(b)
		if err != nil {
			return err
		}
		if err := fn(typ, b[hdr:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}

// ParseInit parses an fMP4 init segment (ftyp and moov) into its tracks.
// It reads what MarshalInit writes and the common layouts of other muxers
// (ffmpeg, GStreamer) for the codecs Tributary knows; tracks of other codecs
// are an error.
func ParseInit(b []byte) ([]Track, error) {
	var tracks []Track
	sawMoov := false
	err := eachBox(b, func(typ string, body []byte) error {
		if typ != "moov" {
			return nil
		}
		sawMoov = true
		return eachBox(body, func(typ string, body []byte) error {
			if typ != "trak" {
				return nil
			}
			if len(tracks) >= maxTracks {
				return errf("more than %d tracks", maxTracks)
			}
			t, err := parseTrak(body)
			if err != nil {
				return err
			}
			tracks = append(tracks, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if !sawMoov {
		return nil, errf("no moov box")
	}
	if len(tracks) == 0 {
		return nil, errf("no tracks")
	}
	return tracks, nil
}

func findBox(b []byte, path ...string) ([]byte, error) {
	for _, want := range path {
		var found []byte
		err := eachBox(b, func(typ string, body []byte) error {
			if found == nil && typ == want {
				found = body
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if found == nil {
			return nil, errf("no %s box", want)
		}
		b = found
	}
	return b, nil
}

func parseTrak(trak []byte) (Track, error) {
	var t Track
	tkhd, err := findBox(trak, "tkhd")
	if err != nil {
		return t, err
	}
	t.ID = trackID(trak)
	if t.ID == 0 || len(tkhd) < 4 {
		return t, errf("bad tkhd")
	}
	mdhd, err := findBox(trak, "mdia", "mdhd")
	if err != nil {
		return t, err
	}
	switch {
	case len(mdhd) >= 24 && mdhd[0] == 1:
		t.TimeScale = binary.BigEndian.Uint32(mdhd[20:])
	case len(mdhd) >= 16 && mdhd[0] == 0:
		t.TimeScale = binary.BigEndian.Uint32(mdhd[12:])
	default:
		return t, errf("bad mdhd")
	}
	if t.TimeScale == 0 {
		return t, errf("track %d: zero timescale", t.ID)
	}
	stsd, err := findBox(trak, "mdia", "minf", "stbl", "stsd")
	if err != nil {
		return t, err
	}
	if len(stsd) < 8 {
		return t, errf("short stsd")
	}
	size, typ, hdr, err := boxHeader(stsd[8:])
	if err != nil {
		return t, err
	}
	entry := stsd[8+hdr : 8+size]
	if err := parseSampleEntry(&t, typ, entry); err != nil {
		return t, fmt.Errorf("track %d: %w", t.ID, err)
	}
	return t, nil
}

func parseSampleEntry(t *Track, typ string, e []byte) error {
	const visualHdr, audioHdr = 78, 28
	switch typ {
	case "avc1", "avc3":
		t.Codec, t.Kind = CodecH264, KindVideo
		if len(e) < visualHdr {
			return errf("short %s entry", typ)
		}
		avcC, err := findBox(e[visualHdr:], "avcC")
		if err != nil {
			return err
		}
		return parseAVCC(t, avcC)
	case "hvc1", "hev1":
		t.Codec, t.Kind = CodecH265, KindVideo
		if len(e) < visualHdr {
			return errf("short %s entry", typ)
		}
		hvcC, err := findBox(e[visualHdr:], "hvcC")
		if err != nil {
			return err
		}
		return parseHVCC(t, hvcC)
	case "vp09":
		t.Codec, t.Kind = CodecVP9, KindVideo
		if len(e) < visualHdr {
			return errf("short vp09 entry")
		}
		t.Width, t.Height = int(binary.BigEndian.Uint16(e[24:])), int(binary.BigEndian.Uint16(e[26:]))
		vpcC, err := findBox(e[visualHdr:], "vpcC")
		if err != nil {
			return err
		}
		// full box header, profile, level, bitDepth(4) chroma(3) range(1)
		if len(vpcC) < 7 {
			return errf("short vpcC")
		}
		t.Config = VP9Config(vpcC[4], vpcC[6]>>4, (vpcC[6]>>1)&7, vpcC[6]&1 == 1)
		return nil
	case "av01":
		t.Codec, t.Kind = CodecAV1, KindVideo
		if len(e) < visualHdr {
			return errf("short av01 entry")
		}
		t.Width, t.Height = int(binary.BigEndian.Uint16(e[24:])), int(binary.BigEndian.Uint16(e[26:]))
		av1C, err := findBox(e[visualHdr:], "av1C")
		if err != nil {
			return err
		}
		if len(av1C) < 5 || av1C[0] != 0x81 {
			return errf("bad av1C")
		}
		t.Config = bytes.Clone(av1C)
		return nil
	case "mp4a":
		t.Codec, t.Kind = CodecAAC, KindAudio
		if len(e) < audioHdr {
			return errf("short mp4a entry")
		}
		esds, err := findBox(e[audioHdr:], "esds")
		if err != nil {
			return err
		}
		asc, err := parseESDS(esds)
		if err != nil {
			return err
		}
		t.Config = asc
		return t.FillFromParams()
	case "Opus":
		t.Codec, t.Kind = CodecOpus, KindAudio
		if len(e) < audioHdr {
			return errf("short Opus entry")
		}
		dops, err := findBox(e[audioHdr:], "dOps")
		if err != nil {
			return err
		}
		if len(dops) < 2 || dops[1] == 0 {
			return errf("bad dOps")
		}
		t.Channels = int(dops[1])
		t.SampleRate = 48000
		return nil
	case "ulaw", "alaw":
		t.Codec, t.Kind = CodecPCMU, KindAudio
		if typ == "alaw" {
			t.Codec = CodecPCMA
		}
		if len(e) < audioHdr {
			return errf("short %s entry", typ)
		}
		t.Channels = int(binary.BigEndian.Uint16(e[16:]))
		t.SampleRate = int(binary.BigEndian.Uint32(e[24:]) >> 16)
		if t.Channels == 0 || t.SampleRate == 0 {
			return errf("bad %s entry", typ)
		}
		return nil
	}
	return fmt.Errorf("%w: sample entry %q", ErrUnsupportedCodec, sanitize(typ))
}

// readNALUs reads n 16-bit-length-prefixed NAL units from b.
func readNALUs(b []byte, n int) ([][]byte, []byte, error) {
	var out [][]byte
	for range n {
		if len(b) < 2 {
			return nil, nil, errf("truncated parameter set")
		}
		l := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+l || l == 0 {
			return nil, nil, errf("truncated parameter set")
		}
		out = append(out, b[2:2+l])
		b = b[2+l:]
	}
	return out, b, nil
}

func parseAVCC(t *Track, b []byte) error {
	if len(b) < 6 {
		return errf("short avcC")
	}
	if b[4]&3 != 3 {
		return errf("avcC with %d-byte NALU lengths (only 4 is supported)", b[4]&3+1)
	}
	sps, rest, err := readNALUs(b[6:], int(b[5]&0x1f))
	if err != nil {
		return err
	}
	if len(rest) < 1 {
		return errf("avcC without PPS count")
	}
	pps, _, err := readNALUs(rest[1:], int(rest[0]))
	if err != nil {
		return err
	}
	if len(sps) == 0 || len(pps) == 0 {
		return errf("avcC without SPS or PPS")
	}
	t.SPS = append([]byte(nil), sps[0]...)
	t.PPS = append([]byte(nil), pps[0]...)
	return t.FillFromParams()
}

func parseHVCC(t *Track, b []byte) error {
	if len(b) < 23 {
		return errf("short hvcC")
	}
	if b[21]&3 != 3 {
		return errf("hvcC with %d-byte NALU lengths (only 4 is supported)", b[21]&3+1)
	}
	n := int(b[22])
	b = b[23:]
	for range n {
		if len(b) < 3 {
			return errf("truncated hvcC array")
		}
		typ := b[0] & 0x3f
		cnt := int(binary.BigEndian.Uint16(b[1:]))
		nalus, rest, err := readNALUs(b[3:], cnt)
		if err != nil {
			return err
		}
		b = rest
		if len(nalus) == 0 {
			continue
		}
		switch typ {
		case 32:
			t.VPS = append([]byte(nil), nalus[0]...)
		case 33:
			t.SPS = append([]byte(nil), nalus[0]...)
		case 34:
			t.PPS = append([]byte(nil), nalus[0]...)
		}
	}
	if t.VPS == nil || t.SPS == nil || t.PPS == nil {
		return errf("hvcC without VPS, SPS or PPS")
	}
	return t.FillFromParams()
}

// parseESDS returns the AudioSpecificConfig of an esds box.
func parseESDS(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, errf("short esds")
	}
	b = b[4:]
	readDesc := func(b []byte) (tag byte, body, rest []byte, err error) {
		if len(b) < 2 {
			return 0, nil, nil, errf("truncated descriptor")
		}
		tag = b[0]
		size := 0
		i := 1
		for ; i < 5; i++ {
			if i >= len(b) {
				return 0, nil, nil, errf("truncated descriptor")
			}
			size = size<<7 | int(b[i]&0x7f)
			if b[i]&0x80 == 0 {
				break
			}
		}
		i++
		if i > len(b) || size > len(b)-i {
			return 0, nil, nil, errf("descriptor larger than its box")
		}
		return tag, b[i : i+size], b[i+size:], nil
	}
	tag, es, _, err := readDesc(b)
	if err != nil {
		return nil, err
	}
	if tag != 3 || len(es) < 3 {
		return nil, errf("esds without ES descriptor")
	}
	flags := es[2]
	es = es[3:]
	if flags&0x80 != 0 {
		if len(es) < 2 {
			return nil, errf("short ES descriptor")
		}
		es = es[2:]
	}
	if flags&0x40 != 0 {
		if len(es) < 1 || len(es) < 1+int(es[0]) {
			return nil, errf("short ES descriptor")
		}
		es = es[1+int(es[0]):]
	}
	if flags&0x20 != 0 {
		if len(es) < 2 {
			return nil, errf("short ES descriptor")
		}
		es = es[2:]
	}
	tag, dc, _, err := readDesc(es)
	if err != nil {
		return nil, err
	}
	if tag != 4 || len(dc) < 13 {
		return nil, errf("esds without decoder config")
	}
	if len(dc) == 13 {
		return nil, errf("esds without AudioSpecificConfig")
	}
	tag, dsi, _, err := readDesc(dc[13:])
	if err != nil {
		return nil, err
	}
	if tag != 5 || len(dsi) == 0 {
		return nil, errf("esds without AudioSpecificConfig")
	}
	return append([]byte(nil), dsi...), nil
}

// ParseFMP4 parses a fragment (one or more moof+mdat pairs, as AppendFMP4
// writes and as common muxers write) against the tracks of its init
// segment. The returned Fragment's Samples are indexed like tracks, their
// DTS values come from tfdt, and their payloads alias b. Only the Number
// (from mfhd), Keyframes, SampleCount, Size and Tracks of its Metadata are
// filled.
func ParseFMP4(b []byte, tracks []Track) (*Fragment, error) {
	f := &Fragment{TrackConfigs: tracks, Samples: make([][]Sample, len(tracks))}
	f.Size = int64(len(b))
	f.Container = ContainerFMP4
	type run struct {
		track   int
		samples []Sample
		offsets []int // absolute offsets of sample data in b
		sizes   []uint32
	}
	var runs []run
	pos := 0
	sawMoof := false
	for pos < len(b) {
		size, typ, hdr, err := boxHeader(b[pos:])
		if err != nil {
			return nil, err
		}
		body := b[pos+hdr : pos+size]
		switch typ {
		case "moof":
			sawMoof = true
			if err := parseMoof(f, tracks, body, pos, func(ti int, ss []Sample, offs []int, sizes []uint32) {
				runs = append(runs, run{track: ti, samples: ss, offsets: offs, sizes: sizes})
			}); err != nil {
				return nil, err
			}
		case "mdat", "styp", "sidx", "free", "skip", "prft", "emsg":
		default:
			return nil, errf("unexpected box %q in fragment", sanitize(typ))
		}
		pos += size
	}
	if !sawMoof {
		return nil, errf("no moof box")
	}
	for _, r := range runs {
		for i := range r.samples {
			off, n := r.offsets[i], int(r.sizes[i])
			if off < 0 || off > len(b) || n > len(b)-off {
				return nil, errf("sample data outside the fragment")
			}
			r.samples[i].Payload = b[off : off+n : off+n]
		}
		f.Samples[r.track] = append(f.Samples[r.track], r.samples...)
	}
	for i, ss := range f.Samples {
		if len(ss) == 0 {
			continue
		}
		t := tracks[i]
		f.Tracks = append(f.Tracks, TrackRef{ID: t.ID, Kind: t.Kind, Codec: t.Codec})
		f.SampleCount += len(ss)
		if t.Kind == KindVideo && f.Keyframes == 0 {
			for _, s := range ss {
				if s.Keyframe {
					f.Keyframes++
				}
			}
		}
	}
	return f, nil
}

func parseMoof(f *Fragment, tracks []Track, moof []byte, moofPos int, add func(int, []Sample, []int, []uint32)) error {
	return eachBox(moof, func(typ string, body []byte) error {
		switch typ {
		case "mfhd":
			if len(body) < 8 {
				return errf("short mfhd")
			}
			f.Number = uint64(binary.BigEndian.Uint32(body[4:]))
		case "traf":
			return parseTraf(tracks, body, moofPos, add)
		}
		return nil
	})
}

func parseTraf(tracks []Track, traf []byte, moofPos int, add func(int, []Sample, []int, []uint32)) error {
	ti := -1
	var (
		base            = int64(moofPos)
		defDur, defSize uint32
		defFlags        uint32
		dts             int64
		haveTfdt        bool
	)
	err := eachBox(traf, func(typ string, body []byte) error {
		switch typ {
		case "tfhd":
			if len(body) < 8 {
				return errf("short tfhd")
			}
			flags := uint32(body[1])<<16 | uint32(body[2])<<8 | uint32(body[3])
			id := binary.BigEndian.Uint32(body[4:])
			for i := range tracks {
				if tracks[i].ID == id {
					ti = i
				}
			}
			if ti < 0 {
				return errf("traf for unknown track %d", id)
			}
			p := body[8:]
			next := func(n int) ([]byte, error) {
				if len(p) < n {
					return nil, errf("short tfhd")
				}
				v := p[:n]
				p = p[n:]
				return v, nil
			}
			if flags&0x01 != 0 {
				v, err := next(8)
				if err != nil {
					return err
				}
				o := binary.BigEndian.Uint64(v)
				if o > math.MaxInt32 {
					return errf("base data offset out of range")
				}
				base = int64(o)
			}
			if flags&0x02 != 0 {
				if _, err := next(4); err != nil {
					return err
				}
			}
			if flags&0x08 != 0 {
				v, err := next(4)
				if err != nil {
					return err
				}
				defDur = binary.BigEndian.Uint32(v)
			}
			if flags&0x10 != 0 {
				v, err := next(4)
				if err != nil {
					return err
				}
				defSize = binary.BigEndian.Uint32(v)
			}
			if flags&0x20 != 0 {
				v, err := next(4)
				if err != nil {
					return err
				}
				defFlags = binary.BigEndian.Uint32(v)
			}
		case "tfdt":
			if len(body) < 8 {
				return errf("short tfdt")
			}
			if body[0] == 1 {
				if len(body) < 12 {
					return errf("short tfdt")
				}
				v := binary.BigEndian.Uint64(body[4:])
				if v > math.MaxInt64/2 {
					return errf("tfdt out of range")
				}
				dts = int64(v)
			} else {
				dts = int64(binary.BigEndian.Uint32(body[4:]))
			}
			haveTfdt = true
		case "trun":
			if ti < 0 {
				return errf("trun before tfhd")
			}
			if !haveTfdt {
				return errf("trun without tfdt")
			}
			ss, offs, sizes, end, err := parseTrun(body, base, dts, defDur, defSize, defFlags, tracks[ti].Kind != KindVideo)
			if err != nil {
				return err
			}
			dts = end
			add(ti, ss, offs, sizes)
		}
		return nil
	})
	return err
}

func parseTrun(b []byte, base, dts int64, defDur, defSize, defFlags uint32, allSync bool) ([]Sample, []int, []uint32, int64, error) {
	if len(b) < 8 {
		return nil, nil, nil, 0, errf("short trun")
	}
	version := b[0]
	flags := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	count := binary.BigEndian.Uint32(b[4:])
	p := b[8:]
	var dataOff int64
	if flags&0x01 != 0 {
		if len(p) < 4 {
			return nil, nil, nil, 0, errf("short trun")
		}
		dataOff = int64(int32(binary.BigEndian.Uint32(p)))
		p = p[4:]
	}
	firstFlags, haveFirst := uint32(0), false
	if flags&0x04 != 0 {
		if len(p) < 4 {
			return nil, nil, nil, 0, errf("short trun")
		}
		firstFlags, haveFirst = binary.BigEndian.Uint32(p), true
		p = p[4:]
	}
	per := 0
	for _, bit := range []uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&bit != 0 {
			per += 4
		}
	}
	if count > maxSamplesPerTrun || (per > 0 && uint64(count)*uint64(per) > uint64(len(p))) {
		return nil, nil, nil, 0, errf("trun with %d samples does not fit", count)
	}
	if per == 0 && count > 1<<16 {
		return nil, nil, nil, 0, errf("trun with %d samples and no sample table", count)
	}
	ss := make([]Sample, count)
	offs := make([]int, count)
	sizes := make([]uint32, count)
	off := base + dataOff
	for i := range ss {
		dur, size, sflags := defDur, defSize, defFlags
		var cto int32
		if flags&0x100 != 0 {
			dur = binary.BigEndian.Uint32(p)
			p = p[4:]
		}
		if flags&0x200 != 0 {
			size = binary.BigEndian.Uint32(p)
			p = p[4:]
		}
		if flags&0x400 != 0 {
			sflags = binary.BigEndian.Uint32(p)
			p = p[4:]
		} else if i == 0 && haveFirst {
			sflags = firstFlags
		}
		if flags&0x800 != 0 {
			v := binary.BigEndian.Uint32(p)
			p = p[4:]
			if version == 0 {
				if v > math.MaxInt32 {
					return nil, nil, nil, 0, errf("composition offset out of range")
				}
			}
			cto = int32(v)
		}
		if off < 0 || off > math.MaxInt32 || int64(size) > math.MaxInt32 {
			return nil, nil, nil, 0, errf("sample data offset out of range")
		}
		ss[i] = Sample{
			DTS:       dts,
			PTSOffset: cto,
			Duration:  dur,
			Keyframe:  allSync || sflags&0x10000 == 0,
		}
		sizes[i] = size
		offs[i] = int(off)
		off += int64(size)
		dts += int64(dur)
	}
	return ss, offs, sizes, dts, nil
}
