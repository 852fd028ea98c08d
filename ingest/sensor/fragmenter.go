package sensor

import (
	"hash/maphash"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Defaults of a Fragmenter.
const (
	DefaultPeriod    = 2 * time.Second
	DefaultWindow    = 2 * time.Second
	DefaultMaxFuture = time.Minute
	skewWindow       = 10 * time.Second
)

// Track is the data track of sensor fragments: JSON readings, one per
// block, timestamps in milliseconds.
var Track = fragment.Track{ID: 1, Kind: fragment.KindData, Codec: fragment.CodecJSON, TimeScale: 1000}

// TagLate marks a fragment of late readings ("true").
const TagLate = "late"

// Stats are a Fragmenter's counters.
type Stats struct {
	// Readings taken; Late those that came after their fragment closed
	// (or too far in the future) and went to a late fragment; Duplicates
	// dropped as exact repeats (same time and value) of a reading in the
	// same fragment, as MQTT QoS 1 redelivers.
	Readings, Late, Duplicates atomic.Uint64
	// Fragments emitted.
	Fragments atomic.Uint64
	// SkewNS estimates the agent's clock minus the device's: the least
	// receive-minus-producer time over the last 10 s (transit time
	// included, so it is an upper bound).
	SkewNS atomic.Int64
	// SkewKnown is set once SkewNS has a value.
	SkewKnown atomic.Bool
	// ThroughNS is the producer time (Unix ns) before which every reading
	// taken is in an emitted fragment (late ones once the next Tick ran).
	ThroughNS atomic.Int64
}

// Fragmenter cuts readings into fragments of one JSON data track on a
// wall-clock grid of Period (fragment n covers [n·Period, (n+1)·Period)
// of producer time), each closed Window after its end by the agent's
// clock, its readings in time order. A reading whose fragment is already
// closed, or timestamped more than MaxFuture ahead, goes into a fragment
// of late readings (tagged late=true, its own time range) emitted at the
// next Tick. One goroutine uses it.
type Fragmenter struct {
	// Period of the grid. Default 2 s.
	Period time.Duration
	// Window is how long after a fragment's end its readings may still
	// come in order. Default 2 s.
	Window time.Duration
	// MaxFuture bounds how far ahead of the agent's clock a reading may
	// be timestamped and still wait for its fragment. Default 1 min.
	MaxFuture time.Duration
	// Aligned cuts fragments at the boundaries given by Cut (the ends of a
	// camera's fragments) instead of the grid, falling back to the grid
	// while none come for Fallback. Set before the first Add.
	Aligned bool
	// Fallback is how long Aligned waits for a boundary before cutting on
	// the grid (the camera is down). Default 30 s.
	Fallback time.Duration
	// Emit receives each fragment; it is valid only during the call.
	Emit func(*fragment.Fragment)
	// Sources holds the readings of the fragment during Emit (for their
	// Seq).
	Sources []Reading
	// Dropped, when set, is told of each reading dropped as a repeat.
	Dropped func(Reading)
	// Stats are counted as readings come.
	Stats Stats

	buckets map[int64]*bucket
	started bool
	late    []Reading
	lateAt  time.Time // when late readings were last emitted
	seed    maphash.Seed
	frag    fragment.Fragment
	payload []byte
	skewMin int64
	skewAt  time.Time

	closedNs int64 // readings before are closed (on the grid, a cell's start)

	// aligned mode
	pending bucket
	bounds  []int64   // boundaries not yet cut at, ascending
	boundAt time.Time // when the latest boundary came
}

type bucket struct {
	readings []Reading
	seen     map[uint64]struct{}
	bytes    int
}

// MaxFragmentBytes bounds the readings of one fragment: a cell that
// reaches it is emitted early and the rest of the cell goes in another
// fragment (readers take fragments up to 64 MiB).
const MaxFragmentBytes = 16 << 20

func (f *Fragmenter) defaults() {
	if f.Period <= 0 {
		f.Period = DefaultPeriod
	}
	if f.Window <= 0 {
		f.Window = DefaultWindow
	}
	if f.MaxFuture <= 0 {
		f.MaxFuture = DefaultMaxFuture
	}
	if f.Fallback <= 0 {
		f.Fallback = 30 * time.Second
	}
	if f.buckets == nil {
		f.buckets = map[int64]*bucket{}
		f.seed = maphash.MakeSeed()
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Add takes a reading at now (the agent's clock).
func (f *Fragmenter) Add(r Reading, now time.Time) {
	f.defaults()
	f.Stats.Readings.Add(1)
	f.skew(r, now)
	cell := floorDiv(r.Time.UnixNano(), int64(f.Period))
	if !f.started {
		f.started = true
		f.closedNs = now.Add(-f.Window).UnixNano()
		if !f.Aligned {
			f.closedNs = floorDiv(f.closedNs, int64(f.Period)) * int64(f.Period)
		}
	}
	if r.Time.UnixNano() < f.closedNs || r.Time.Sub(now) > f.MaxFuture {
		r.Late = true
		f.late = append(f.late, r)
		f.Stats.Late.Add(1)
		return
	}
	b := f.buckets[cell]
	if f.Aligned {
		b = &f.pending
		if b.seen == nil {
			b.seen = map[uint64]struct{}{}
		}
	} else if b == nil {
		b = &bucket{seen: map[uint64]struct{}{}}
		f.buckets[cell] = b
	}
	key := f.key(&r)
	if _, dup := b.seen[key]; dup {
		f.Stats.Duplicates.Add(1)
		if f.Dropped != nil {
			f.Dropped(r)
		}
		return
	}
	b.seen[key] = struct{}{}
	b.readings = append(b.readings, r)
	b.bytes += len(r.Value) + len(r.Topic) + 96
	if b.bytes >= MaxFragmentBytes && !f.Aligned {
		// the cell so far, in order; what comes next of it gets its own
		// fragment (repeats of these are no longer recognised)
		slices.SortStableFunc(b.readings, func(x, y Reading) int { return x.Time.Compare(y.Time) })
		f.emit(b.readings, time.Unix(0, (cell+1)*int64(f.Period)), false)
		delete(f.buckets, cell)
	}
}

// key identifies a reading for duplicate detection.
func (f *Fragmenter) key(r *Reading) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	var tb [8]byte
	t := r.Time.UnixNano()
	for i := range tb {
		tb[i] = byte(t >> (8 * i))
	}
	h.Write(tb[:])
	h.Write(r.Value)
	h.WriteString(r.Topic)
	return h.Sum64()
}

// skew follows the least receive-minus-producer time over 10 s windows.
func (f *Fragmenter) skew(r Reading, now time.Time) {
	d := r.Recv.Sub(r.Time).Nanoseconds()
	if f.skewAt.IsZero() || d < f.skewMin {
		f.skewMin = d
	}
	if f.skewAt.IsZero() {
		f.skewAt = now
	}
	if now.Sub(f.skewAt) >= skewWindow || !f.Stats.SkewKnown.Load() {
		f.Stats.SkewNS.Store(f.skewMin)
		f.Stats.SkewKnown.Store(true)
		if now.Sub(f.skewAt) >= skewWindow {
			f.skewAt, f.skewMin = now, d
		}
	}
}

// Tick closes the fragments whose window has passed at now, and emits
// the late readings gathered, at most once a Period (a device whose clock
// is behind would otherwise make a late fragment every Tick).
func (f *Fragmenter) Tick(now time.Time) {
	f.defaults()
	if f.Aligned {
		f.tickAligned(now)
		return
	}
	upTo := floorDiv(now.Add(-f.Window).UnixNano(), int64(f.Period)) // cells below end before now - Window
	f.closeBelow(upTo)
	if now.Sub(f.lateAt) >= f.Period {
		f.emitLate()
		f.lateAt = now
	}
}

// Cut gives a boundary to cut at (Aligned): the end of a fragment of the
// stream the fragments align to, announced at now.
func (f *Fragmenter) Cut(end, now time.Time) {
	f.defaults()
	e := end.UnixNano()
	if e <= f.closedNs || (len(f.bounds) > 0 && e <= f.bounds[len(f.bounds)-1]) {
		return
	}
	f.bounds = append(f.bounds, e)
	f.boundAt = now
}

// tickAligned cuts at the boundaries whose window has passed, or on the
// grid while no boundary came for Fallback.
func (f *Fragmenter) tickAligned(now time.Time) {
	if !f.started {
		f.started = true
		f.closedNs = now.Add(-f.Window).UnixNano()
	}
	if f.boundAt.IsZero() {
		f.boundAt = now // the camera has Fallback from the start to give a boundary
	}
	for len(f.bounds) > 0 && f.bounds[0]+int64(f.Window) <= now.UnixNano() {
		b := f.bounds[0]
		f.bounds = f.bounds[1:]
		f.cutPending(b)
	}
	if now.Sub(f.boundAt) > f.Fallback {
		grid := floorDiv(now.Add(-f.Window).UnixNano(), int64(f.Period)) * int64(f.Period)
		for f.closedNs < grid {
			// one grid cell at a time, as in grid mode
			next := min((floorDiv(f.closedNs, int64(f.Period))+1)*int64(f.Period), grid)
			f.cutPending(next)
		}
	}
	if now.Sub(f.lateAt) >= f.Period {
		f.emitLate()
		f.lateAt = now
	}
	if len(f.late) == 0 {
		f.Stats.ThroughNS.Store(f.closedNs)
	}
}

// cutPending emits the pending readings before b as a fragment ending at
// b, and closes what is before b.
func (f *Fragmenter) cutPending(b int64) {
	p := &f.pending
	slices.SortStableFunc(p.readings, func(x, y Reading) int { return x.Time.Compare(y.Time) })
	n := 0
	for n < len(p.readings) && p.readings[n].Time.UnixNano() < b {
		n++
	}
	if n > 0 {
		f.emit(p.readings[:n], time.Unix(0, b), false)
		rest := copy(p.readings, p.readings[n:])
		clear(p.readings[rest:])
		p.readings = p.readings[:rest]
		clear(p.seen) // repeats of what is cut are no longer recognised
		for i := range p.readings {
			p.seen[f.key(&p.readings[i])] = struct{}{}
		}
	}
	f.closedNs = max(f.closedNs, b)
}

// Flush closes every fragment (the stream is stopping).
func (f *Fragmenter) Flush() {
	f.defaults()
	if f.Aligned {
		if len(f.pending.readings) > 0 {
			last := f.pending.readings[0].Time
			for _, r := range f.pending.readings {
				if r.Time.After(last) {
					last = r.Time
				}
			}
			f.cutPending(last.UnixNano() + 1)
		}
		f.emitLate()
		f.Stats.ThroughNS.Store(f.closedNs)
		return
	}
	last := floorDiv(f.closedNs, int64(f.Period))
	for c := range f.buckets {
		last = max(last, c+1)
	}
	f.closeBelow(last)
	f.emitLate()
}

func (f *Fragmenter) closeBelow(upTo int64) {
	if upTo*int64(f.Period) <= f.closedNs && len(f.buckets) == 0 {
		return
	}
	var cells []int64
	for c := range f.buckets {
		if c < upTo {
			cells = append(cells, c)
		}
	}
	slices.Sort(cells)
	for _, c := range cells {
		b := f.buckets[c]
		delete(f.buckets, c)
		slices.SortStableFunc(b.readings, func(x, y Reading) int { return x.Time.Compare(y.Time) })
		end := time.Unix(0, (c+1)*int64(f.Period))
		f.emit(b.readings, end, false)
	}
	f.closedNs = max(f.closedNs, upTo*int64(f.Period))
	f.started = true
	if len(f.late) == 0 {
		f.Stats.ThroughNS.Store(f.closedNs)
	}
}

// emitLate emits the late readings, one fragment per grid cell they fall
// in: a fragment's time range stays within a cell, so a range query finds
// it however old the readings are.
func (f *Fragmenter) emitLate() {
	if len(f.late) == 0 {
		return
	}
	slices.SortStableFunc(f.late, func(x, y Reading) int { return x.Time.Compare(y.Time) })
	for i := 0; i < len(f.late); {
		cell := floorDiv(f.late[i].Time.UnixNano(), int64(f.Period))
		j, bytes := i, 0
		for j < len(f.late) && floorDiv(f.late[j].Time.UnixNano(), int64(f.Period)) == cell && bytes < MaxFragmentBytes {
			bytes += len(f.late[j].Value) + len(f.late[j].Topic) + 96
			j++
		}
		end := f.late[j-1].Time.Add(time.Millisecond)
		if cellEnd := time.Unix(0, (cell+1)*int64(f.Period)); end.After(cellEnd) {
			end = cellEnd
		}
		f.emit(f.late[i:j], end, true)
		i = j
	}
	f.late = f.late[:0]
	f.Stats.ThroughNS.Store(f.closedNs)
}

// emit makes a fragment of readings (sorted, not empty) ending at end.
func (f *Fragmenter) emit(rs []Reading, end time.Time, late bool) {
	if len(rs) == 0 {
		return
	}
	fr := &f.frag
	fr.TrackConfigs = []fragment.Track{Track}
	if cap(fr.Samples) < 1 {
		fr.Samples = make([][]fragment.Sample, 1)
	}
	fr.Samples = fr.Samples[:1]
	ss := fr.Samples[0][:0]
	// the payloads live in one buffer, sliced once it no longer grows
	f.payload = f.payload[:0]
	offs := make([]int, 0, len(rs)+1)
	for i := range rs {
		offs = append(offs, len(f.payload))
		f.payload = AppendLine(f.payload, &rs[i])
	}
	offs = append(offs, len(f.payload))
	for i := range rs {
		ms := rs[i].Time.UnixMilli()
		next := end.UnixMilli()
		if i+1 < len(rs) {
			next = rs[i+1].Time.UnixMilli()
		}
		ss = append(ss, fragment.Sample{DTS: ms, Duration: uint32(max(next-ms, 0)), Keyframe: true,
			Time: rs[i].Time.UnixNano(), Payload: f.payload[offs[i]:offs[i+1]]})
	}
	fr.Samples[0] = ss
	start := rs[0].Time
	fr.Metadata = fragment.Metadata{
		ProducerStart: start,
		ProducerEnd:   end,
		Duration:      end.Sub(start),
		Tracks:        []fragment.TrackRef{{ID: Track.ID, Kind: Track.Kind, Codec: Track.Codec}},
		InitHash:      fragment.ConfigHash(fr.TrackConfigs),
		SampleCount:   len(rs),
		Container:     fragment.ContainerMKV,
	}
	if late {
		fr.Tags = map[string]string{TagLate: strconv.FormatBool(true)}
	}
	f.Stats.Fragments.Add(1)
	f.Sources = rs
	if f.Emit != nil {
		f.Emit(fr)
	}
	f.Sources = nil
}

// Open is the number of readings waiting in open fragments.
func (f *Fragmenter) Open() int {
	n := len(f.late) + len(f.pending.readings)
	for _, b := range f.buckets {
		n += len(b.readings)
	}
	return n
}
