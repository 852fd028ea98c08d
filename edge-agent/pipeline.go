package edgeagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/putmedia"
	"github.com/tributary-io/tributary/ingest/rtsp"
	"github.com/tributary-io/tributary/ingest/sensor"
	iwebrtc "github.com/tributary-io/tributary/ingest/webrtc"
	"github.com/tributary-io/tributary/playback"
)

// livePart is the longest part of the low-latency HLS live edge.
const livePart = 400 * time.Millisecond

// storeQueueSize is how many closed fragments may wait for the archive
// before new ones are dropped (counted and logged).
const storeQueueSize = 32

// pipeline is one stream: a supervised source feeding a cutter whose
// fragments are written to the archive by a store goroutine. The source's
// goroutine owns the cutter; the store goroutine owns archive writes; the
// status is shared under mu.
type pipeline struct {
	cfg    StreamConfig
	log    *slog.Logger
	store  archive.Store
	spool  *spool // nil: fragments go straight to the store
	layout archive.Layout
	seq    *sequence
	now    func() time.Time

	counters ingest.Counters
	cutter   fragment.Cutter
	mkv      fragment.MKVWriter
	source   source       // nil for a push stream (PutMedia, WHIP) and a sensor stream
	sensor   *sensorFront // a sensor stream's readings
	queue    chan storeJob
	init     *initInfo       // configuration of the latest fragment (source goroutine)
	inits    map[string]bool // init segments stored (store goroutine)
	sessions int
	tracks   []fragment.Track
	lastEnd  time.Time

	// counters owned by the pipeline
	fragments       atomic.Uint64
	fragmentBytes   atomic.Uint64
	fragmentsLost   atomic.Uint64
	droppedGOPs     atomic.Uint64
	droppedSamples  atomic.Uint64
	storeErrors     atomic.Uint64
	denied          atomic.Uint64           // fragments refused by a full spool (deny_new)
	crashLost       bool                    // the previous run's fragment in progress was lost
	persistOnUpload bool                    // PERSISTED acks wait for the upload to the archive
	landed          func(fragment.Metadata) // told when a fragment is in the archive
	cutListeners    []chan time.Time        // sensor streams aligned to this one: told each fragment's end
	nextStored      func()                  // given to the next fragment's store job (source goroutine)
	inference       *inference.Dispatcher   // hooks run as fragments close; nil if none
	ring            *playback.LiveRing      // the live edge (low-latency HLS)
	ringHash        string                  // init segment the ring has (source goroutine)
	latency         latencyObserver
	curHour         time.Time // hour of the latest stored fragment (store goroutine)

	mu      sync.Mutex
	status  StreamStatus
	durable latencyRing // recent close → durable latencies

	// push streams (no source): one producer at a time holds the stream
	stopping chan struct{} // closed when a push stream shuts down
	pushMu   sync.Mutex
	pushCond *sync.Cond
	pushBusy bool
	acks     atomic.Pointer[func(putmedia.Ack)]

	cancel context.CancelFunc
	done   chan struct{}
}

// source is a camera the pipeline pulls (rtsp.Source, webrtc.Source).
type source interface {
	Validate() error
	Probe(ctx context.Context) bool
	Run(ctx context.Context, sink ingest.Sink, started func()) error
}

// newSource makes the source of a stream's URL: WHEP endpoints (whep://,
// wheps://) are pulled over WebRTC, everything else over RTSP (which
// reports a bad scheme as the stream's error).
func newSource(cfg StreamConfig, engine *iwebrtc.Engine, ctr *ingest.Counters, log *slog.Logger) source {
	if iwebrtc.IsURL(cfg.URL) {
		return &iwebrtc.Source{
			URL:          cfg.URL,
			Token:        cfg.SourceToken,
			Engine:       engine,
			StallTimeout: time.Duration(cfg.StallTimeout),
			// a keyframe at least every fragment target
			KeyframeInterval: time.Duration(cfg.Fragment.Target),
			Counters:         ctr,
			Logger:           log.With("component", "whep"),
		}
	}
	return &rtsp.Source{
		URL:           cfg.URL,
		Transport:     cfg.Transport,
		StallTimeout:  time.Duration(cfg.StallTimeout),
		ONVIFMetadata: cfg.ONVIFMetadata,
		Counters:      ctr,
		Logger:        log.With("component", "rtsp"),
	}
}

// redactURL hides a stream URL's credentials.
func redactURL(u string) string {
	if iwebrtc.IsURL(u) {
		return iwebrtc.Redact(u)
	}
	return rtsp.Redact(u)
}

type latencyObserver interface {
	Observe(seconds float64)
}

type nopObserver struct{}

func (nopObserver) Observe(float64) {}

// storeJob is an object to write: a fragment, an init segment, or the
// stream's metadata.
type storeJob struct {
	key    string
	buf    *[]byte
	meta   *fragment.Metadata // set for fragments
	init   *initInfo          // the init segment a fragment needs
	info   bool               // stream.json
	ctype  string
	closed time.Time // when the fragment closed, for latency
	// onStored is told once the fragment is durable (a sensor's journal)
	onStored func()
}

var fragPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func newPipeline(cfg StreamConfig, store archive.Store, layout archive.Layout, seqDir string, log *slog.Logger, lat latencyObserver, engine *iwebrtc.Engine) (*pipeline, error) {
	seq, err := openSequence(seqDir, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	if lat == nil {
		lat = nopObserver{}
	}
	p := &pipeline{
		cfg:     cfg,
		log:     log.With("stream", cfg.Name),
		store:   store,
		layout:  layout,
		seq:     seq,
		now:     time.Now,
		queue:   make(chan storeJob, storeQueueSize),
		inits:   map[string]bool{},
		latency: lat,
		done:    make(chan struct{}),
	}
	p.pushCond = sync.NewCond(&p.pushMu)
	if cfg.URL != "" {
		p.source = newSource(cfg, engine, &p.counters, p.log)
	}
	if cfg.Sensor != nil {
		p.sensor = newSensorFront(cfg)
	}
	p.ring = &playback.LiveRing{PartTarget: livePart}
	p.cutter = fragment.Cutter{
		Target:      time.Duration(cfg.Fragment.Target),
		MaxDuration: time.Duration(cfg.Fragment.MaxDuration),
		MaxBytes:    int64(cfg.Fragment.MaxBytes),
		Emit:        p.emit,
		Closing:     p.closing,
		DataWait:    dataWait(cfg),
		OnDrop:      p.onDrop,
		PartTarget:  livePart,
		EmitPart:    p.onPart,
	}
	if end := seq.LastEnd(); !end.IsZero() {
		p.cutter.SetPrevious(end)
		p.lastEnd = end
	}
	if seq.next > 1 {
		// a new run is a new ingest session: its first fragment starts a
		// new decode timeline after whatever the last run stored
		p.cutter.MarkDiscontinuity()
	}
	if seq.Unclean() && cfg.Sensor == nil { // a sensor's journal replays what it had
		// the previous run was killed or lost power: whatever fragment it
		// had in progress (not yet closed, so never stored) is lost
		p.fragmentsLost.Add(1)
		p.crashLost = true
		p.log.Warn("the previous run ended without a clean stop: the fragment it had in progress is lost",
			"after", seq.LastEnd())
	}
	p.status = StreamStatus{Name: cfg.Name, URL: redactURL(cfg.URL), State: ingest.StateConnecting, Since: time.Now().UTC()}
	return p, nil
}

// start runs the supervisor and the store goroutine.
func (p *pipeline) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	storeDone := make(chan struct{})
	go func() {
		defer close(storeDone)
		p.storeLoop()
	}()
	go func() {
		defer close(p.done)
		sup := &ingest.Supervisor{
			Name:    p.cfg.Name,
			Session: func(ctx context.Context, started func()) error { return p.source.Run(ctx, p, started) },
			Probe:   p.source.Probe,
			OnState: p.onState,
			Logger:  p.log.With("component", "supervisor"),
		}
		if err := p.source.Validate(); err != nil {
			// a bad URL fails this stream only, with a clear status
			sup.Session = func(context.Context, func()) error { return err }
		}
		sup.Run(ctx)
		p.cutter.Flush() // no-op unless a session is still open
		close(p.queue)
		<-storeDone
		p.seq.SetLastEnd(p.lastEnd)
		if err := p.seq.Close(); err != nil {
			p.log.Error("saving fragment numbering", "err", err)
		}
	}()
}

// stop ends the stream: the fragment in progress is closed and stored.
func (p *pipeline) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

// ---- ingest.Sink, called on the source goroutine ----

func (p *pipeline) StartSession(s ingest.Session) {
	if p.sessions > 0 {
		p.counters.Reconnects.Add(1)
		p.ring.Discontinuity()
	}
	p.cutter.Reset(s.Tracks, p.sessions > 0)
	p.sessions++
	p.tracks = append(p.tracks[:0], s.Tracks...)
	p.cutter.SetClockSource(fragment.ClockReceive)
	p.mu.Lock()
	p.status.Transport = s.Transport
	p.status.Tracks = trackStrings(s.Tracks)
	p.status.Ignored = s.Ignored
	p.status.ClockSource = fragment.ClockReceive
	p.status.Sessions = p.sessions
	p.status.ConnectedAt = s.Started.UTC()
	p.mu.Unlock()
	p.queueStreamInfo()
}

func (p *pipeline) WriteSample(i int, s fragment.Sample) { p.cutter.Write(i, s) }

func (p *pipeline) UpdateTracks(tracks []fragment.Track) {
	p.cutter.SetTracks(tracks)
	p.tracks = append(p.tracks[:0], tracks...)
	p.mu.Lock()
	p.status.Tracks = trackStrings(tracks)
	p.mu.Unlock()
	p.queueStreamInfo()
}

func (p *pipeline) ClockChanged(from, to string, diff time.Duration, stepped bool) {
	p.cutter.SetClockSource(to)
	if stepped {
		p.cutter.MarkDiscontinuity()
	}
	p.mu.Lock()
	p.status.ClockSource = to
	p.status.ClockChange = &ClockChange{From: from, To: to, DiffMS: diff.Milliseconds(), Stepped: stepped, At: time.Now().UTC()}
	p.mu.Unlock()
}

func (p *pipeline) EndSession(error) { p.cutter.Flush() }

func (p *pipeline) onDrop(err error, samples int, bytes int64) {
	if errors.Is(err, fragment.ErrDataTooLarge) {
		// a camera's metadata over the cap: the document goes, not the video
		p.droppedSamples.Add(uint64(samples))
		p.log.Warn("data sample dropped", "err", err, "bytes", bytes)
		return
	}
	code := putmedia.CodeMaxFragmentDuration
	if errors.Is(err, fragment.ErrGOPTooLarge) {
		code = putmedia.CodeMaxFragmentSize
	}
	p.ackError(code, time.Now(), err)
	p.droppedGOPs.Add(1)
	p.droppedSamples.Add(uint64(samples))
	p.log.Warn("GOP dropped", "err", err, "samples", samples, "bytes", bytes)
	p.setError(err)
}

// emit encodes a closed fragment and queues it for the archive.
func (p *pipeline) emit(f *fragment.Fragment) {
	onStored := p.nextStored // taken whatever happens to this fragment
	p.nextStored = nil
	n, err := p.seq.Next()
	if err != nil {
		p.fragmentsLost.Add(1)
		p.log.Error("cannot number fragment; dropped", "err", err)
		p.setError(fmt.Errorf("fragment numbering: %w", err))
		return
	}
	closed := p.now()
	f.Stream = p.cfg.Name
	f.Number = n
	f.ServerTime = closed
	container := p.containerOf(f.TrackConfigs)
	f.Container = container
	f.Tags = mergeTags(p.cfg.Tags, f.Tags)
	if p.init == nil || p.init.hash != f.InitHash {
		// an immutable snapshot shared by the fragments of this configuration
		p.init = &initInfo{hash: f.InitHash, tracks: append([]fragment.Track(nil), f.TrackConfigs...)}
	}
	buf := fragPool.Get().(*[]byte)
	if container == fragment.ContainerMKV {
		b, err := p.mkv.Append((*buf)[:0], f)
		if err != nil {
			fragPool.Put(buf)
			p.fragmentsLost.Add(1)
			p.log.Error("MKV fragment", "err", err)
			p.setError(err)
			return
		}
		*buf = b
	} else {
		*buf = fragment.AppendFMP4((*buf)[:0], f)
	}
	sum := sha256.Sum256(*buf)
	f.SHA256 = hex.EncodeToString(sum[:])
	f.Size = int64(len(*buf))
	key, err := p.layout.FragmentKey(f.Metadata)
	if err != nil {
		fragPool.Put(buf)
		p.fragmentsLost.Add(1)
		p.setError(err)
		return
	}
	f.Key = key
	meta := f.Metadata
	meta.Tracks = append([]fragment.TrackRef(nil), f.Tracks...)
	if d := p.inference; d != nil && p.sensor == nil { // hooks take video
		if which := d.Wants(&meta, false); len(which) > 0 {
			in := &inference.Input{Meta: meta, Data: bytes.Clone(*buf)}
			if container != fragment.ContainerMKV {
				in.Init = p.init.marshal()
			}
			d.Offer(which, in, closed)
		}
	}
	p.lastEnd = f.ProducerEnd
	p.seq.SetLastEnd(f.ProducerEnd) // saved with the next block reservation
	for _, c := range p.cutListeners {
		select {
		case c <- f.ProducerEnd:
		default: // a sensor that is behind falls back on the grid
		}
	}
	p.ackReceived(meta)
	p.enqueue(storeJob{key: key, buf: buf, meta: &meta, init: p.init, ctype: contentType(f.Container), closed: closed, onStored: onStored})
}

// dataWait is how long a stream's closed fragments wait for late data
// (fragment.Cutter.DataWait): a pulled camera's metadata comes after its
// video; a pushed stream (PutMedia) sends its tracks together.
func dataWait(cfg StreamConfig) time.Duration {
	if cfg.URL == "" {
		return -1
	}
	return 0 // the default
}

// closing closes the live edge's segment of a fragment as the cutter
// closes it, which is before emit for a fragment held for late data (its
// number is the next one all the same: a held fragment is emitted before
// any other). The live edge serves fMP4 whatever the archive's container,
// without data tracks.
func (p *pipeline) closing(f *fragment.Fragment) {
	if !p.ring.Active() || !fragment.FMP4CarriesMedia(f.TrackConfigs) {
		return
	}
	g := *f
	g.Number = p.seq.next
	p.ring.CloseSegment(g.Number, g.Duration, fragment.AppendFMP4(nil, &g))
}

// mergeTags adds a fragment's own tags (a sensor fragment's late=true) to
// the stream's.
func mergeTags(stream, own map[string]string) map[string]string {
	if len(own) == 0 {
		return stream
	}
	m := make(map[string]string, len(stream)+len(own))
	for k, v := range stream {
		m[k] = v
	}
	for k, v := range own {
		m[k] = v
	}
	return m
}

// containerOf is the container of a fragment of tracks: the stream's, or
// MKV for what fMP4 does not carry here (VP8, data tracks).
func (p *pipeline) containerOf(tracks []fragment.Track) string {
	if p.cfg.Container != fragment.ContainerMKV && !fragment.FMP4Carries(tracks) {
		return fragment.ContainerMKV
	}
	return p.cfg.Container
}

// initInfo is a codec configuration whose init segment fragments need.
type initInfo struct {
	hash   string
	tracks []fragment.Track
	bytes  []byte // the init segment, once marshalled (for inference)
}

// marshal returns the init segment, made once; nil if it cannot be.
func (in *initInfo) marshal() []byte {
	if in.bytes == nil {
		in.bytes, _ = fragment.MarshalInit(in.tracks)
	}
	return in.bytes
}

// ensureInit stores the init segment of a fragment's configuration unless
// it is known to be stored. It runs on the store goroutine, which retries
// it with the next fragment when it fails.
func (p *pipeline) ensureInit(ctx context.Context, in *initInfo) error {
	if in == nil || p.inits[in.hash] {
		return nil
	}
	if !fragment.FMP4CarriesMedia(in.tracks) {
		p.inits[in.hash] = true // MKV fragments carry their tracks
		return nil
	}
	b, err := fragment.MarshalInit(in.tracks)
	if err != nil {
		return fmt.Errorf("init segment: %w", err)
	}
	key, err := p.layout.InitKey(p.cfg.Name, in.hash)
	if err != nil {
		return err
	}
	_, err = p.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), archive.PutOptions{ContentType: "video/mp4", IfNoneMatch: true})
	if err != nil && !errors.Is(err, archive.ErrPreconditionFailed) {
		return fmt.Errorf("init segment %s: %w", key, err)
	}
	p.inits[in.hash] = true
	return nil
}

func (p *pipeline) queueStreamInfo() {
	info := archive.StreamInfo{
		Name: p.cfg.Name, Tracks: p.tracks, InitHash: fragment.ConfigHash(p.tracks),
		Container: p.containerOf(p.tracks), Tags: p.cfg.Tags, Updated: time.Now().UTC(),
	}
	if p.cfg.Sensor != nil {
		info.Link = p.cfg.Sensor.Link
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return
	}
	key, err := p.layout.StreamKey(p.cfg.Name)
	if err != nil {
		p.setError(err)
		return
	}
	buf := fragPool.Get().(*[]byte)
	*buf = append((*buf)[:0], b...)
	p.enqueue(storeJob{key: key, buf: buf, ctype: "application/json", info: true})
}

func (p *pipeline) enqueue(j storeJob) {
	select {
	case p.queue <- j:
	default:
		fragPool.Put(j.buf)
		if j.meta != nil {
			p.fragmentsLost.Add(1)
			if p.spool != nil {
				p.spool.countLost(p.cfg.Name, LostQueueFull)
			}
			p.log.Error("archive is not keeping up; fragment dropped", "number", j.meta.Number)
			p.ackError(putmedia.CodeInternal, j.meta.ProducerStart, errors.New("the archive is not keeping up: fragment dropped"))
			p.setError(errors.New("archive is not keeping up: fragments dropped"))
		}
	}
}

// storeLoop writes queued objects in order. It is the only goroutine that
// writes this stream's objects.
func (p *pipeline) storeLoop() {
	ctx := context.Background()
	for j := range p.queue {
		p.write(ctx, j)
		fragPool.Put(j.buf)
	}
}

func (p *pipeline) write(ctx context.Context, j storeJob) {
	if p.spool != nil {
		p.writeSpool(j)
		return
	}
	if err := p.ensureInit(ctx, j.init); err != nil {
		// the fragment is still stored: its footage is not lost, and the
		// init segment is tried again with the next fragment
		p.storeErrors.Add(1)
		p.log.Error("archive write failed", "err", err)
		p.setError(fmt.Errorf("archive: %w", err))
	}
	opts := archive.PutOptions{ContentType: j.ctype}
	if j.meta != nil {
		md, err := archive.EncodeMetadata(*j.meta)
		if err != nil {
			p.log.Error("fragment metadata", "err", err)
		}
		opts.Metadata = md
		opts.ContentSHA256 = j.meta.SHA256 // of *j.buf: spares Local hashing it
	}
	err := tryThrice(archive.ErrInvalidKey, func() error {
		_, err := p.store.Put(ctx, j.key, bytes.NewReader(*j.buf), int64(len(*j.buf)), opts)
		return err
	})
	if err != nil {
		p.storeErrors.Add(1)
		if j.meta != nil {
			p.fragmentsLost.Add(1)
			p.ackError(putmedia.CodeArchival, j.meta.ProducerStart, err)
		}
		p.log.Error("archive write failed", "key", j.key, "err", err)
		p.setError(fmt.Errorf("archive: %w", err))
		return
	}
	if j.meta == nil {
		return
	}
	if p.sensor != nil { // after its fragment (putReadings)
		err := tryThrice(sensor.ErrBadFragment, func() error { return putReadings(ctx, p.store, j.meta, *j.buf) })
		if err != nil {
			// the readings are still in the fragment
			p.storeErrors.Add(1)
			p.log.Error("archive write failed", "err", err)
			p.setError(fmt.Errorf("archive: %w", err))
		}
	}
	m := p.stored(j)
	p.closeHour(ctx, m.ProducerStart)
}

// tryThrice calls fn up to three times, 100 and 200 ms apart, until it
// succeeds or fails with permanent.
func tryThrice(permanent error, fn func() error) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		if err = fn(); err == nil || errors.Is(err, permanent) {
			return err
		}
	}
	return err
}

// stored counts a fragment made durable (in the archive, or in the spool)
// and returns its metadata, as the status shows it.
func (p *pipeline) stored(j storeJob) fragment.Metadata {
	took := p.now().Sub(j.closed)
	p.latency.Observe(took.Seconds())
	p.fragments.Add(1)
	p.fragmentBytes.Add(uint64(len(*j.buf)))
	if j.onStored != nil {
		j.onStored()
	}
	m := *j.meta
	m.Tags = nil
	p.mu.Lock()
	p.status.LastFragment = &m
	p.durable.add(j.closed, took)
	p.mu.Unlock()
	if !p.persistOnUpload || p.spool == nil {
		p.ackPersisted(m)
	}
	if p.spool == nil && p.landed != nil {
		p.landed(m) // in the archive now
	}
	return m
}

// writeSpool makes a fragment durable in the spool, which uploads it.
func (p *pipeline) writeSpool(j storeJob) {
	if j.info {
		if err := p.spool.setInfo(p.cfg.Name, bytes.Clone(*j.buf)); err != nil {
			p.log.Error("spool", "err", err)
			p.setError(fmt.Errorf("spool: %w", err))
		}
		return
	}
	if j.meta == nil {
		return
	}
	if err := p.spool.add(*j.meta, *j.buf, j.init.tracks); err != nil {
		p.fragmentsLost.Add(1)
		p.ackError(putmedia.CodeArchival, j.meta.ProducerStart, err)
		if errors.Is(err, ErrSpoolFull) {
			p.denied.Add(1)
			p.setError(err)
			return
		}
		p.spool.countLost(p.cfg.Name, LostWriteError)
		p.storeErrors.Add(1)
		p.log.Error("spool write failed; fragment lost", "number", j.meta.Number, "err", err)
		p.setError(fmt.Errorf("spool: %w", err))
		return
	}
	p.stored(j)
}

// closeHour writes the hour manifest of the previous hour once the first
// fragment of a new hour is stored.
func (p *pipeline) closeHour(ctx context.Context, start time.Time) {
	hour := start.UTC().Truncate(time.Hour)
	if p.curHour.IsZero() || !hour.After(p.curHour) {
		if p.curHour.IsZero() {
			p.curHour = hour
		}
		return
	}
	prev := p.curHour
	p.curHour = hour
	if err := archive.WriteHourIndex(ctx, p.store, p.layout, p.cfg.Name, prev); err != nil {
		p.log.Warn("hour manifest", "hour", prev, "err", err)
	}
}

func (p *pipeline) onState(state string, err error, retryIn time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status.State != state {
		p.status.Since = time.Now().UTC()
	}
	p.status.State = state
	p.status.RetryInMS = retryIn.Milliseconds()
	if err != nil {
		p.status.LastError = err.Error()
		p.status.LastErrorAt = time.Now().UTC()
	}
}

func (p *pipeline) setError(err error) {
	p.mu.Lock()
	p.status.LastError = err.Error()
	p.status.LastErrorAt = time.Now().UTC()
	p.mu.Unlock()
}

// contentType is the MIME type of a fragment in a container.
func contentType(container string) string {
	if container == fragment.ContainerMKV {
		return "video/x-matroska"
	}
	return "video/iso.segment"
}

func trackStrings(ts []fragment.Track) []string {
	out := make([]string, len(ts))
	for i := range ts {
		out[i] = ts[i].String()
	}
	return out
}
