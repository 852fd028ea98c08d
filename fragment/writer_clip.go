package fragment

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// ErrEmptyClip is returned when a clip's time range holds no sample: the
// range is empty (to is not after from), lies before the first fragment or
// after the last, or falls in a gap with no keyframe before its end.
var ErrEmptyClip = errors.New("clip: no media in the time range")

// ClipSource gives the fragments of a clip in order, twice: the writer reads
// them once to build the sample tables and once more to copy the media.
//
// In the first pass the writer reads only the fragments' metadata, track
// configurations and sample timing, flags and payload lengths, never the
// payload bytes: a source may hand out payloads of the right length and any
// content (parsed from the moof alone, say). The second pass must give the
// same fragments with the same samples, and there the bytes count; a sample
// whose length differs from the first pass fails the clip.
type ClipSource interface {
	// Next returns the next fragment, or io.EOF. The fragment and its
	// payloads are valid until the next call.
	Next(ctx context.Context) (*Fragment, error)
	// Rewind starts over from the first fragment.
	Rewind(ctx context.Context) error
}

// WriteClip writes the samples of src between from and to (producer wall
// time) as a progressive MP4 to w. The start snaps back to the keyframe at or
// before from (of the leading track; other tracks start at that instant);
// the clip ends with the last sample that starts before to. Timestamps are
// rebased so the clip starts at 0; gaps and discontinuities between
// fragments are closed up (the clip is the recorded footage back to back),
// and the movie's creation time and a '©day' note carry the real start.
// It returns the number of bytes written.
//
// It is PlanClip followed by Clip.Stream; see PlanClip for the details
// (codec-configuration changes, track sets, what the source must do).
// Nothing is written when it returns ErrEmptyClip or any other error of
// the first pass.
func WriteClip(ctx context.Context, w io.Writer, src ClipSource, from, to time.Time) (int64, error) {
	c, err := PlanClip(ctx, src, from, to)
	if err != nil {
		return 0, err
	}
	return c.Stream(ctx, w)
}

// Clip is a progressive MP4 clip laid out by PlanClip: its header (ftyp and
// moov, with the sample tables of every track) is built, and Stream copies
// the media. It holds the header (a few bytes per sample) and a list of
// chunks (one per fragment and track), nothing of the media.
type Clip struct {
	src       ClipSource
	header    []byte // ftyp, moov and the mdat header
	mdatSize  int64  // media bytes
	tracks    []*clipTrack
	chunks    []clipChunk
	start     time.Time
	duration  time.Duration
	truncated error
}

// Size returns the size in bytes of the MP4 file Stream writes (for a
// Content-Length header).
func (c *Clip) Size() int64 { return int64(len(c.header)) + c.mdatSize }

// Start returns the producer time of the clip's first frame: the keyframe
// the start snapped to.
func (c *Clip) Start() time.Time { return c.start }

// Duration returns the clip's duration (gaps closed up).
func (c *Clip) Duration() time.Duration { return c.duration }

// Truncated returns why the clip ends before the requested end (a codec or
// track change it cannot carry, see PlanClip), or nil.
func (c *Clip) Truncated() error { return c.truncated }

// ErrClipTruncated is wrapped by Clip.Truncated.
var ErrClipTruncated = errors.New("clip ends early")

// PlanClip reads src once, from where it stands, and lays out the clip of
// the samples between from and to (see WriteClip). Nothing is written yet;
// Clip.Stream rewinds src and writes the file. It returns ErrEmptyClip when
// the range holds no sample and ErrUnsupportedCodec for an audio or video
// track MP4 cannot carry here (H.264, H.265, AAC, Opus and G.711 can).
//
// Fragments that end before from are skipped; the start is the last
// keyframe of the leading track (the first video track, else the first
// track with samples) at or before from in the first fragment that reaches
// past from, or its first keyframe when it has none before from. Reading
// stops with the fragment in which the leading track reaches to (its other
// tracks' samples before to are kept), so the source may run on past the
// range. The source should start at the fragment that holds from, or the
// one before it (audio that arrived early may sit at the end of the
// fragment before the keyframe, and is taken from there); earlier ones are
// read and skipped.
//
// Timing: each fragment's leading track continues exactly where the
// previous fragment's leading track ended (its last sample's duration), and
// the other tracks keep their offset to it within the fragment, so gaps,
// overlaps and DTS restarts between fragments disappear while audio stays in
// sync. An audio frame that would overlap the previous one after a gap is
// closed is dropped; a hole in a track (audio missing for a while) lengthens
// its last sample before the hole. An edit list makes the first keyframe
// present at 0 (with B-frames its DTS is below 0) and starts a track that
// begins later (audio that starts a few ms after the keyframe, a track that
// appears mid-clip) with an empty edit.
//
// Codec-configuration changes of a video track (a new SPS: another
// resolution) become extra sample entries in its stsd, stsc points each
// fragment's chunk at its entry, and the first sample after each switch
// also carries the new VPS/SPS/PPS in band: players that follow sample
// entries (ffmpeg) switch there, and those that keep the first one
// (Chromium) follow the parameter sets in band. An audio track's configuration change (a new
// AudioSpecificConfig, sample rate or channel count) ends the clip before
// the fragment that brings it, as does a track ID whose kind, codec or
// timescale changes: MP4 has no in-band way to signal those, and players
// that keep the first sample entry would fail on the rest. Truncated says
// where and why. The track set is the union over the clip's fragments (by
// track ID); a track may appear, disappear and come back. Data tracks
// (JSON) are left out of the file.
func PlanClip(ctx context.Context, src ClipSource, from, to time.Time) (*Clip, error) {
	if !to.After(from) {
		return nil, fmt.Errorf("%w: end %s is not after start %s", ErrEmptyClip, to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	}
	p := &clipPlanner{from: from.UnixNano(), to: to.UnixNano()}
	for fi := 0; ; fi++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := src.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("clip: reading fragment %d: %w", fi, err)
		}
		done, err := p.add(f, fi)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	if !p.started || p.samples == 0 {
		return nil, fmt.Errorf("%w: %s to %s", ErrEmptyClip, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	return p.finish(src)
}

// clipChunk is one chunk of the mdat: the samples [begin, end) of one track
// of one fragment.
type clipChunk struct {
	number     uint64 // the fragment's Number, checked in the second pass
	frag       int32  // index of the fragment in the source's order
	ftrack     int32  // track index in the fragment
	track      int32  // index in Clip.tracks
	begin, end int32
	entry      int32 // the sample entry
	inband     bool  // its parameter sets go in front of the first sample
}

type clipSttsRun struct{ count, delta uint32 }

type clipCttsRun struct {
	count  uint32
	offset int32
}

type clipStscRun struct{ firstChunk, samplesPerChunk, entry uint32 }

// clipTrack is one track of the clip: its sample entries, its sample
// tables and where its timeline stands.
type clipTrack struct {
	id         uint32
	kind       Kind
	codec      Codec
	timescale  uint32
	configs    []Track  // every configuration seen
	entryOf    []int    // the sample entry of each configuration
	lastConfig int      // the configuration of the last fragment
	entries    [][]byte // the sample entries (avc1, mp4a, …), as MarshalInit writes them
	inband     [][]byte // per entry: its parameter sets in band (H.264, H.265)
	lastChunk  int      // the sample entry of the last chunk
	hdlr       []byte   // whole boxes taken from MarshalInit
	xmhd       []byte   // vmhd or smhd
	dinf       []byte

	sizes   []uint32
	stts    []clipSttsRun
	ctts    []clipCttsRun
	anyCtts bool
	allSync bool
	stss    []uint32 // 1-based numbers of sync samples, once a non-sync one was seen
	stsc    []clipStscRun
	offsets []uint64 // chunk offsets, relative to the mdat payload until finish

	hasLast  bool
	lastDTS  int64  // clip DTS of the last sample (ticks)
	lastDur  uint32 // that sample's own duration
	base     int64  // clip DTS of the first sample
	firstPTS int64  // clip PTS of the first sample
	endPTS   int64  // end of presentation of the samples before to
	hasEnd   bool
	coAt     int // position of the co64 entries in the header
	szAt     int // position of the stsz entries in the header
}

func (t *clipTrack) nominalDuration() uint32 {
	if t.kind == KindVideo {
		return max(t.timescale/30, 1)
	}
	return max(t.timescale/50, 1)
}

// next is where the track's timeline continues: after the last sample.
func (t *clipTrack) next() int64 { return t.lastDTS + int64(t.lastDur) }

// addSample appends one sample of size bytes at clip DTS dts (raised to
// keep DTS increasing); inRange is false for a sample kept only as a
// reference of earlier-presented ones (a P-frame past the end whose
// B-frames present before it).
func (t *clipTrack) addSample(s *Sample, size int, dts int64, inRange bool) {
	n := uint32(len(t.sizes))
	if t.hasLast {
		dts = max(dts, t.lastDTS+1)
		d := dts - t.lastDTS
		t.pushStts(uint32(min(d, math.MaxUint32)))
	} else {
		t.base = dts
		t.firstPTS = dts + int64(s.PTSOffset)
		t.allSync = true
	}
	dur := s.Duration
	if dur == 0 {
		dur = t.lastDur
		if dur == 0 {
			dur = t.nominalDuration()
		}
	}
	t.hasLast, t.lastDTS, t.lastDur = true, dts, dur
	t.sizes = append(t.sizes, uint32(size))
	if k := len(t.ctts); k > 0 && t.ctts[k-1].offset == s.PTSOffset {
		t.ctts[k-1].count++
	} else {
		t.ctts = append(t.ctts, clipCttsRun{1, s.PTSOffset})
	}
	if s.PTSOffset != 0 {
		t.anyCtts = true
	}
	if !s.Keyframe && t.allSync {
		t.allSync = false
		t.stss = make([]uint32, 0, n+n/8+1)
		for i := range n {
			t.stss = append(t.stss, i+1)
		}
	}
	if s.Keyframe && !t.allSync {
		t.stss = append(t.stss, n+1)
	}
	if inRange {
		end := dts + int64(s.PTSOffset) + int64(dur)
		if !t.hasEnd || end > t.endPTS {
			t.endPTS, t.hasEnd = end, true
		}
	}
}

func (t *clipTrack) pushStts(d uint32) {
	if k := len(t.stts); k > 0 && t.stts[k-1].delta == d {
		t.stts[k-1].count++
		return
	}
	t.stts = append(t.stts, clipSttsRun{1, d})
}

// entryFor returns the index of the sample entry of configuration c,
// adding one when c is new; why says what keeps c from sharing the track.
func (t *clipTrack) entryFor(c *Track) (entry int, why string, err error) {
	if t.configs[t.lastConfig].Equal(c) {
		return t.entryOf[t.lastConfig], "", nil
	}
	for i := range t.configs {
		if t.configs[i].Equal(c) {
			t.lastConfig = i
			return t.entryOf[i], "", nil
		}
	}
	if c.Kind != t.kind || c.Codec != t.codec || c.TimeScale != t.timescale {
		return 0, fmt.Sprintf("changes from %s %s/%d to %s %s/%d, which one MP4 track cannot carry",
			t.kind, t.codec, t.timescale, c.Kind, c.Codec, c.TimeScale), nil
	}
	parts, err := clipTrackParts(*c)
	if err != nil {
		return 0, "", err
	}
	entry = slices.IndexFunc(t.entries, func(e []byte) bool { return bytes.Equal(e, parts.entry) })
	if entry < 0 {
		if t.kind != KindVideo {
			return 0, fmt.Sprintf("changes its %s configuration, which MP4 cannot signal in band (and Chromium ignores later sample entries)", t.codec), nil
		}
		entry = len(t.entries)
		t.entries = append(t.entries, parts.entry)
		t.inband = append(t.inband, clipInbandParams(c))
	}
	t.configs = append(t.configs, *c)
	t.entryOf = append(t.entryOf, entry)
	t.lastConfig = len(t.configs) - 1
	return entry, "", nil
}

// clipInbandParams returns the parameter sets of an H.264 or H.265 track as
// length-prefixed NAL units, to go in band in front of the first sample
// after a change of sample entry.
func clipInbandParams(c *Track) []byte {
	var out []byte
	for _, ps := range [][]byte{c.VPS, c.SPS, c.PPS} {
		if len(ps) > 0 && (c.Codec == CodecH265 || c.Codec == CodecH264) {
			out = binary.BigEndian.AppendUint32(out, uint32(len(ps)))
			out = append(out, ps...)
		}
	}
	return out
}

// clipParts are the boxes of one track taken from MarshalInit.
type clipParts struct {
	entry, hdlr, xmhd, dinf []byte
}

func clipTrackParts(t Track) (clipParts, error) {
	var p clipParts
	init, err := MarshalInit([]Track{t})
	if err != nil {
		return p, err
	}
	trak, err := findBox(init, "moov", "trak")
	if err != nil {
		return p, err
	}
	mdia, err := findBox(trak, "mdia")
	if err != nil {
		return p, err
	}
	minf, err := findBox(mdia, "minf")
	if err != nil {
		return p, err
	}
	stsd, err := findBox(minf, "stbl", "stsd")
	if err != nil {
		return p, err
	}
	if len(stsd) < 8 {
		return p, errf("short stsd")
	}
	size, _, _, err := boxHeader(stsd[8:])
	if err != nil {
		return p, err
	}
	p.entry = stsd[8 : 8+size]
	if p.hdlr, err = clipWholeBox(mdia, "hdlr"); err != nil {
		return p, err
	}
	xm := "smhd"
	if t.Kind == KindVideo {
		xm = "vmhd"
	}
	if p.xmhd, err = clipWholeBox(minf, xm); err != nil {
		return p, err
	}
	if p.dinf, err = clipWholeBox(minf, "dinf"); err != nil {
		return p, err
	}
	return p, nil
}

// clipWholeBox returns the first box of type typ in b, header included.
func clipWholeBox(b []byte, typ string) ([]byte, error) {
	for len(b) > 0 {
		size, t, _, err := boxHeader(b)
		if err != nil {
			return nil, err
		}
		if t == typ {
			return b[:size], nil
		}
		b = b[size:]
	}
	return nil, errf("no %s box", typ)
}

// clipPlanner is the first pass.
type clipPlanner struct {
	from, to int64 // Unix ns

	tracks  []*clipTrack
	byID    map[uint32]int
	chunks  []clipChunk
	mdat    int64
	samples int

	started    bool
	startWall  int64 // Unix ns of the first keyframe
	prevLeader int   // clip track of the previous fragment's leader, -1 if none
	cursorNs   int64 // clip time (ns) where the previous fragment's leader ended
	truncated  error

	// the audio of the last fragment skipped before the start: a camera's
	// audio may land in the fragment before the keyframe it goes with
	prev clipPrev
}

// clipPrev keeps the timing of the audio of a skipped fragment.
type clipPrev struct {
	ok      bool
	fi      int
	number  uint64
	configs []Track
	samples [][]Sample // Time is the wall time (Unix ns), Payload is nil
	sizes   [][]uint32
}

func (c *clipPrev) keep(f *Fragment, fi, lead int, wall func(int, *Sample) int64) {
	c.ok, c.fi, c.number = true, fi, f.Number
	c.configs = append(c.configs[:0], f.TrackConfigs...)
	for len(c.samples) < len(f.Samples) {
		c.samples, c.sizes = append(c.samples, nil), append(c.sizes, nil)
	}
	c.samples, c.sizes = c.samples[:len(f.Samples)], c.sizes[:len(f.Samples)]
	for i, ss := range f.Samples {
		c.samples[i], c.sizes[i] = c.samples[i][:0], c.sizes[i][:0]
		if i == lead || i >= len(f.TrackConfigs) || f.TrackConfigs[i].Kind != KindAudio {
			continue
		}
		for j := range ss {
			s := ss[j]
			s.Time, s.Payload = wall(i, &ss[j]), nil
			c.samples[i] = append(c.samples[i], s)
			c.sizes[i] = append(c.sizes[i], uint32(len(ss[j].Payload)))
		}
	}
}

// clipLeader is the index of the leading track of f: the first video
// track with samples, else the first track with samples; -1 when f has no
// samples. With all, it is the track ProducerStart describes; without, data
// tracks (which a clip leaves out) are passed over.
func clipLeader(f *Fragment, all bool) int {
	for i, t := range f.TrackConfigs {
		if t.Kind == KindVideo && i < len(f.Samples) && len(f.Samples[i]) > 0 {
			return i
		}
	}
	for i := range f.Samples {
		if len(f.Samples[i]) > 0 && i < len(f.TrackConfigs) && (all || !clipIsData(&f.TrackConfigs[i])) {
			return i
		}
	}
	return -1
}

func clipIsData(t *Track) bool { return t.Kind == KindData || t.Codec.Kind() == KindData }

// track returns the clip track of configuration tc and its sample entry,
// adding either when new; why says what keeps tc from sharing the track of
// its ID, and ci is -1 for a data track.
func (p *clipPlanner) track(tc *Track, number uint64) (ci, entry int, why string, err error) {
	if clipIsData(tc) {
		return -1, 0, "", nil
	}
	if tc.TimeScale == 0 {
		return 0, 0, "", fmt.Errorf("clip: fragment %d: track %d has timescale 0", number, tc.ID)
	}
	ci, found := p.byID[tc.ID]
	if !found {
		parts, err := clipTrackParts(*tc)
		if err != nil {
			return 0, 0, "", fmt.Errorf("clip: fragment %d track %d: %w", number, tc.ID, err)
		}
		ci = len(p.tracks)
		p.tracks = append(p.tracks, &clipTrack{id: tc.ID, kind: tc.Kind, codec: tc.Codec, timescale: tc.TimeScale,
			configs: []Track{*tc}, entryOf: []int{0}, entries: [][]byte{parts.entry}, inband: [][]byte{clipInbandParams(tc)},
			hdlr: parts.hdlr, xmhd: parts.xmhd, dinf: parts.dinf})
		p.byID[tc.ID] = ci
	}
	entry, why, err = p.tracks[ci].entryFor(tc)
	if err != nil {
		return 0, 0, "", fmt.Errorf("clip: fragment %d track %d: %w", number, tc.ID, err)
	}
	return ci, entry, why, nil
}

// chunk records samples [b, e) of track ftrack of the fi-th fragment as
// one chunk of clip track ci; dts gives each sample's clip DTS, size its
// payload size and inRange whether it starts before the end. A chunk whose
// sample entry differs from the previous chunk's gets the entry's parameter
// sets in band too, for players that keep the first sample entry.
func (p *clipPlanner) chunk(ci, entry, fi, ftrack int, number uint64, ss []Sample, b, e int,
	dts func(j int) int64, size func(j int) int, inRange func(j int) bool) {
	ct := p.tracks[ci]
	k := uint32(len(ct.offsets))
	spc, en := uint32(e-b), uint32(entry+1)
	if r := len(ct.stsc); r == 0 || ct.stsc[r-1].samplesPerChunk != spc || ct.stsc[r-1].entry != en {
		ct.stsc = append(ct.stsc, clipStscRun{k + 1, spc, en})
	}
	ct.offsets = append(ct.offsets, uint64(p.mdat))
	inband := entry != ct.lastChunk && len(ct.inband[entry]) > 0
	ct.lastChunk = entry
	for j := b; j < e; j++ {
		n := size(j)
		if j == b && inband {
			n += len(ct.inband[entry])
		}
		ct.addSample(&ss[j], n, dts(j), inRange(j))
		p.mdat += int64(n)
	}
	p.samples += e - b
	p.chunks = append(p.chunks, clipChunk{number: number, frag: int32(fi), ftrack: int32(ftrack), track: int32(ci),
		begin: int32(b), end: int32(e), entry: int32(entry), inband: inband})
}

// add plans fragment f (the fi-th of the source); done means the clip
// ends here.
func (p *clipPlanner) add(f *Fragment, fi int) (done bool, err error) {
	anchor, lead := clipLeader(f, true), clipLeader(f, false)
	if lead < 0 {
		return false, nil
	}
	if p.byID == nil {
		p.byID = map[uint32]int{}
		p.prevLeader = -1
	}
	for _, i := range [2]int{anchor, lead} {
		if f.TrackConfigs[i].TimeScale == 0 {
			return false, fmt.Errorf("clip: fragment %d: track %d has timescale 0", f.Number, f.TrackConfigs[i].ID)
		}
	}
	// the wall time of a sample: ProducerStart is the anchor's first PTS
	anchorPTS := ticksToNs(f.Samples[anchor][0].PTS(), f.TrackConfigs[anchor].TimeScale)
	ps := f.ProducerStart.UnixNano()
	wall := func(i int, s *Sample) int64 {
		return ps + ticksToNs(s.PTS(), f.TrackConfigs[i].TimeScale) - anchorPTS
	}
	lts := f.TrackConfigs[lead].TimeScale
	ls := f.Samples[lead]
	startFrag := !p.started

	// the leader's samples [lb, le)
	lb := 0
	if startFrag {
		if wall(lead, &ls[0]) >= p.to {
			return true, nil // the leading track starts at or after the end
		}
		end := int64(math.MinInt64)
		for j := range ls {
			end = max(end, wall(lead, &ls[j])+ticksToNs(int64(ls[j].Duration), lts))
		}
		if end <= p.from {
			p.prev.keep(f, fi, lead, wall)
			return false, nil // ends before the start
		}
		lb = -1
		for j := range ls {
			if !ls[j].Keyframe {
				continue
			}
			w := wall(lead, &ls[j])
			if w <= p.from {
				lb = j
				continue
			}
			if lb < 0 && w < p.to {
				lb = j // no keyframe at or before from: the first one after
			}
			break
		}
		if lb < 0 {
			p.prev.keep(f, fi, lead, wall)
			return false, nil // no keyframe to start from before the end: try the next fragment
		}
	}
	le := lb
	for j := lb; j < len(ls); j++ {
		if wall(lead, &ls[j]) < p.to {
			le = j + 1
		}
	}

	// the fragment's tracks must fit the clip's before anything is added
	cts := make([]int, len(f.Samples))
	ents := make([]int, len(f.Samples))
	for i := range f.Samples {
		cts[i] = -1
		if len(f.Samples[i]) == 0 || i >= len(f.TrackConfigs) {
			continue
		}
		tc := &f.TrackConfigs[i]
		ci, e, why, err := p.track(tc, f.Number)
		if err != nil {
			return false, err
		}
		if why != "" {
			if le > lb {
				p.truncated = fmt.Errorf("%w at %s (fragment %d): track %d %s",
					ErrClipTruncated, time.Unix(0, ps).UTC().Format(time.RFC3339Nano), f.Number, tc.ID, why)
			}
			return true, nil
		}
		cts[i], ents[i] = ci, e
	}

	// the leader's clip timeline: back to back with the previous fragment
	var leadOff int64 // clip DTS − session DTS, in leader ticks
	lct := cts[lead]
	switch {
	case startFrag:
		leadOff = -ls[lb].PTS()
		p.started = true
		p.startWall = wall(lead, &ls[lb])
	case lct == p.prevLeader && p.tracks[lct].hasLast:
		leadOff = p.tracks[lct].next() - ls[0].DTS
	default:
		n := clipNsToTicks(p.cursorNs, lts)
		if p.tracks[lct].hasLast {
			n = max(n, p.tracks[lct].next())
		}
		leadOff = n - ls[0].DTS
	}
	offNs := clipTicksToNs(leadOff, lts)

	if startFrag && lb == 0 && p.prev.ok && p.prev.fi == fi-1 {
		if err := p.addPrevAudio(); err != nil {
			return false, err
		}
	}
	p.prev.ok = false

	for i, ss := range f.Samples {
		ci := cts[i]
		if ci < 0 {
			continue
		}
		ct := p.tracks[ci]
		ts := f.TrackConfigs[i].TimeScale
		var b, e int
		var off int64
		if i == lead {
			b, e, off = lb, le, leadOff
		} else {
			b = len(ss)
			for j := range ss {
				if (ct.hasLast || ss[j].Keyframe) && (!startFrag || wall(i, &ss[j]) >= p.startWall) {
					b = j
					break
				}
			}
			e = b
			for j := b; j < len(ss); j++ {
				if wall(i, &ss[j]) < p.to {
					e = j + 1
				}
			}
			if b >= e {
				continue
			}
			off = clipNsToTicks(offNs, ts)
			if ct.hasLast {
				// keep the track continuous with its previous fragment
				nat := ct.next()
				tol := max(int64(ct.lastDur)/2, 1)
				if ct.kind == KindAudio {
					for b < e && ss[b].DTS+off < nat-tol {
						b++ // overlaps what is already in the clip
					}
					if b >= e {
						continue
					}
				}
				if d := ss[b].DTS + off - nat; d <= tol {
					off -= d
				}
			}
		}
		if b >= e {
			continue
		}
		p.chunk(ci, ents[i], fi, i, f.Number, ss, b, e,
			func(j int) int64 { return ss[j].DTS + off },
			func(j int) int { return len(ss[j].Payload) },
			func(j int) bool { return wall(i, &ss[j]) < p.to })
	}
	if t := p.tracks[lct]; t.hasLast {
		p.cursorNs = clipTicksToNs(t.next(), t.timescale)
	}
	p.prevLeader = lct
	return le < len(ls), nil
}

// addPrevAudio adds the audio of the fragment before the first one that
// starts at or after the clip's start, placed by its wall time.
func (p *clipPlanner) addPrevAudio() error {
	c := &p.prev
	for i, ss := range c.samples {
		b := len(ss)
		for j := range ss {
			if ss[j].Time >= p.startWall {
				b = j
				break
			}
		}
		e := b
		for j := b; j < len(ss); j++ {
			if ss[j].Time < p.to {
				e = j + 1
			}
		}
		if b >= e {
			continue
		}
		ci, entry, why, err := p.track(&c.configs[i], c.number)
		if err != nil {
			return err
		}
		if why != "" || ci < 0 {
			continue
		}
		ts, sizes := c.configs[i].TimeScale, c.sizes[i]
		p.chunk(ci, entry, c.fi, i, c.number, ss, b, e,
			func(j int) int64 { return clipNsToTicks(ss[j].Time-p.startWall, ts) - int64(ss[j].PTSOffset) },
			func(j int) int { return int(sizes[j]) },
			func(j int) bool { return true })
	}
	return nil
}

// Movie timescale of mvhd, tkhd and elst.
const clipMovieTimeScale = 1000

// finish builds the header: ftyp, moov and the mdat box header.
func (p *clipPlanner) finish(src ClipSource) (*Clip, error) {
	c := &Clip{src: src, chunks: p.chunks, mdatSize: p.mdat, truncated: p.truncated, start: time.Unix(0, p.startWall).UTC()}
	var tracks []*clipTrack
	for _, t := range p.tracks {
		if len(t.sizes) > 0 {
			t.pushStts(t.lastDur)
			tracks = append(tracks, t)
		}
	}
	c.tracks = p.tracks

	var b clipBoxWriter
	// ftyp
	b.open("ftyp")
	b.b = append(b.b, "isom"...)
	b.b = binary.BigEndian.AppendUint32(b.b, 0x200)
	b.b = append(b.b, "isomiso2iso6mp41"...)
	for _, t := range tracks {
		if t.codec == CodecH264 {
			b.b = append(b.b, "avc1"...)
			break
		}
	}
	b.close()

	// edits and durations, in ns and in the movie timescale
	type edit struct {
		empty, mediaTime, dur int64 // empty and dur in the movie timescale, mediaTime in media ticks
	}
	edits := make([]edit, len(tracks))
	var movieDur int64
	var maxNs int64
	nextID := uint32(1)
	for k, t := range tracks {
		p0 := max(t.firstPTS, 0)
		end := t.endPTS
		if !t.hasEnd || end < p0 {
			end = p0
		}
		e := edit{mediaTime: max(p0-t.base, 0)}
		emptyNs := clipTicksToNs(p0, t.timescale)
		endNs := clipTicksToNs(end, t.timescale)
		e.empty = roundDiv(emptyNs, int64(time.Second/clipMovieTimeScale))
		e.dur = roundDiv(endNs, int64(time.Second/clipMovieTimeScale)) - e.empty
		edits[k] = e
		movieDur = max(movieDur, e.empty+e.dur)
		maxNs = max(maxNs, endNs)
		nextID = max(nextID, t.id+1)
	}
	c.duration = time.Duration(maxNs)
	created := uint64(max(p.startWall/int64(time.Second)+clipMP4Epoch, 0))

	b.open("moov")
	// mvhd
	if movieDur > math.MaxUint32 || created > math.MaxUint32 {
		b.openFull("mvhd", 1, 0)
		b.u64(created)
		b.u64(created)
		b.u32(clipMovieTimeScale)
		b.u64(uint64(movieDur))
	} else {
		b.openFull("mvhd", 0, 0)
		b.u32(uint32(created))
		b.u32(uint32(created))
		b.u32(clipMovieTimeScale)
		b.u32(uint32(movieDur))
	}
	b.u32(0x00010000) // rate 1.0
	b.u16(0x0100)     // volume 1.0
	b.zeros(10)
	b.matrix()
	b.zeros(24)
	b.u32(nextID)
	b.close()

	for k, t := range tracks {
		e := edits[k]
		tdur := e.empty + e.dur
		b.open("trak")
		// tkhd: enabled, in movie
		if tdur > math.MaxUint32 || created > math.MaxUint32 {
			b.openFull("tkhd", 1, 3)
			b.u64(created)
			b.u64(created)
			b.u32(t.id)
			b.u32(0)
			b.u64(uint64(tdur))
		} else {
			b.openFull("tkhd", 0, 3)
			b.u32(uint32(created))
			b.u32(uint32(created))
			b.u32(t.id)
			b.u32(0)
			b.u32(uint32(tdur))
		}
		b.zeros(8)
		b.u16(0) // layer
		b.u16(0) // alternate group
		if t.kind == KindAudio {
			b.u16(0x0100)
		} else {
			b.u16(0)
		}
		b.u16(0)
		b.matrix()
		w, h := t.configs[0].Width, t.configs[0].Height
		if t.kind == KindVideo && (w == 0 || h == 0) {
			c := t.configs[0]
			if c.FillFromParams() == nil {
				w, h = c.Width, c.Height
			}
		}
		b.u32(uint32(max(w, 0)) << 16)
		b.u32(uint32(max(h, 0)) << 16)
		b.close()

		// edts
		b.open("edts")
		n := uint32(1)
		if e.empty > 0 {
			n = 2
		}
		if e.mediaTime > math.MaxInt32 || tdur > math.MaxUint32 {
			b.openFull("elst", 1, 0)
			b.u32(n)
			if e.empty > 0 {
				b.u64(uint64(e.empty))
				b.u64(math.MaxUint64) // -1: empty
				b.u32(0x00010000)
			}
			b.u64(uint64(e.dur))
			b.u64(uint64(e.mediaTime))
			b.u32(0x00010000)
		} else {
			b.openFull("elst", 0, 0)
			b.u32(n)
			if e.empty > 0 {
				b.u32(uint32(e.empty))
				b.u32(math.MaxUint32)
				b.u32(0x00010000)
			}
			b.u32(uint32(e.dur))
			b.u32(uint32(e.mediaTime))
			b.u32(0x00010000)
		}
		b.close()
		b.close()

		b.open("mdia")
		mediaDur := uint64(t.next() - t.base)
		if mediaDur > math.MaxUint32 || created > math.MaxUint32 {
			b.openFull("mdhd", 1, 0)
			b.u64(created)
			b.u64(created)
			b.u32(t.timescale)
			b.u64(mediaDur)
		} else {
			b.openFull("mdhd", 0, 0)
			b.u32(uint32(created))
			b.u32(uint32(created))
			b.u32(t.timescale)
			b.u32(uint32(mediaDur))
		}
		b.u16(0x55c4) // und
		b.u16(0)
		b.close()
		b.b = append(b.b, t.hdlr...)
		b.open("minf")
		b.b = append(b.b, t.xmhd...)
		b.b = append(b.b, t.dinf...)
		b.open("stbl")

		b.openFull("stsd", 0, 0)
		b.u32(uint32(len(t.entries)))
		for _, en := range t.entries {
			b.b = append(b.b, en...)
		}
		b.close()

		b.openFull("stts", 0, 0)
		b.u32(uint32(len(t.stts)))
		for _, r := range t.stts {
			b.u32(r.count)
			b.u32(r.delta)
		}
		b.close()

		if t.anyCtts {
			b.openFull("ctts", 1, 0)
			b.u32(uint32(len(t.ctts)))
			for _, r := range t.ctts {
				b.u32(r.count)
				b.u32(uint32(r.offset))
			}
			b.close()
		}

		if !t.allSync {
			b.openFull("stss", 0, 0)
			b.u32(uint32(len(t.stss)))
			for _, v := range t.stss {
				b.u32(v)
			}
			b.close()
		}

		b.openFull("stsc", 0, 0)
		b.u32(uint32(len(t.stsc)))
		for _, r := range t.stsc {
			b.u32(r.firstChunk)
			b.u32(r.samplesPerChunk)
			b.u32(r.entry)
		}
		b.close()

		b.openFull("stsz", 0, 0)
		b.u32(0)
		b.u32(uint32(len(t.sizes)))
		t.szAt = len(b.b)
		for _, v := range t.sizes {
			b.u32(v)
		}
		b.close()

		// co64, filled below once the header size is known
		b.openFull("co64", 0, 0)
		b.u32(uint32(len(t.offsets)))
		t.coAt = len(b.b)
		b.zeros(8 * len(t.offsets))
		b.close()

		b.close() // stbl
		b.close() // minf
		b.close() // mdia
		b.close() // trak
	}

	// udta: the real start time and what made the clip
	b.open("udta")
	b.qtText("\xa9day", c.start.Format("2006-01-02T15:04:05.000Z07:00"))
	b.qtText("\xa9too", "tributary")
	b.close()
	b.close() // moov

	mdatHdr := 8
	if p.mdat+8 > math.MaxUint32 {
		mdatHdr = 16
	}
	base := uint64(len(b.b) + mdatHdr)
	for _, t := range tracks {
		at := t.coAt
		for _, o := range t.offsets {
			binary.BigEndian.PutUint64(b.b[at:], base+o)
			at += 8
		}
		// the header holds the tables now; Stream checks sizes against its stsz
		t.sizes, t.stts, t.ctts, t.stss, t.stsc, t.offsets = nil, nil, nil, nil, nil, nil
	}
	if mdatHdr == 16 {
		b.u32(1)
		b.b = append(b.b, "mdat"...)
		b.u64(uint64(p.mdat + 16))
	} else {
		b.u32(uint32(p.mdat + 8))
		b.b = append(b.b, "mdat"...)
	}
	c.header = b.b
	return c, nil
}

// clipMP4Epoch is the number of seconds from 1904-01-01 to 1970-01-01.
const clipMP4Epoch = 2082844800

// Stream rewinds the source and writes the clip: the header, then the
// samples of every chunk, read from the source in the order the chunk
// offsets give. It returns the number of bytes written. The source must
// give the fragments of the first pass again; a fragment whose number or
// samples differ is an error (the output is then incomplete). The context
// is checked between fragments.
func (c *Clip) Stream(ctx context.Context, w io.Writer) (int64, error) {
	if err := c.src.Rewind(ctx); err != nil {
		return 0, fmt.Errorf("clip: rewinding the source: %w", err)
	}
	cw := &clipCountWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if _, err := bw.Write(c.header); err != nil {
		return cw.n, err
	}
	counts := make([]int, len(c.tracks)) // samples written per track
	ci := 0
	for fi := int32(0); ci < len(c.chunks); fi++ {
		if err := ctx.Err(); err != nil {
			bw.Flush()
			return cw.n, err
		}
		f, err := c.src.Next(ctx)
		if err == io.EOF {
			bw.Flush()
			return cw.n, fmt.Errorf("clip: the source ended at fragment %d in the second pass, before fragment %d", fi, c.chunks[ci].number)
		}
		if err != nil {
			bw.Flush()
			return cw.n, fmt.Errorf("clip: reading fragment %d: %w", fi, err)
		}
		for ; ci < len(c.chunks) && c.chunks[ci].frag == fi; ci++ {
			ch := &c.chunks[ci]
			if f.Number != ch.number || int(ch.ftrack) >= len(f.Samples) || int(ch.end) > len(f.Samples[ch.ftrack]) {
				bw.Flush()
				return cw.n, fmt.Errorf("clip: the source changed between passes: fragment %d is number %d, was %d", fi, f.Number, ch.number)
			}
			t := c.tracks[ch.track]
			for j, s := range f.Samples[ch.ftrack][ch.begin:ch.end] {
				var params []byte
				if j == 0 && ch.inband {
					params = t.inband[ch.entry]
				}
				if want := binary.BigEndian.Uint32(c.header[t.szAt+4*counts[ch.track]:]); int64(len(s.Payload))+int64(len(params)) != int64(want) {
					bw.Flush()
					return cw.n, fmt.Errorf("clip: the source changed between passes: fragment %d track %d sample of %d bytes, was %d",
						f.Number, t.id, len(s.Payload), int64(want)-int64(len(params)))
				}
				counts[ch.track]++
				if err := writeClipSample(bw, s.Payload, params, t.codec); err != nil {
					return cw.n, err
				}
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// writeClipSample writes a sample's payload with params (parameter sets,
// length-prefixed) in front, after the access unit delimiter if the payload
// starts with one.
func writeClipSample(w *bufio.Writer, payload, params []byte, codec Codec) error {
	if len(params) > 0 {
		if len(payload) > 4 {
			n := int64(binary.BigEndian.Uint32(payload))
			aud := false
			switch codec {
			case CodecH264:
				aud = payload[4]&0x1f == 9
			case CodecH265:
				aud = payload[4]>>1&0x3f == 35
			}
			if aud && n <= int64(len(payload)-4) {
				if _, err := w.Write(payload[:4+n]); err != nil {
					return err
				}
				payload = payload[4+n:]
			}
		}
		if _, err := w.Write(params); err != nil {
			return err
		}
	}
	_, err := w.Write(payload)
	return err
}

type clipCountWriter struct {
	w io.Writer
	n int64
}

func (c *clipCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// clipBoxWriter builds boxes whose sizes are patched when they close.
type clipBoxWriter struct {
	b     []byte
	stack []int
}

func (x *clipBoxWriter) open(typ string) {
	x.stack = append(x.stack, len(x.b))
	x.b = appendBoxHeader(x.b, 0, typ)
}

func (x *clipBoxWriter) openFull(typ string, version byte, flags uint32) {
	x.open(typ)
	x.u32(uint32(version)<<24 | flags&0xffffff)
}

func (x *clipBoxWriter) close() {
	at := x.stack[len(x.stack)-1]
	x.stack = x.stack[:len(x.stack)-1]
	binary.BigEndian.PutUint32(x.b[at:], uint32(len(x.b)-at))
}

func (x *clipBoxWriter) u16(v uint16) { x.b = binary.BigEndian.AppendUint16(x.b, v) }
func (x *clipBoxWriter) u32(v uint32) { x.b = binary.BigEndian.AppendUint32(x.b, v) }
func (x *clipBoxWriter) u64(v uint64) { x.b = binary.BigEndian.AppendUint64(x.b, v) }

func (x *clipBoxWriter) zeros(n int) {
	for range n {
		x.b = append(x.b, 0)
	}
}

// matrix writes the identity transformation matrix.
func (x *clipBoxWriter) matrix() {
	for _, v := range [9]uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000} {
		x.u32(v)
	}
}

// qtText writes a QuickTime user-data text box ('©day', '©too').
func (x *clipBoxWriter) qtText(typ, text string) {
	x.open(typ)
	x.u16(uint16(len(text)))
	x.u16(0x55c4) // und
	x.b = append(x.b, text...)
	x.close()
}

func clipNsToTicks(ns int64, timescale uint32) int64 {
	ts := int64(timescale)
	sec := int64(time.Second)
	return (ns/sec)*ts + roundDiv((ns%sec)*ts, sec)
}

func clipTicksToNs(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	return (v/ts)*int64(time.Second) + roundDiv((v%ts)*int64(time.Second), ts)
}
