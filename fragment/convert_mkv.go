package fragment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
)

// TrackFromMKV maps a Matroska track to a Track: H.264 (avcC), H.265
// (hvcC), AAC, Opus, G.711 (A_MS/ACM), VP8, VP9, AV1 and UTF-8 text (JSON
// data, or ONVIF metadata when the track is named MKVNameONVIF). Video and
// ONVIF timestamps use a 90 kHz timescale, audio its sample rate, JSON
// data milliseconds.
func TrackFromMKV(m MKVTrack) (Track, error) {
	t := Track{ID: uint32(m.Number)}
	if m.Number == 0 || m.Number > 1<<16 {
		return t, fmt.Errorf("%w: track number %d", ErrInvalidMKV, m.Number)
	}
	video := func(c Codec) {
		t.Kind, t.Codec, t.TimeScale = KindVideo, c, 90000
		t.Width, t.Height = int(min(m.PixelWidth, 1<<16)), int(min(m.PixelHeight, 1<<16))
	}
	switch id := m.CodecID; {
	case id == "V_MPEG4/ISO/AVC":
		video(CodecH264)
		if err := parseAVCC(&t, m.CodecPrivate); err != nil {
			return t, fmt.Errorf("track %d: %w", m.Number, err)
		}
	case id == "V_MPEGH/ISO/HEVC":
		video(CodecH265)
		if err := parseHVCC(&t, m.CodecPrivate); err != nil {
			return t, fmt.Errorf("track %d: %w", m.Number, err)
		}
	case id == "V_VP8":
		video(CodecVP8)
	case id == "V_VP9":
		video(CodecVP9)
	case id == "V_AV1":
		video(CodecAV1)
		t.Config = bytes.Clone(m.CodecPrivate)
	case id == "A_AAC" || strings.HasPrefix(id, "A_AAC/"):
		t.Kind, t.Codec = KindAudio, CodecAAC
		t.Config = bytes.Clone(m.CodecPrivate)
		if len(t.Config) == 0 {
			// legacy IDs carry no config: AAC-LC from the rate and channels
			asc := mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: int(m.SamplingFrequency),
				ChannelConfig: uint8(max(m.Channels, 1))}
			b, err := asc.Marshal()
			if err != nil {
				return t, fmt.Errorf("track %d: AAC without a config: %w", m.Number, err)
			}
			t.Config = b
		}
		if err := t.FillFromParams(); err != nil {
			return t, fmt.Errorf("track %d: %w", m.Number, err)
		}
		t.TimeScale = uint32(t.SampleRate)
	case id == "A_OPUS":
		t.Kind, t.Codec, t.TimeScale, t.SampleRate = KindAudio, CodecOpus, 48000, 48000
		t.Channels = int(max(m.Channels, 1))
		if p := m.CodecPrivate; len(p) >= 19 && string(p[:8]) == "OpusHead" && p[9] > 0 {
			t.Channels = int(p[9])
		}
	case id == "A_MS/ACM":
		p := m.CodecPrivate
		if len(p) < 16 {
			return t, fmt.Errorf("%w: track %d: A_MS/ACM without a WAVEFORMATEX", ErrInvalidMKV, m.Number)
		}
		switch binary.LittleEndian.Uint16(p) {
		case 7:
			t.Codec = CodecPCMU
		case 6:
			t.Codec = CodecPCMA
		default:
			return t, fmt.Errorf("%w: track %d: A_MS/ACM format 0x%x (only G.711: 6, 7)", ErrUnsupportedCodec, m.Number, binary.LittleEndian.Uint16(p))
		}
		t.Kind = KindAudio
		t.Channels = int(binary.LittleEndian.Uint16(p[2:]))
		t.SampleRate = int(binary.LittleEndian.Uint32(p[4:]))
		if t.Channels < 1 || t.Channels > 8 || t.SampleRate < 1000 || t.SampleRate > 192000 {
			return t, fmt.Errorf("%w: track %d: G.711 of %d channels at %d Hz", ErrInvalidMKV, m.Number, t.Channels, t.SampleRate)
		}
		t.TimeScale = uint32(t.SampleRate)
	case id == "S_TEXT/UTF8" && m.Name == MKVNameONVIF:
		t.Kind, t.Codec, t.TimeScale = KindData, CodecONVIF, 90000
	case id == "S_TEXT/UTF8":
		t.Kind, t.Codec, t.TimeScale, t.Name = KindData, CodecJSON, 1000, m.Name
	default:
		return t, fmt.Errorf("%w %q (track %d)", ErrUnsupportedCodec, id, m.Number)
	}
	if t.TimeScale == 0 {
		return t, fmt.Errorf("%w: track %d: no sample rate", ErrInvalidMKV, m.Number)
	}
	return t, nil
}

// Fragment converts a cluster read from an MKV fragment into a Fragment:
// its tracks, samples and the metadata its tags carry (KVS fragment number,
// server and producer timestamps, user tags). A cluster written by
// Tributary carries its exact timing (TagTiming); for others, timestamps
// come from the 1 ms block timecodes, decode timestamps are derived from
// the presentation order, and the first sample starts the timeline. The
// samples' payloads alias the cluster's frames: they are valid as long as
// the cluster is.
func (c *MKVCluster) Fragment() (*Fragment, error) {
	f := &Fragment{Metadata: Metadata{Container: ContainerMKV}}
	idx := map[uint64]int{}
	for _, mt := range c.Tracks {
		t, err := TrackFromMKV(mt)
		if err != nil {
			return nil, err
		}
		idx[mt.Number] = len(f.TrackConfigs)
		f.TrackConfigs = append(f.TrackConfigs, t)
	}
	f.Samples = make([][]Sample, len(f.TrackConfigs))
	times := make([][]int64, len(f.TrackConfigs))
	for _, fr := range c.Frames {
		i, ok := idx[fr.Track]
		if !ok {
			return nil, fmt.Errorf("%w: a frame of track %d, which the segment does not declare", ErrInvalidMKV, fr.Track)
		}
		key := fr.Keyframe || f.TrackConfigs[i].Kind != KindVideo
		f.Samples[i] = append(f.Samples[i], Sample{Keyframe: key, Payload: fr.Data, Time: fr.Time})
		times[i] = append(times[i], fr.Time)
	}
	f.InitHash = ConfigHash(f.TrackConfigs)
	if err := f.tagsToMetadata(c); err != nil {
		return nil, err
	}
	if b, ok := c.Binary[TagTiming]; !ok || applyTiming(f, b) != nil {
		deriveTiming(f, times)
	}
	for i, ss := range f.Samples {
		t := f.TrackConfigs[i]
		if len(ss) == 0 {
			continue
		}
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

// tagsToMetadata fills the metadata the cluster's tags carry.
func (f *Fragment) tagsToMetadata(c *MKVCluster) error {
	if v, ok := c.Tags[TagFragmentNumber]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: tag %s=%q", ErrInvalidMKV, TagFragmentNumber, v)
		}
		f.Number = n
	}
	parse := func(name string) (time.Time, bool, error) {
		v, ok := c.Tags[name]
		if !ok {
			return time.Time{}, false, nil
		}
		s, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || s < 0 || s > 1e11 {
			return time.Time{}, false, fmt.Errorf("%w: tag %s=%q is not decimal seconds", ErrInvalidMKV, name, v)
		}
		return time.UnixMilli(int64(s*1000 + 0.5)).UTC(), true, nil
	}
	var err error
	var ok bool
	if f.ServerTime, _, err = parse(TagServerTimestamp); err != nil {
		return err
	}
	if f.ProducerStart, ok, err = parse(TagProducerTimestamp); err != nil {
		return err
	}
	if !ok && len(c.Frames) > 0 {
		f.ProducerStart = time.Unix(0, c.Frames[0].Time).UTC()
	}
	for k, v := range c.Tags {
		if strings.HasPrefix(k, "AWS_KINESISVIDEO_") || strings.HasPrefix(k, "TRIBUTARY_") {
			continue
		}
		if f.Tags == nil {
			f.Tags = map[string]string{}
		}
		f.Tags[k] = v
	}
	return nil
}

// applyTiming restores the exact timing TagTiming carries.
func applyTiming(f *Fragment, b []byte) error {
	bad := fmt.Errorf("%w: bad %s tag", ErrInvalidMKV, TagTiming)
	if len(b) == 0 || b[0] != 1 {
		return bad
	}
	b = b[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	ntracks, ok := uv()
	if !ok || ntracks > uint64(len(f.TrackConfigs)) {
		return bad
	}
	type timing struct {
		dts      []int64
		dur      []uint32
		ptsOff   []int32
		track, n int
	}
	var ts []timing
	for range ntracks {
		id, ok1 := uv()
		scale, ok2 := uv()
		n, ok3 := uv()
		if !ok1 || !ok2 || !ok3 {
			return bad
		}
		ti := slices.IndexFunc(f.TrackConfigs, func(t Track) bool { return uint64(t.ID) == id })
		if ti < 0 || uint64(f.TrackConfigs[ti].TimeScale) != scale || n != uint64(len(f.Samples[ti])) {
			return bad
		}
		tm := timing{track: ti, n: int(n)}
		prev := int64(0)
		for range n {
			d, ok1 := sv()
			dur, ok2 := uv()
			po, ok3 := sv()
			if !ok1 || !ok2 || !ok3 || dur > 1<<32-1 || po > 1<<31-1 || po < -1<<31 {
				return bad
			}
			prev += d
			tm.dts = append(tm.dts, prev)
			tm.dur = append(tm.dur, uint32(dur))
			tm.ptsOff = append(tm.ptsOff, int32(po))
		}
		ts = append(ts, tm)
	}
	for _, tm := range ts {
		ss := f.Samples[tm.track]
		for j := range ss {
			ss[j].DTS, ss[j].Duration, ss[j].PTSOffset = tm.dts[j], tm.dur[j], tm.ptsOff[j]
		}
	}
	return nil
}

// deriveTiming sets timestamps from the frames' presentation times (ns):
// decode timestamps follow presentation order shifted by the largest
// reordering, durations follow from the next sample, and every track's
// timeline starts at the earliest decode time of the fragment.
func deriveTiming(f *Fragment, times [][]int64) {
	base := int64(0)
	first := true
	delays := make([]int64, len(times))
	for i, tt := range times {
		if len(tt) == 0 {
			continue
		}
		sorted := slices.Clone(tt)
		slices.Sort(sorted)
		var d int64
		for j := range tt {
			d = max(d, tt[j]-sorted[j])
		}
		delays[i] = d
		if start := sorted[0] - d; first || start < base {
			base, first = start, false
		}
	}
	for i, tt := range times {
		if len(tt) == 0 {
			continue
		}
		scale := f.TrackConfigs[i].TimeScale
		sorted := slices.Clone(tt)
		slices.Sort(sorted)
		ss := f.Samples[i]
		if f.TrackConfigs[i].Kind == KindVideo {
			if grid := frameGrid(tt, sorted, scale); grid != nil {
				// a constant frame rate: exact timestamps on its grid
				first := nsToTicks(sorted[0]-base, scale)
				dur := grid[len(grid)-1]
				delay := nsToTicks(delays[i], scale)
				delay = (delay + dur/2) / dur * dur
				for j := range ss {
					pts := first + grid[j]*dur
					dts := first + int64(j)*dur - delay
					ss[j].DTS, ss[j].PTSOffset, ss[j].Duration = dts, int32(pts-dts), uint32(dur)
				}
				continue
			}
		}
		for j := range ss {
			dts := nsToTicks(sorted[j]-delays[i]-base, scale)
			pts := nsToTicks(tt[j]-base, scale)
			ss[j].DTS = dts
			ss[j].PTSOffset = int32(pts - dts)
		}
		if d := nominalFrame(f.TrackConfigs[i], ss[0].Payload); d > 0 {
			// audio frames have a fixed length: millisecond timecodes would
			// make their timeline jitter, so they follow one another exactly
			for j := range ss {
				if j > 0 {
					ss[j].DTS = ss[j-1].DTS + int64(ss[j-1].Duration)
				}
				ss[j].PTSOffset = 0
				ss[j].Duration = uint32(nominalFrame(f.TrackConfigs[i], ss[j].Payload))
			}
			continue
		}
		for j := range ss {
			switch {
			case j+1 < len(ss):
				ss[j].Duration = uint32(max(ss[j+1].DTS-ss[j].DTS, 1))
			case j > 0:
				ss[j].Duration = ss[j-1].Duration
			default:
				ss[j].Duration = 1
			}
		}
	}
}

// standardFrames are frame durations at 90 kHz of common frame rates.
var standardFrames = []int64{3750, 3754, 3600, 3003, 3000, 1800, 1502, 1500, 1200}

// frameGrid recognises a constant frame rate behind millisecond-rounded
// presentation times tt (sorted: the same, in order): it returns each
// frame's index on the grid, followed by the frame duration in ticks, or
// nil when the times do not fit one.
func frameGrid(tt, sorted []int64, scale uint32) []int64 {
	n := len(tt)
	if n < 3 {
		return nil
	}
	avg := float64(sorted[n-1]-sorted[0]) / float64(n-1) // ns
	if avg <= 0 {
		return nil
	}
	dur := int64(avg*float64(scale)/1e9 + 0.5)
	if scale == 90000 {
		for _, d := range standardFrames {
			if abs64(d-dur) <= d/100 {
				dur = d
				break
			}
		}
	}
	durNs := float64(dur) * 1e9 / float64(scale)
	grid := make([]int64, n+1)
	seen := make(map[int64]bool, n)
	for j, t := range tt {
		k := int64(float64(t-sorted[0])/durNs + 0.5)
		if d := float64(t-sorted[0]) - float64(k)*durNs; d > 1.5e6 || d < -1.5e6 || seen[k] {
			return nil // more than a millisecond and a half off the grid
		}
		seen[k] = true
		grid[j] = k
	}
	grid[n] = dur
	return grid
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// nominalFrame is the duration, in ticks of the track's timescale, of an
// audio frame whose codec fixes it (AAC, Opus, G.711), or 0.
func nominalFrame(t Track, payload []byte) int64 {
	switch t.Codec {
	case CodecAAC:
		return mpeg4audio.SamplesPerAccessUnit
	case CodecOpus:
		return max(opus.PacketDuration2(payload), 1)
	case CodecPCMU, CodecPCMA:
		return int64(max(len(payload)/max(t.Channels, 1), 1))
	}
	return 0
}

// MKVToFMP4 converts one self-contained MKV fragment (as MKVWriter writes
// it, or as KVS GetMedia returns it) into an fMP4 init segment and
// fragment with the same samples and timestamps.
func MKVToFMP4(mkv []byte) (init, frag []byte, meta Metadata, err error) {
	r := NewMKVReader(bytes.NewReader(mkv))
	c, err := r.Next()
	if err != nil {
		return nil, nil, meta, err
	}
	f, err := c.Fragment()
	if err != nil {
		return nil, nil, meta, err
	}
	init, err = MarshalInit(f.TrackConfigs)
	if err != nil {
		return nil, nil, meta, err
	}
	frag = AppendFMP4(nil, f)
	f.Container = ContainerFMP4
	f.Size = int64(len(frag))
	return init, frag, f.Metadata, nil
}

// FMP4ToMKV converts an fMP4 fragment (with its init segment) into a
// self-contained MKV fragment with the same samples and timestamps; m gives
// the fragment's metadata for the tags (number, server and producer time).
func FMP4ToMKV(init, frag []byte, m Metadata) ([]byte, error) {
	tracks, err := ParseInit(init)
	if err != nil {
		return nil, err
	}
	f, err := ParseFMP4(frag, tracks)
	if err != nil {
		return nil, err
	}
	number := f.Number
	f.Metadata = m
	if f.Number == 0 {
		f.Number = number
	}
	f.InitHash = ConfigHash(tracks)
	return AppendMKV(nil, f)
}
