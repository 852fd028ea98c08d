package fragment

import (
	"time"
)

// Defaults of the Cutter.
const (
	DefaultTarget      = 2 * time.Second
	DefaultMaxDuration = 30 * time.Second
	DefaultMaxBytes    = 64 << 20
	// DefaultMaxDataBytes and DefaultDataWait are the Cutter's MaxDataBytes
	// and DataWait defaults.
	DefaultMaxDataBytes = 8 << 20
	DefaultDataWait     = time.Second
	// MinTarget and MaxTarget bound the configurable target duration.
	MinTarget = 500 * time.Millisecond
	MaxTarget = 10 * time.Second
	// DiscontinuityThreshold is the gap or overlap between two fragments
	// above which the second one is flagged discontinuous.
	DiscontinuityThreshold = 50 * time.Millisecond
)

// Cutter turns the samples of one ingest session into keyframe-aligned
// fragments. A fragment starts on a keyframe of the leading track (the first
// video track, else the first track) and is cut at the first leading
// keyframe at or after Target. A GOP that outgrows MaxDuration or MaxBytes is
// dropped up to the next keyframe and reported through OnDrop; it is never
// emitted as a broken fragment.
//
// Samples are copied into buffers owned by the Cutter, so callers may reuse
// their payload buffers. A Cutter is not safe for concurrent use: one
// goroutine owns it.
type Cutter struct {
	// Target duration of a fragment. Default DefaultTarget (2 s).
	Target time.Duration
	// MaxDuration is the hard cap on a fragment's duration. Default 30 s.
	MaxDuration time.Duration
	// MaxBytes is the hard cap on a fragment's payload size. Default 64 MiB.
	MaxBytes int64
	// Emit receives every closed fragment. The fragment, its samples and
	// their payloads are valid only until Emit returns.
	Emit func(*Fragment)
	// Closing, when set, receives each fragment as it closes, before Emit,
	// which comes later for a fragment held for late data (DataWait), then
	// with them: its audio and video samples are final (the live edge
	// takes them), its data samples may not be. Valid only during the call.
	Closing func(*Fragment)
	// MaxDataBytes caps the data samples (a camera's metadata) of one
	// fragment, which do not count towards MaxBytes: a sample past it is
	// dropped and reported (ErrDataTooLarge), the fragment is not. Default
	// DefaultMaxDataBytes (8 MiB).
	MaxDataBytes int64
	// DataWait is how long, on the leading track's clock, a closed
	// fragment of a session with a data track waits for data samples of
	// its time that come after the keyframe that closed it (a camera sends
	// its metadata later than the video of the same instant): it is
	// emitted once a data sample of a later time comes, or the leading
	// track is DataWait past its end. Later ones go into the next fragment
	// at its start. Default DefaultDataWait (1 s); negative: no waiting.
	DataWait time.Duration
	// OnDrop, when set, is told when samples are dropped: err is
	// ErrGOPTooLong or ErrGOPTooLarge (the GOP), or ErrDataTooLarge (one
	// data sample), samples and bytes what was dropped.
	OnDrop func(err error, samples int, bytes int64)
	// PartTarget, when positive with EmitPart set, has the Cutter hand out
	// the fragment in progress in parts of about this duration (LL-HLS
	// partial segments): consecutive runs of exactly the samples the
	// fragment will hold, the last one marked Final when it closes.
	PartTarget time.Duration
	// EmitPart receives each part; like Emit's, it is valid only during the
	// call. A part marked Aborted (no samples) says the fragment in progress
	// was dropped (a GOP over the caps) and its parts are void.
	EmitPart func(*Part)

	tracks  []Track
	leader  int
	pending []Track // codec config to apply at the next leading keyframe
	hasPend bool
	cutNext bool // close the open fragment at the next leading keyframe

	started bool // a fragment is open
	origin  []int64
	haveOrg bool

	cur, next  *arena
	frag       Fragment
	hasData    bool    // a track is a data track
	held       *closed // a closed fragment waiting for late data (DataWait): &heldRec
	heldRec    closed
	heldTracks []Track
	spare      *arena // the arena of the last fragment held

	curStartNs  int64 // session time of the open fragment's first keyframe (ns)
	curStart    int64 // producer time (Unix ns) of the open fragment
	lastLeader  Sample
	haveLast    bool
	prevEnd     int64 // producer end of the previous emitted fragment
	havePrev    bool
	forceDisc   bool
	clockSource string
	hash        string

	partFrom    []int // per track: the first sample not yet in a part
	partStartNs int64
	partN       int
	part        Part
}

// Part is a run of samples of the fragment in progress.
type Part struct {
	Fragment
	// Index of the part in its fragment, from 0.
	Index int
	// Final is set on the last part of a fragment (emitted when it closes).
	Final bool
	// Independent is set when the part starts with a keyframe of the
	// leading track.
	Independent bool
	// Aborted says the fragment in progress was dropped.
	Aborted bool
}

// arena holds the samples of one fragment, their payloads copied into
// chunks from the process's chunk allocator.
type arena struct {
	chunks  []*chunk // in use; the last one is being filled
	samples [][]Sample
	bytes   int64 // of audio and video samples
	data    int64 // of data samples
}

// reset empties the arena for n tracks and returns its chunks to the pool.
func (a *arena) reset(n int) {
	for i, c := range a.chunks {
		chunks.put(c)
		a.chunks[i] = nil
	}
	a.chunks = a.chunks[:0]
	a.bytes, a.data = 0, 0
	if cap(a.samples) < n {
		a.samples = make([][]Sample, n)
	}
	a.samples = a.samples[:n]
	for i := range a.samples {
		a.samples[i] = a.samples[i][:0]
	}
}

// add copies a sample of track into the arena; data says the track is a
// data track (its bytes are counted apart).
func (a *arena) add(track int, s Sample, data bool) {
	n := len(s.Payload)
	var c *chunk
	if k := len(a.chunks); k > 0 && cap(a.chunks[k-1].b)-len(a.chunks[k-1].b) >= n {
		c = a.chunks[k-1]
	} else {
		c = chunks.get(n)
		if k := len(a.chunks); n > chunkSize && k > 0 {
			// keep filling the last small chunk after this large sample
			a.chunks = append(a.chunks, a.chunks[k-1])
			a.chunks[k-1] = c
		} else {
			a.chunks = append(a.chunks, c)
		}
	}
	start := len(c.b)
	c.b = append(c.b, s.Payload...)
	s.Payload = c.b[start:len(c.b):len(c.b)]
	a.samples[track] = append(a.samples[track], s)
	if data {
		a.data += int64(n)
	} else {
		a.bytes += int64(n)
	}
}

// Reset starts a new ingest session with the given tracks. The fragment in
// progress, if any, is closed first. The first fragment of the new session
// is flagged discontinuous when discontinuity is true (a reconnect); the
// very first fragment of a stream is flagged only if a gap from prevEnd
// (the end of the stream's last fragment, zero if none) exists.
func (c *Cutter) Reset(tracks []Track, discontinuity bool) {
	c.Flush()
	c.setTracks(tracks)
	c.leader = 0
	for i, t := range c.tracks {
		if t.Kind == KindVideo {
			c.leader = i
			break
		}
	}
	c.hasPend = false
	c.haveOrg = false
	c.haveLast = false
	if cap(c.origin) < len(tracks) {
		c.origin = make([]int64, len(tracks))
	}
	c.origin = c.origin[:len(tracks)]
	if c.cur == nil {
		c.cur, c.next = &arena{}, &arena{}
	}
	c.cur.reset(len(tracks))
	c.next.reset(len(tracks))
	if discontinuity {
		c.forceDisc = true
	}
}

// SetPrevious tells the Cutter where the stream's previous fragment ended
// (for example after a restart), so the first fragment is flagged
// discontinuous when it does not abut.
func (c *Cutter) SetPrevious(end time.Time) {
	c.prevEnd = end.UnixNano()
	c.havePrev = true
}

// SetClockSource records the clock source of the samples that follow
// (ClockReceive or ClockRTCP); it is copied into each fragment's metadata.
func (c *Cutter) SetClockSource(src string) { c.clockSource = src }

// MarkDiscontinuity flags the next fragment as discontinuous (for example
// after samples were lost upstream or the producer clock stepped).
func (c *Cutter) MarkDiscontinuity() { c.forceDisc = true }

// CutAtNextKeyframe closes the fragment in progress at the next keyframe of
// the leading track, whatever its duration: a producer that cuts its own
// fragments (a PutMedia cluster) is followed.
func (c *Cutter) CutAtNextKeyframe() {
	if c.started {
		c.cutNext = true
	}
}

// Tracks returns the tracks of the current session.
func (c *Cutter) Tracks() []Track { return c.tracks }

// SetTracks changes the codec configuration mid-session (a new SPS, say).
// The fragment in progress is closed at the next keyframe of the leading
// track, whatever its duration, and the fragments that follow carry the new
// configuration. Timestamps continue.
func (c *Cutter) SetTracks(tracks []Track) {
	if len(tracks) != len(c.tracks) {
		c.Reset(tracks, true)
		return
	}
	if !c.started {
		c.setTracks(tracks)
		return
	}
	c.pending = append(c.pending[:0], tracks...)
	c.hasPend = true
}

func (c *Cutter) setTracks(tracks []Track) {
	c.tracks = append(c.tracks[:0], tracks...)
	c.hash = ConfigHash(c.tracks)
	c.hasData = c.hasDataTrack()
}

func (c *Cutter) defaults() {
	if c.Target <= 0 {
		c.Target = DefaultTarget
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxDataBytes <= 0 {
		c.MaxDataBytes = DefaultMaxDataBytes
	}
	if c.DataWait == 0 {
		c.DataWait = DefaultDataWait
	}
}

func ticksToNs(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	return (v/ts)*int64(time.Second) + (v%ts)*int64(time.Second)/ts
}

// nsToTicksCeil is the first tick at or after v ns: a sample of DTS d is
// at or after v exactly when d >= nsToTicksCeil(v).
func nsToTicksCeil(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	sec := int64(time.Second)
	return (v/sec)*ts + ((v%sec)*ts+sec-1)/sec
}

func nsToTicks(v int64, timescale uint32) int64 {
	ts := int64(timescale)
	sec := int64(time.Second)
	return (v/sec)*ts + (v%sec)*ts/sec
}

// Write adds a sample of track i (an index into the session's tracks).
// Samples of one track must come in decode order; tracks may interleave
// loosely. Duration is filled by the Cutter from the next sample of the
// same track when it is zero.
func (c *Cutter) Write(i int, s Sample) {
	c.defaults()
	if i < 0 || i >= len(c.tracks) {
		return
	}
	if i == c.leader {
		c.writeLeader(s)
		return
	}
	if !c.haveOrg {
		return // nothing before the first keyframe of the leading track
	}
	s.DTS -= c.origin[i]
	if s.DTS < 0 {
		return // older than the fragment's start: belongs to no fragment
	}
	if c.hasData && c.tracks[i].Kind == KindData {
		c.writeData(i, s)
		return
	}
	if !c.started {
		return
	}
	c.cur.add(i, s, false)
	c.checkCaps(s.Time)
}

// writeData adds a data sample: to the fragment held for late data when
// it is of its time or older, else to the open fragment; at the start of
// the fragment it goes in when it is older (too late for the fragment of
// its time).
func (c *Cutter) writeData(i int, s Sample) {
	ts := c.tracks[i].TimeScale
	if h := c.held; h != nil {
		if s.DTS < nsToTicksCeil(h.endNs, ts) {
			// older still than the held one: at its start
			s.DTS = max(s.DTS, nsToTicksCeil(h.startNs, ts))
			c.addData(h.a, i, s)
			return
		}
		c.release() // one of a later time came: no more of its time to wait for
	}
	if !c.started {
		return
	}
	s.DTS = max(s.DTS, nsToTicksCeil(c.curStartNs, ts))
	c.addData(c.cur, i, s)
}

// addData adds a data sample to a, unless it would take a's data past
// MaxDataBytes.
func (c *Cutter) addData(a *arena, i int, s Sample) {
	if a.data+int64(len(s.Payload)) > c.MaxDataBytes {
		if c.OnDrop != nil {
			c.OnDrop(ErrDataTooLarge, 1, int64(len(s.Payload)))
		}
		return
	}
	a.add(i, s, true)
}

// Held reports whether a closed fragment waits for late data samples
// (DataWait): it is emitted before the fragment in progress.
func (c *Cutter) Held() bool { return c.held != nil }

func (c *Cutter) writeLeader(s Sample) {
	if h := c.held; h != nil && c.haveOrg &&
		time.Duration(ticksToNs(s.DTS-c.origin[c.leader], c.tracks[c.leader].TimeScale)-h.endNs) >= c.DataWait {
		c.release() // waited long enough for late data (also while a dropped GOP waits for a keyframe)
	}
	if !c.started && !s.Keyframe {
		return
	}
	if !c.haveOrg {
		// The session's time origin: the first keyframe of the leading track.
		startNs := ticksToNs(s.DTS, c.tracks[c.leader].TimeScale)
		for j := range c.tracks {
			c.origin[j] = nsToTicks(startNs, c.tracks[j].TimeScale)
		}
		c.haveOrg = true
	}
	s.DTS -= c.origin[c.leader]
	if c.haveLast && s.DTS <= c.lastLeader.DTS {
		return // not in decode order: dropped
	}
	if c.haveLast {
		c.fillLeaderDuration(s.DTS)
	}
	if s.Keyframe {
		nowNs := ticksToNs(s.DTS, c.tracks[c.leader].TimeScale)
		if !c.started {
			c.open(s, nowNs)
		} else if c.hasPend || c.cutNext || time.Duration(nowNs-c.curStartNs) >= c.Target {
			c.cutNext = false
			c.close(nowNs, s.Time)
			if c.hasPend {
				c.setTracks(c.pending)
				c.hasPend = false
			}
			c.open(s, nowNs)
		}
	}
	if !c.started {
		return
	}
	if c.PartTarget > 0 && c.EmitPart != nil {
		if nowNs := ticksToNs(s.DTS, c.tracks[c.leader].TimeScale); time.Duration(nowNs-c.partStartNs) >= c.PartTarget &&
			len(c.cur.samples[c.leader]) > c.partFrom[c.leader] {
			c.emitPart(nowNs, false)
			c.partStartNs = nowNs
		}
	}
	c.cur.add(c.leader, s, false)
	c.lastLeader = s
	c.haveLast = true
	c.checkCaps(s.Time)
}

func (c *Cutter) fillLeaderDuration(dts int64) {
	ls := c.cur.samples[c.leader]
	if n := len(ls); n > 0 && ls[n-1].Duration == 0 {
		ls[n-1].Duration = uint32(dts - ls[n-1].DTS)
	}
}

func (c *Cutter) open(k Sample, nowNs int64) {
	c.started = true
	c.cutNext = false
	if cap(c.partFrom) < len(c.tracks) {
		c.partFrom = make([]int, len(c.tracks))
	}
	c.partFrom = c.partFrom[:len(c.tracks)]
	clear(c.partFrom)
	c.partStartNs, c.partN = nowNs, 0
	c.curStartNs = nowNs
	c.curStart = k.Time
}

// checkCaps drops the open fragment when it outgrows the hard caps.
func (c *Cutter) checkCaps(_ int64) {
	var err error
	lastNs := c.curStartNs
	if c.haveLast {
		lastNs = ticksToNs(c.lastLeader.DTS, c.tracks[c.leader].TimeScale)
	}
	switch {
	case time.Duration(lastNs-c.curStartNs) > c.MaxDuration:
		err = ErrGOPTooLong
	case c.cur.bytes > c.MaxBytes:
		err = ErrGOPTooLarge
	default:
		return
	}
	n := 0
	for _, ss := range c.cur.samples {
		n += len(ss)
	}
	if c.OnDrop != nil {
		c.OnDrop(err, n, c.cur.bytes)
	}
	if c.PartTarget > 0 && c.EmitPart != nil && c.partN > 0 {
		c.part = Part{Aborted: true}
		c.EmitPart(&c.part)
	}
	c.cur.reset(len(c.tracks))
	c.started = false
	c.haveLast = false
	c.forceDisc = true
}

// close emits the open fragment, which ends at session time endNs (the next
// keyframe), whose producer time is endTime.
func (c *Cutter) close(endNs, endTime int64) {
	c.release() // a fragment still held goes first
	cur := c.cur
	c.next.reset(len(c.tracks))
	// Samples of the other tracks at or past the cut belong to the next
	// fragment, and so does the last sample of each (its duration is not
	// known yet).
	for j := range c.tracks {
		if j == c.leader {
			continue
		}
		ss := cur.samples[j]
		cut := nsToTicksCeil(endNs, c.tracks[j].TimeScale)
		k := len(ss)
		for k > 0 && ss[k-1].DTS >= cut {
			k--
		}
		if k == len(ss) && k > 0 && ss[k-1].Duration == 0 && c.tracks[j].Kind != KindData {
			// its duration is not known yet: it goes with the next fragment
			// (a data sample, an instant, stays in the fragment of its time)
			k--
		}
		for _, s := range ss[k:] {
			c.next.add(j, s, c.tracks[j].Kind == KindData)
		}
		cur.samples[j] = ss[:k]
		for m := 0; m < k; m++ {
			if ss[m].Duration != 0 {
				continue
			}
			if m+1 < len(ss) {
				ss[m].Duration = uint32(ss[m+1].DTS - ss[m].DTS)
			}
		}
	}
	c.emitPart(-1, true)
	if c.closeFragment(cur, endNs, endTime, true) {
		// held: the next fragment fills the next arena, and a spare one
		// takes the next's place
		spare := c.spare
		if spare == nil {
			spare = &arena{}
		}
		c.spare = nil
		spare.reset(len(c.tracks))
		c.cur, c.next = c.next, spare
	} else {
		cur.reset(len(c.tracks)) // its chunks serve other streams until the next close
		c.cur, c.next = c.next, cur
	}
	c.started = false
}

// Flush closes the fragment in progress, ending it after its last sample.
// It is called at the end of an ingest session and at shutdown.
func (c *Cutter) Flush() {
	c.release()
	if !c.started || c.cur == nil {
		return
	}
	ls := c.cur.samples[c.leader]
	if len(ls) == 0 {
		c.started = false
		return
	}
	last := &ls[len(ls)-1]
	if last.Duration == 0 {
		last.Duration = uint32(nominalDuration(ls))
	}
	ts := c.tracks[c.leader].TimeScale
	endNs := ticksToNs(last.DTS+int64(last.Duration), ts)
	for j := range c.tracks {
		ss := c.cur.samples[j]
		for m := range ss {
			if ss[m].Duration != 0 {
				continue
			}
			if m+1 < len(ss) {
				ss[m].Duration = uint32(ss[m+1].DTS - ss[m].DTS)
			} else {
				ss[m].Duration = uint32(nominalDuration(ss))
			}
		}
		// Drop samples of other tracks past the end of the leading track;
		// data samples (instants, sparse) are kept, at its end.
		if j != c.leader && c.tracks[j].Kind == KindData {
			ts := c.tracks[j].TimeScale
			last := max(nsToTicksCeil(endNs, ts)-1, nsToTicksCeil(c.curStartNs, ts))
			for m := range ss {
				ss[m].DTS = min(ss[m].DTS, last)
			}
		} else if j != c.leader {
			cut := nsToTicks(endNs, c.tracks[j].TimeScale)
			k := len(ss)
			for k > 0 && ss[k-1].DTS >= cut {
				k--
			}
			c.cur.samples[j] = ss[:k]
		}
	}
	endTime := c.curStart + (endNs - c.curStartNs)
	c.emitPart(-1, true)
	c.closeFragment(c.cur, endNs, endTime, false) // no wait: nothing follows
	c.cur.reset(len(c.tracks))
	c.started = false
	c.haveLast = false
}

// nominalDuration is the duration of the previous sample, or 1 tick.
func nominalDuration(ss []Sample) int64 {
	if n := len(ss); n >= 2 {
		if d := ss[n-1].DTS - ss[n-2].DTS; d > 0 {
			return d
		}
		if ss[n-2].Duration > 0 {
			return int64(ss[n-2].Duration)
		}
	}
	return 1
}

// closed is a closed fragment: its samples and what its metadata is made
// of.
type closed struct {
	a              *arena
	start, startNs int64 // producer time (Unix ns) and session time (ns) of its start
	endNs, endTime int64
	disc           bool
	clock, hash    string
	tracks         []Track
	leader         int
}

// closeFragment closes the fragment of arena a, which ends at session time
// endNs, producer time endTime: Closing is told, and Emit now, or, when
// mayHold and the session has a data track, once late data came
// (DataWait), in which case it returns true and the arena is held.
func (c *Cutter) closeFragment(a *arena, endNs, endTime int64, mayHold bool) (held bool) {
	gap := c.curStart - c.prevEnd
	if gap < 0 {
		gap = -gap
	}
	r := closed{a: a, start: c.curStart, startNs: c.curStartNs, endNs: endNs, endTime: endTime,
		disc:  c.forceDisc || (c.havePrev && time.Duration(gap) > DiscontinuityThreshold),
		clock: c.clockSource, hash: c.hash, tracks: c.tracks, leader: c.leader}
	c.forceDisc = false
	c.prevEnd = endTime
	c.havePrev = true
	hold := mayHold && c.hasData && c.DataWait > 0
	if hold {
		// the tracks may change at this cut (SetTracks)
		c.heldTracks = append(c.heldTracks[:0], c.tracks...)
		r.tracks = c.heldTracks
	}
	c.fill(&r)
	if c.Closing != nil {
		c.Closing(&c.frag)
	}
	if !hold {
		if c.Emit != nil {
			c.Emit(&c.frag)
		}
		return false
	}
	c.heldRec = r
	c.held = &c.heldRec
	return true
}

// release emits the fragment held for late data, if any, and keeps its
// arena as the spare one.
func (c *Cutter) release() {
	h := c.held
	if h == nil {
		return
	}
	c.held = nil
	c.fill(h)
	if c.Emit != nil {
		c.Emit(&c.frag)
	}
	h.a.reset(len(h.tracks))
	c.spare = h.a
}

// fill makes c.frag the fragment of r.
func (c *Cutter) fill(r *closed) {
	f := &c.frag
	refs := f.Tracks[:0] // reused: Emit copies what it keeps
	f.Metadata = Metadata{
		ProducerStart: time.Unix(0, r.start),
		ProducerEnd:   time.Unix(0, r.endTime),
		Duration:      time.Duration(r.endNs - r.startNs),
		ClockSource:   r.clock,
		Discontinuity: r.disc,
		InitHash:      r.hash,
	}
	f.TrackConfigs = r.tracks
	f.Samples = r.a.samples
	f.Tracks = refs
	for j, t := range r.tracks {
		if len(r.a.samples[j]) > 0 {
			f.Tracks = append(f.Tracks, TrackRef{ID: t.ID, Kind: t.Kind, Codec: t.Codec})
		}
		f.SampleCount += len(r.a.samples[j])
	}
	for _, s := range r.a.samples[r.leader] {
		if s.Keyframe {
			f.Keyframes++
		}
	}
}

// hasDataTrack reports whether a track of the session is a data track.
func (c *Cutter) hasDataTrack() bool {
	for i := range c.tracks {
		if c.tracks[i].Kind == KindData {
			return true
		}
	}
	return false
}

// emitPart hands out the samples of the fragment in progress not yet in a
// part: all of them when final, else those before boundaryNs (the leading
// track's next sample).
func (c *Cutter) emitPart(boundaryNs int64, final bool) {
	if c.PartTarget <= 0 || c.EmitPart == nil {
		return
	}
	p := &c.part
	p.Fragment.TrackConfigs = c.tracks
	if cap(p.Fragment.Samples) < len(c.tracks) {
		p.Fragment.Samples = make([][]Sample, len(c.tracks))
	}
	p.Fragment.Samples = p.Fragment.Samples[:len(c.tracks)]
	empty := true
	for j := range c.tracks {
		ss := c.cur.samples[j]
		from := min(c.partFrom[j], len(ss))
		to := len(ss)
		if !final && j != c.leader {
			cut := nsToTicks(boundaryNs, c.tracks[j].TimeScale)
			for to > from && (ss[to-1].DTS >= cut || ss[to-1].Duration == 0) {
				to--
			}
		}
		p.Fragment.Samples[j] = ss[from:to]
		c.partFrom[j] = to
		if to > from {
			empty = false
		}
	}
	if empty && !final {
		return
	}
	ls := p.Fragment.Samples[c.leader]
	p.Index, p.Final, p.Aborted = c.partN, final, false
	p.Independent = len(ls) > 0 && ls[0].Keyframe
	var startNs, endNs int64
	if len(ls) > 0 {
		ts := c.tracks[c.leader].TimeScale
		startNs = ticksToNs(ls[0].DTS, ts)
		last := ls[len(ls)-1]
		endNs = ticksToNs(last.DTS+int64(last.Duration), ts)
	}
	p.Fragment.Metadata = Metadata{
		ProducerStart: time.Unix(0, c.curStart+(startNs-c.curStartNs)),
		Duration:      time.Duration(endNs - startNs),
		InitHash:      c.hash,
	}
	c.partN++
	c.EmitPart(p)
}
