package fragment

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
)

// TagTiming is the Tributary tag that carries a fragment's exact sample
// timing (decode timestamps and durations in each track's timescale), so
// that MKV → fMP4 restores timestamps Matroska's 1 ms timecodes would
// round. Other readers ignore it.
const TagTiming = "TRIBUTARY_TIMING"

// MKVNameONVIF is the Name of an ONVIF metadata track (CodecONVIF): a
// UTF-8 text track (S_TEXT/UTF8) of XML documents, which the name tells
// from JSON data.
const MKVNameONVIF = "ONVIF metadata"

// MKVWriter writes fragments as self-contained Matroska files in the shape
// Kinesis Video Streams' GetMedia returns: an EBML header, then a Segment
// with Info (1 ms TimecodeScale), Tracks, Tags (fragment number, server and
// producer timestamps in decimal seconds, user tags) and one Cluster whose
// timecode is the producer start in Unix milliseconds. A fragment longer
// than a block timecode can reach (32.7 s) gets more clusters.
//
// The zero value is ready to use. It caches the encoded Tracks of the last
// codec configuration, so steady-state writing allocates nothing. One
// goroutine at a time.
type MKVWriter struct {
	// Monotonic, for a stream of fragments in one Segment (GetMedia), starts
	// each fragment's clusters no earlier than the end of the previous one.
	// Producer times of neighbouring fragments may overlap by a few
	// milliseconds (the producer clock slews between them, while the blocks
	// inside a fragment follow its media timestamps); players need
	// timecodes that never go back. The producer-timestamp tags keep the
	// true times. Default false: each fragment at its own producer time.
	Monotonic bool

	nextMs  int64   // with Monotonic: where the previous fragment ended
	cfg     []Track // the configuration of tracks
	tracks  []byte  // the encoded Tracks element of cfg
	order   []int   // scratch: next sample index per track
	timing  []byte  // scratch: TagTiming payload
	scratch []byte
}

// maxBlockOffset is how far (in ms) a block may be from its cluster's
// timecode before a new cluster starts (the limit is int16).
const maxBlockOffset = 30000

// Append appends the MKV encoding of f to dst. f.TrackConfigs describe the
// tracks; Metadata gives the tags.
func (w *MKVWriter) Append(dst []byte, f *Fragment) ([]byte, error) {
	if err := w.tracksOf(f); err != nil {
		return dst, err
	}
	dst = appendEBMLHeader(dst)
	seg := len(dst)
	dst = appendMasterStart(dst, mkvSegment)
	dst = appendInfo(dst, f.Duration)
	dst = append(dst, w.tracks...)
	dst = w.appendBody(dst, f)
	return closeMaster(dst, seg), nil
}

// AppendStreamStart begins a stream of fragments in one Matroska segment of
// unknown size, as a live stream is (ffmpeg reads it, which it does not
// with one segment per fragment): EBML header, Segment, Info and the Tracks
// of f's configuration. AppendStreamFragment then adds each fragment; a
// fragment of another configuration needs a new AppendStreamStart.
func (w *MKVWriter) AppendStreamStart(dst []byte, f *Fragment) ([]byte, error) {
	if err := w.tracksOf(f); err != nil {
		return dst, err
	}
	dst = appendEBMLHeader(dst)
	dst = appendID(dst, mkvSegment)
	dst = append(dst, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF) // unknown size
	dst = appendInfo(dst, 0)
	return append(dst, w.tracks...), nil
}

// AppendStreamFragment appends a fragment's Tags and Clusters to a stream
// begun by AppendStreamStart.
func (w *MKVWriter) AppendStreamFragment(dst []byte, f *Fragment) []byte {
	return w.appendBody(dst, f)
}

// Wrote reports whether tracks are the configuration of the Tracks last
// written (a stream begun by AppendStreamStart can go on with them).
func (w *MKVWriter) Wrote(tracks []Track) bool {
	return w.tracks != nil && TracksEqual(w.cfg, tracks)
}

func (w *MKVWriter) tracksOf(f *Fragment) error {
	if !w.Wrote(f.TrackConfigs) {
		tr, err := encodeMKVTracks(f.TrackConfigs)
		if err != nil {
			return err
		}
		w.tracks, w.cfg = tr, append(w.cfg[:0], f.TrackConfigs...)
	}
	return nil
}

func appendInfo(dst []byte, d time.Duration) []byte {
	info := len(dst)
	dst = appendMasterStart(dst, mkvInfo)
	dst = appendUint(dst, mkvTimecodeScale, 1000000)
	dst = appendString(dst, mkvMuxingApp, "tributary")
	dst = appendString(dst, mkvWritingApp, "tributary")
	if d > 0 {
		dst = appendFloat(dst, mkvDuration, float64(d)/1e6)
	}
	return closeMaster(dst, info)
}

// appendBody writes a fragment's Tags and Clusters.
func (w *MKVWriter) appendBody(dst []byte, f *Fragment) []byte {
	// Tags
	tags := len(dst)
	dst = appendMasterStart(dst, mkvTags)
	tag := len(dst)
	dst = appendMasterStart(dst, mkvTag)
	tg := len(dst)
	dst = appendMasterStart(dst, mkvTargets)
	dst = appendUint(dst, mkvTargetTypeVal, 50)
	dst = closeMaster(dst, tg)
	w.scratch = strconv.AppendUint(w.scratch[:0], f.Number, 10)
	dst = appendSimpleTag(dst, TagFragmentNumber, w.scratch)
	w.scratch = appendSeconds(w.scratch[:0], f.ServerTime.UnixMilli())
	dst = appendSimpleTag(dst, TagServerTimestamp, w.scratch)
	w.scratch = appendSeconds(w.scratch[:0], f.ProducerStart.UnixMilli())
	dst = appendSimpleTag(dst, TagProducerTimestamp, w.scratch)
	for k, v := range f.Tags {
		dst = appendSimpleTagString(dst, k, v)
	}
	w.timing = appendTiming(w.timing[:0], f)
	dst = appendSimpleTagBinary(dst, TagTiming, w.timing)
	dst = closeMaster(dst, tag)
	dst = closeMaster(dst, tags)

	// Clusters: blocks in decode order across tracks.
	base := f.ProducerStart.UnixMilli()
	if w.Monotonic {
		base = max(base, w.nextMs)
		w.nextMs = base + roundDiv(int64(f.Duration), 1e6)
	}
	leadPTS := leaderPTSNs(f)
	if cap(w.order) < len(f.Samples) {
		w.order = make([]int, len(f.Samples))
	}
	next := w.order[:len(f.Samples)]
	clear(next)
	cluster := -1
	clusterTC := base
	for {
		ti := -1
		var best int64
		for i, ss := range f.Samples {
			if next[i] >= len(ss) {
				continue
			}
			d := ticksToNs(ss[next[i]].DTS, f.TrackConfigs[i].TimeScale)
			if ti < 0 || d < best {
				ti, best = i, d
			}
		}
		if ti < 0 {
			break
		}
		s := &f.Samples[ti][next[ti]]
		next[ti]++
		ms := base + roundDiv(ticksToNs(s.PTS(), f.TrackConfigs[ti].TimeScale)-leadPTS, 1e6)
		if cluster < 0 || ms-clusterTC > maxBlockOffset || ms-clusterTC < -maxBlockOffset {
			if cluster >= 0 {
				dst = closeMaster(dst, cluster)
				clusterTC = ms // a fragment longer than a block offset reaches
			}
			cluster = len(dst)
			dst = appendMasterStart(dst, mkvCluster)
			dst = appendUint(dst, mkvTimecode, uint64(max(clusterTC, 0)))
		}
		dst = appendSimpleBlock(dst, f.TrackConfigs[ti].ID, int16(ms-clusterTC), s.Keyframe, s.Payload)
	}
	if cluster < 0 {
		cluster = len(dst)
		dst = appendMasterStart(dst, mkvCluster)
		dst = appendUint(dst, mkvTimecode, uint64(max(base, 0)))
	}
	return closeMaster(dst, cluster)
}

// AppendMKV appends the MKV encoding of f to dst with a throwaway writer.
func AppendMKV(dst []byte, f *Fragment) ([]byte, error) {
	var w MKVWriter
	return w.Append(dst, f)
}

// leaderPTSNs is the PTS (ns, session timeline) of the first sample of the
// leading track (the first video track, else the first track with samples):
// the instant ProducerStart names.
func leaderPTSNs(f *Fragment) int64 {
	lead := -1
	for i, t := range f.TrackConfigs {
		if t.Kind == KindVideo && len(f.Samples[i]) > 0 {
			lead = i
			break
		}
	}
	if lead < 0 {
		for i := range f.Samples {
			if len(f.Samples[i]) > 0 {
				lead = i
				break
			}
		}
	}
	if lead < 0 {
		return 0
	}
	return ticksToNs(f.Samples[lead][0].PTS(), f.TrackConfigs[lead].TimeScale)
}

func roundDiv(v, d int64) int64 {
	if v >= 0 {
		return (v + d/2) / d
	}
	return -((-v + d/2) / d)
}

// appendSeconds writes Unix milliseconds as decimal seconds ("1795751752.129").
func appendSeconds(dst []byte, ms int64) []byte {
	if ms < 0 {
		dst = append(dst, '-')
		ms = -ms
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	dst = append(dst, '.')
	frac := ms % 1000
	dst = append(dst, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return dst
}

// appendTiming encodes the exact timing of f's samples: version 1, then per
// track with samples: track ID, timescale, sample count, and per sample the
// DTS delta from the previous sample (the first from 0), the duration and
// the PTS offset, as varints.
func appendTiming(dst []byte, f *Fragment) []byte {
	dst = append(dst, 1)
	n := 0
	for _, ss := range f.Samples {
		if len(ss) > 0 {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i, ss := range f.Samples {
		if len(ss) == 0 {
			continue
		}
		t := &f.TrackConfigs[i]
		dst = binary.AppendUvarint(dst, uint64(t.ID))
		dst = binary.AppendUvarint(dst, uint64(t.TimeScale))
		dst = binary.AppendUvarint(dst, uint64(len(ss)))
		prev := int64(0)
		for j := range ss {
			dst = binary.AppendVarint(dst, ss[j].DTS-prev)
			prev = ss[j].DTS
			dst = binary.AppendUvarint(dst, uint64(ss[j].Duration))
			dst = binary.AppendVarint(dst, int64(ss[j].PTSOffset))
		}
	}
	return dst
}

// ---- EBML encoding ----

func appendID(dst []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(dst, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(dst, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(dst, byte(id>>8), byte(id))
	}
	return append(dst, byte(id))
}

// appendSize writes a data size as the shortest EBML vint.
func appendSize(dst []byte, n uint64) []byte {
	for l := 1; l <= 8; l++ {
		if n < (1<<(7*l))-1 {
			v := n | 1<<(7*l)
			for i := l - 1; i >= 0; i-- {
				dst = append(dst, byte(v>>(8*i)))
			}
			return dst
		}
	}
	panic("fragment: EBML size too large")
}

// appendMasterStart writes a master element's ID and an 8-byte size to be
// filled by closeMaster.
func appendMasterStart(dst []byte, id uint32) []byte {
	dst = appendID(dst, id)
	return append(dst, 0x01, 0, 0, 0, 0, 0, 0, 0)
}

// closeMaster fills in the size of the master element that starts at at.
func closeMaster(dst []byte, at int) []byte {
	idLen := 1
	switch b := dst[at]; {
	case b&0x80 != 0:
		idLen = 1
	case b&0x40 != 0:
		idLen = 2
	case b&0x20 != 0:
		idLen = 3
	default:
		idLen = 4
	}
	sizeAt := at + idLen
	n := uint64(len(dst) - sizeAt - 8)
	binary.BigEndian.PutUint64(dst[sizeAt:], n|0x01<<56)
	return dst
}

func appendUint(dst []byte, id uint32, v uint64) []byte {
	dst = appendID(dst, id)
	n := 1
	for n < 8 && v>>(8*n) != 0 {
		n++
	}
	dst = appendSize(dst, uint64(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

func appendFloat(dst []byte, id uint32, v float64) []byte {
	dst = appendID(dst, id)
	dst = appendSize(dst, 8)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendString(dst []byte, id uint32, s string) []byte {
	dst = appendID(dst, id)
	dst = appendSize(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, id uint32, b []byte) []byte {
	dst = appendID(dst, id)
	dst = appendSize(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendSimpleTag(dst []byte, name string, value []byte) []byte {
	at := len(dst)
	dst = appendMasterStart(dst, mkvSimpleTag)
	dst = appendString(dst, mkvTagName, name)
	dst = appendBinary(dst, mkvTagString, value)
	return closeMaster(dst, at)
}

func appendSimpleTagString(dst []byte, name, value string) []byte {
	at := len(dst)
	dst = appendMasterStart(dst, mkvSimpleTag)
	dst = appendString(dst, mkvTagName, name)
	dst = appendString(dst, mkvTagString, value)
	return closeMaster(dst, at)
}

func appendSimpleTagBinary(dst []byte, name string, value []byte) []byte {
	at := len(dst)
	dst = appendMasterStart(dst, mkvSimpleTag)
	dst = appendString(dst, mkvTagName, name)
	dst = appendBinary(dst, mkvTagBinary, value)
	return closeMaster(dst, at)
}

func appendSimpleBlock(dst []byte, track uint32, rel int16, key bool, data []byte) []byte {
	dst = appendID(dst, mkvSimpleBlock)
	tnLen := 1
	if track >= 127 {
		tnLen = 2 // up to 16382 tracks
	}
	dst = appendSize(dst, uint64(tnLen+3+len(data)))
	dst = appendSize(dst, uint64(track))
	dst = binary.BigEndian.AppendUint16(dst, uint16(rel))
	flags := byte(0)
	if key {
		flags = 0x80
	}
	dst = append(dst, flags)
	return append(dst, data...)
}

func appendEBMLHeader(dst []byte) []byte {
	at := len(dst)
	dst = appendMasterStart(dst, mkvEBML)
	dst = appendUint(dst, mkvEBMLVersion, 1)
	dst = appendUint(dst, mkvEBMLReadVersion, 1)
	dst = appendUint(dst, mkvEBMLMaxIDLength, 4)
	dst = appendUint(dst, mkvEBMLMaxSizeLength, 8)
	dst = appendString(dst, mkvDocType, "matroska")
	dst = appendUint(dst, mkvDocTypeVersion, 4)
	dst = appendUint(dst, mkvDocTypeReadVersion, 2)
	return closeMaster(dst, at)
}

// encodeMKVTracks encodes the Tracks element of a codec configuration.
func encodeMKVTracks(tracks []Track) ([]byte, error) {
	dst := appendMasterStart(nil, mkvTracks)
	for _, t := range tracks {
		codecID, private, err := MKVCodec(t)
		if err != nil {
			return nil, err
		}
		at := len(dst)
		dst = appendMasterStart(dst, mkvTrackEntry)
		dst = appendUint(dst, mkvTrackNumber, uint64(t.ID))
		dst = appendUint(dst, mkvTrackUID, uint64(t.ID))
		dst = appendUint(dst, mkvFlagLacing, 0)
		dst = appendString(dst, mkvCodecID, codecID)
		if t.Codec == CodecONVIF {
			dst = appendString(dst, mkvName, MKVNameONVIF)
		} else if t.Kind == KindData && t.Name != "" {
			dst = appendString(dst, mkvName, t.Name)
		}
		if len(private) > 0 {
			dst = appendBinary(dst, mkvCodecPrivate, private)
		}
		switch t.Kind {
		case KindVideo:
			dst = appendUint(dst, mkvTrackType, mkvTrackVideo)
			v := len(dst)
			dst = appendMasterStart(dst, mkvVideo)
			dst = appendUint(dst, mkvPixelWidth, uint64(t.Width))
			dst = appendUint(dst, mkvPixelHeight, uint64(t.Height))
			dst = closeMaster(dst, v)
		case KindAudio:
			dst = appendUint(dst, mkvTrackType, mkvTrackAudio)
			if t.Codec == CodecOpus {
				dst = appendUint(dst, mkvCodecDelay, 6500000) // 312 samples of pre-skip
				dst = appendUint(dst, mkvSeekPreRoll, 80000000)
			}
			a := len(dst)
			dst = appendMasterStart(dst, mkvAudio)
			dst = appendFloat(dst, mkvSamplingFrequency, float64(t.SampleRate))
			dst = appendUint(dst, mkvChannels, uint64(max(t.Channels, 1)))
			if t.Codec == CodecPCMU || t.Codec == CodecPCMA {
				dst = appendUint(dst, mkvBitDepth, 8)
			}
			dst = closeMaster(dst, a)
		default:
			dst = appendUint(dst, mkvTrackType, mkvTrackSubtitle)
		}
		dst = closeMaster(dst, at)
	}
	return closeMaster(dst, 0), nil
}

// MKVCodec returns the Matroska CodecID and CodecPrivate of a track: avcC
// for H.264, hvcC for H.265, the AudioSpecificConfig for AAC, an OpusHead
// for Opus, a WAVEFORMATEX (A_MS/ACM) for G.711.
func MKVCodec(t Track) (string, []byte, error) {
	switch t.Codec {
	case CodecH264, CodecH265:
		init, err := MarshalInit([]Track{t})
		if err != nil {
			return "", nil, err
		}
		box := "avcC"
		id := "V_MPEG4/ISO/AVC"
		if t.Codec == CodecH265 {
			box, id = "hvcC", "V_MPEGH/ISO/HEVC"
		}
		cfg, err := findBoxDeep(init, box)
		if err != nil {
			return "", nil, err
		}
		return id, append([]byte(nil), cfg...), nil
	case CodecAAC:
		return "A_AAC", t.Config, nil
	case CodecOpus:
		h := make([]byte, 19)
		copy(h, "OpusHead")
		h[8] = 1
		h[9] = byte(max(t.Channels, 1))
		binary.LittleEndian.PutUint16(h[10:], 312)
		binary.LittleEndian.PutUint32(h[12:], 48000)
		return "A_OPUS", h, nil
	case CodecPCMU, CodecPCMA:
		w := make([]byte, 18)
		tag := uint16(7)
		if t.Codec == CodecPCMA {
			tag = 6
		}
		ch := uint16(max(t.Channels, 1))
		binary.LittleEndian.PutUint16(w[0:], tag)
		binary.LittleEndian.PutUint16(w[2:], ch)
		binary.LittleEndian.PutUint32(w[4:], uint32(t.SampleRate))
		binary.LittleEndian.PutUint32(w[8:], uint32(t.SampleRate)*uint32(ch))
		binary.LittleEndian.PutUint16(w[12:], ch)
		binary.LittleEndian.PutUint16(w[14:], 8)
		return "A_MS/ACM", w, nil
	case CodecVP8:
		return "V_VP8", nil, nil
	case CodecVP9:
		return "V_VP9", nil, nil
	case CodecAV1:
		return "V_AV1", t.Config, nil
	case CodecJSON, CodecONVIF:
		return "S_TEXT/UTF8", nil, nil
	}
	return "", nil, fmt.Errorf("%w %q in MKV", ErrUnsupportedCodec, t.Codec)
}

// findBoxDeep finds the first box of type typ anywhere in b (descending
// into containers and sample entries) and returns its body.
func findBoxDeep(b []byte, typ string) ([]byte, error) {
	var found []byte
	var walk func(b []byte, depth int)
	walk = func(b []byte, depth int) {
		for len(b) >= 8 && found == nil && depth < 12 {
			size, t, hdr, err := boxHeader(b)
			if err != nil {
				return
			}
			body := b[hdr:size]
			switch {
			case t == typ:
				found = body
				return
			case t == "stsd" && len(body) > 8:
				walk(body[8:], depth+1)
			case t == "avc1" || t == "avc3" || t == "hvc1" || t == "hev1":
				if len(body) > 78 {
					walk(body[78:], depth+1)
				}
			case t == "moov" || t == "trak" || t == "mdia" || t == "minf" || t == "stbl":
				walk(body, depth+1)
			}
			b = b[size:]
		}
	}
	walk(b, 0)
	if found == nil {
		return nil, errf("no %s box", typ)
	}
	return found, nil
}
