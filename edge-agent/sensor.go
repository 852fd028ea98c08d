package edgeagent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/putmedia"
	"github.com/tributary-io/tributary/ingest/sensor"
	"github.com/tributary-io/tributary/playback"
)

// sensorQueue is how many readings may wait for the fragmenter; a full
// queue holds the MQTT client (QoS 1 acknowledges after) and the pushes.
const sensorQueue = 4096

// maxSamplesBody bounds one POST of readings.
const maxSamplesBody = 16 << 20

// sensorFront is the front of a sensor stream's pipeline: readings from
// MQTT and pushes go through one queue to the goroutine that owns the
// Fragmenter, whose fragments go the way of every fragment (p.emit).
type sensorFront struct {
	cfg     SensorConfig
	frag    sensor.Fragmenter
	in      chan sensor.Reading
	limiter sensor.Limiter
	mqtt    *sensor.MQTT

	rejected    atomic.Uint64 // bad readings (not JSON, no timestamp, too large)
	rateLimited atomic.Uint64
	retained    atomic.Uint64 // retained MQTT messages skipped

	// stopping is closed when the stream stops: offers fail (503) instead
	// of queueing readings nobody will take; offering holds it read-locked
	// so the last drain waits for offers in flight
	stopping chan struct{}
	offering sync.RWMutex

	// cuts brings the ends of the fragments of the stream this one aligns
	// to (align_to)
	cuts chan time.Time

	journalDir string   // where the journal lives
	journal    *journal // readings are durable there before they are acknowledged
}

// errStopping refuses readings while the stream stops.
var errStopping = errors.New("the stream is stopping")

// SensorStatus is a sensor stream's part of its status.
type SensorStatus struct {
	// Readings taken; Late those stored in late fragments; Duplicates
	// exact repeats dropped; Rejected bad readings; RateLimited readings
	// over max_rate.
	Readings    uint64 `json:"readings"`
	Late        uint64 `json:"late"`
	Duplicates  uint64 `json:"duplicates"`
	Rejected    uint64 `json:"rejected"`
	RateLimited uint64 `json:"rate_limited"`
	// Retained MQTT messages skipped (an old value a broker keeps).
	Retained uint64 `json:"retained,omitempty"`
	// ClockSkewMS estimates the agent's clock minus the devices' (transit
	// time included), once readings with timestamps came.
	ClockSkewMS *float64 `json:"clock_skew_ms,omitempty"`
	// MQTTConnected tells whether the broker connection is up.
	MQTTConnected *bool `json:"mqtt_connected,omitempty"`
	// MQTTReconnects counts reconnections to the broker.
	MQTTReconnects uint64 `json:"mqtt_reconnects,omitempty"`
}

func newSensorFront(cfg StreamConfig) *sensorFront {
	sc := *cfg.Sensor
	f := &sensorFront{cfg: sc, in: make(chan sensor.Reading, sensorQueue), stopping: make(chan struct{})}
	f.frag.Period, f.frag.Window = time.Duration(sc.Period), time.Duration(sc.Window)
	if sc.AlignTo != "" {
		f.frag.Aligned = true
		f.cuts = make(chan time.Time, 64)
	}
	f.limiter.Rate = float64(sc.MaxRate)
	if sc.MQTT != nil {
		f.mqtt = sc.MQTT.client(cfg.Name)
	}
	return f
}

func (f *sensorFront) status() *SensorStatus {
	st := &SensorStatus{
		Readings: f.frag.Stats.Readings.Load(), Late: f.frag.Stats.Late.Load(), Duplicates: f.frag.Stats.Duplicates.Load(),
		Rejected: f.rejected.Load(), RateLimited: f.rateLimited.Load(), Retained: f.retained.Load(),
	}
	if f.frag.Stats.SkewKnown.Load() {
		v := float64(f.frag.Stats.SkewNS.Load()) / 1e6
		st.ClockSkewMS = &v
	}
	if f.mqtt != nil {
		c := f.mqtt.Connected.Load()
		st.MQTTConnected = &c
		st.MQTTReconnects = f.mqtt.Reconnects.Load()
	}
	return st
}

// decode checks a message and takes it as a reading, or says why not.
func (f *sensorFront) decode(msg []byte, topic string, recv time.Time) (sensor.Reading, error) {
	r, err := sensor.Decode(msg, f.cfg.Timestamp, recv, int(f.cfg.MaxReadingSize))
	if err != nil {
		f.rejected.Add(1)
		return r, err
	}
	r.Topic = topic
	return r, nil
}

// offer makes readings durable (the journal) and queues them for the
// fragmenter, then calls done (from the journal's goroutine; nil: offer
// waits for it and returns its error). It fails when ctx ends or the
// stream stops.
func (f *sensorFront) offer(ctx context.Context, done func(error), rs ...sensor.Reading) error {
	f.offering.RLock()
	defer f.offering.RUnlock()
	select {
	case <-f.stopping:
		return errStopping
	default:
	}
	wait := done == nil
	var result chan error
	if wait {
		result = make(chan error, 1)
		done = func(err error) { result <- err }
	}
	if err := f.journal.append(ctx, f.stopping, rs, done); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	return <-result // the journal always answers what it took
}

// startSensor runs a sensor stream: the fragmenter's goroutine (which
// owns the numbering and emits like a source goroutine), the store
// goroutine, and the MQTT subscription.
func (p *pipeline) startSensor(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	f := p.sensor
	j, replay, err := openJournal(f.journalDir, f.in, p.log.With("component", "journal"))
	if err != nil {
		// readings still flow; they are acknowledged once queued
		p.log.Error("sensor journal", "err", err)
		p.setError(fmt.Errorf("sensor journal: %w", err))
		j = &journal{dir: f.journalDir, log: p.log, in: make(chan journalEntry, 1024), out: f.in, nextSeq: 1, memory: true}
	}
	f.journal = j
	if len(replay) > 0 {
		replay = p.notStored(ctx, replay)
	}
	f.frag.Emit = func(fr *fragment.Fragment) {
		seqs := make([]uint64, len(f.frag.Sources))
		for i := range f.frag.Sources {
			seqs[i] = f.frag.Sources[i].Seq
		}
		p.nextStored = func() { j.stored(seqs) }
		p.emit(fr)
	}
	f.frag.Dropped = func(r sensor.Reading) { j.stored([]uint64{r.Seq}) }
	journalCtx, stopJournal := context.WithCancel(context.Background())
	journalDone := make(chan struct{})
	go func() {
		defer close(journalDone)
		j.run(journalCtx)
	}()
	if len(replay) > 0 {
		// what the last run acknowledged and did not store goes through
		// this run's journal; the old segments go once it is in it
		p.log.Warn("sensor readings of the last run that were not stored are replayed from the journal", "readings", len(replay))
		go f.offer(ctx, func(err error) {
			if err == nil {
				j.removeOld()
			}
		}, replay...)
	} else {
		j.removeOld()
	}
	storeDone := make(chan struct{})
	go func() {
		defer close(storeDone)
		p.storeLoop()
	}()
	mqttDone := make(chan struct{})
	transport := "http"
	if f.mqtt != nil {
		transport = "mqtt"
		log := p.log.With("component", "mqtt")
		f.mqtt.Logger = log
		go func() {
			defer close(mqttDone)
			err := f.mqtt.Run(ctx, func(m sensor.Message) {
				if m.Retained {
					// an old value the broker keeps for new subscribers:
					// not a reading of now
					f.retained.Add(1)
					m.Ack()
					return
				}
				r, err := f.decode(m.Payload, m.Topic, m.Recv)
				if err != nil {
					p.setError(fmt.Errorf("reading on %s: %w", m.Topic, err))
					m.Ack() // a bad message stays bad
					return
				}
				// over the rate it waits rather than being dropped
				if f.limiter.Wait(ctx) != nil {
					return // not acknowledged: the broker sends it again
				}
				// acknowledged once durable in the journal
				_ = f.offer(ctx, func(err error) {
					if err == nil {
						m.Ack()
					}
				}, r)
			})
			if err != nil {
				log.Error("MQTT", "err", err)
				p.onState(ingest.StateFailed, err, 0)
			}
		}()
	} else {
		close(mqttDone)
	}
	p.mu.Lock()
	p.status.Transport = transport
	p.status.Tracks = trackStrings([]fragment.Track{sensor.Track})
	p.status.ClockSource = "sensor"
	p.mu.Unlock()
	p.tracks = []fragment.Track{sensor.Track}
	p.queueStreamInfo()
	p.onState(ingest.StateStreaming, nil, 0)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	loop:
		for {
			select {
			case r := <-f.in:
				f.frag.Add(r, time.Now())
			case end := <-f.cuts:
				f.frag.Cut(end, time.Now())
			case now := <-tick.C:
				f.frag.Tick(now)
			case <-ctx.Done():
				break loop
			}
		}
		<-mqttDone
		close(f.stopping)
		defer func() { j.trim() }()
		// offers in flight see stopping and return; then nothing more comes
		drained := make(chan struct{})
		go func() {
			f.offering.Lock()
			close(drained)
			f.offering.Unlock()
		}()
	drain:
		for {
			select {
			case r := <-f.in:
				f.frag.Add(r, time.Now())
			case <-drained:
				break drain
			}
		}
		// the journal writes what it holds, and hands it over
		stopJournal()
	journalDrain:
		for {
			select {
			case r := <-f.in:
				f.frag.Add(r, time.Now())
			case <-journalDone:
				break journalDrain
			}
		}
		for {
			select {
			case r := <-f.in:
				f.frag.Add(r, time.Now())
				continue
			default:
			}
			break
		}
		f.frag.Flush()
		close(p.queue)
		<-storeDone
		p.seq.SetLastEnd(p.lastEnd)
		if err := p.seq.Close(); err != nil {
			p.log.Error("saving fragment numbering", "err", err)
		}
		p.onState(ingest.StateStopped, nil, 0)
	}()
}

// notStored returns the readings of rs not already in the archive: a
// journal replayed after a crash holds readings whose fragments were
// stored before its segment could be deleted. (A fragment still in the
// spool is not seen: its readings are stored again, flagged late.)
func (p *pipeline) notStored(ctx context.Context, rs []sensor.Reading) []sensor.Reading {
	lo, hi := rs[0].Time, rs[0].Time
	for _, r := range rs {
		if r.Time.Before(lo) {
			lo = r.Time
		}
		if r.Time.After(hi) {
			hi = r.Time
		}
	}
	key := func(r *sensor.Reading) string {
		return strconv.FormatInt(r.Time.UnixNano(), 10) + "\x00" + r.Topic + "\x00" + string(r.Value)
	}
	have := map[string]bool{}
	err := sensor.Each(ctx, p.store, p.layout, p.cfg.Name, lo, hi.Add(time.Millisecond), nil, func(m *fragment.Metadata, stored []sensor.Reading, err error) error {
		for i := range stored { // an unreadable fragment has none
			have[key(&stored[i])] = true
		}
		if err == nil {
			p.repairNDJSON(ctx, m, stored)
		}
		return nil
	})
	if err != nil {
		p.log.Warn("sensor journal: cannot list what is stored; replaying all", "err", err)
		return rs
	}
	out := rs[:0]
	for i := range rs {
		if !have[key(&rs[i])] {
			out = append(out, rs[i])
		}
	}
	return out
}

// repairNDJSON writes the NDJSON readings of a stored sensor fragment that
// has none: a crash came between the fragment and its readings.
func (p *pipeline) repairNDJSON(ctx context.Context, m *fragment.Metadata, rs []sensor.Reading) {
	nk, err := archive.ReadingsKey(m.Key)
	if err != nil {
		return
	}
	if _, err := p.store.Stat(ctx, nk); !errors.Is(err, archive.ErrNotFound) {
		return
	}
	if err := putNDJSON(ctx, p.store, m.Key, sensor.AppendNDJSON(nil, rs)); err != nil {
		p.log.Warn("sensor journal: cannot write the NDJSON readings of a stored fragment", "key", m.Key, "err", err)
		return
	}
	p.log.Info("sensor journal: wrote the NDJSON readings a crash left out", "key", m.Key)
}

// sensorsFor resolves a hook's readings: sensor stream names, or
// "linked" (the sensor streams linked to stream).
func (a *Agent) sensorsFor(stream string, names []string) []*pipeline {
	var out []*pipeline
	for _, p := range a.streams() {
		if p.sensor == nil {
			continue
		}
		for _, n := range names {
			if n == p.cfg.Name || (n == "linked" && p.sensor.cfg.Link == stream) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// waitArchived waits, up to the sensor's period and window and a few
// seconds more (30 s at most), until its readings before end are in the
// archive: a sensor's fragments close a window after their end.
func (p *pipeline) waitArchived(ctx context.Context, end time.Time) error {
	f := p.sensor
	deadline := time.Now().Add(min(time.Duration(f.cfg.Period)+time.Duration(f.cfg.Window)+3*time.Second, 30*time.Second))
	for time.Now().Before(deadline) {
		through := f.frag.Stats.ThroughNS.Load() >= end.UnixNano()
		stored := p.fragments.Load()+p.fragmentsLost.Load()+p.denied.Load() >= f.frag.Stats.Fragments.Load()
		uploaded := true
		if u := p.snapshot().Upload; u != nil && u.BacklogFragments > 0 {
			uploaded = false
		}
		if through && stored && uploaded {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// readingsURLs returns, for a SageMaker-style request, a signed URL of
// each sensor stream's readings in the fragment's time range (GET
// …/samples, valid for an hour), once they are archived.
func (a *Agent) readingsURLs(ctx context.Context, m fragment.Metadata, names []string) (map[string]string, error) {
	base, err := a.publicBase()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range a.sensorsFor(m.Stream, names) {
		if err := p.waitArchived(ctx, m.ProducerEnd); err != nil {
			return nil, err
		}
		path := "/v1/streams/" + p.cfg.Name + "/samples"
		q := url.Values{"start": {m.ProducerStart.UTC().Format(time.RFC3339Nano)}, "end": {m.ProducerEnd.UTC().Format(time.RFC3339Nano)}}
		u := base + path + "?" + q.Encode()
		if !a.access.Disabled {
			u += "&" + a.access.SignPath(path, time.Hour, time.Now())
		}
		out[p.cfg.Name] = u
	}
	return out, nil
}

// samplesResult answers a POST of readings.
type samplesResult struct {
	Accepted int             `json:"accepted"`
	Rejected int             `json:"rejected"`
	Errors   []readingErrors `json:"errors,omitempty"`
}

type readingErrors struct {
	// Index of the reading in the body (0-based: line of NDJSON, element
	// of an array).
	Index int    `json:"index"`
	Error string `json:"error"`
}

// maxReportedErrors bounds the errors listed in an answer.
const maxReportedErrors = 20

// samplesHandler is POST /v1/streams/{stream}/samples: readings as NDJSON
// (application/x-ndjson, one JSON value a line) or a JSON array
// (application/json). Good readings are taken whatever is wrong with
// others, and the answer (400) lists what was refused; a body that does
// not parse, or is over the rate (429), is taken not at all.
func (a *Agent) samplesHandler(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := a.checkPushToken(r, stream); err != nil {
		code := http.StatusUnauthorized
		if !errors.Is(err, putmedia.ErrUnauthorized) {
			code = http.StatusForbidden
		}
		playback.WriteError(w, code, "unauthorized", err.Error())
		return
	}
	var p *pipeline
	for _, q := range a.streams() {
		if q.cfg.Name == stream {
			p = q
		}
	}
	if p == nil || p.sensor == nil {
		playback.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%q is not a sensor stream", stream))
		return
	}
	f := p.sensor
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(w, r.Body, maxSamplesBody)
	recv := time.Now()
	var res samplesResult
	var good []sensor.Reading
	take := func(i int, msg []byte) {
		rd, err := f.decode(msg, "", recv)
		if err != nil {
			res.Rejected++
			if len(res.Errors) < maxReportedErrors {
				res.Errors = append(res.Errors, readingErrors{Index: i, Error: err.Error()})
			}
			return
		}
		good = append(good, rd)
	}
	var err error
	switch mt {
	case "application/json":
		err = readArray(body, take)
	case "application/x-ndjson", "application/jsonl", "text/plain", "":
		err = readLines(body, int(f.cfg.MaxReadingSize), take)
	default:
		playback.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/x-ndjson or application/json")
		return
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		playback.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is over %d bytes: nothing was taken", maxSamplesBody))
		return
	case err != nil:
		res.Rejected += len(good) // nothing of a body that does not parse is taken
		res.Errors = append(res.Errors, readingErrors{Index: len(good) + res.Rejected, Error: err.Error()})
		playback.WriteJSON(w, http.StatusBadRequest, res)
		return
	case len(good)+res.Rejected == 0:
		playback.WriteError(w, http.StatusBadRequest, "empty", "no readings in the body")
		return
	}
	// the rate is all or nothing per request: a client resending a
	// refused batch sends no reading twice
	if len(good) > 0 && !f.limiter.AllowN(recv, len(good)) {
		f.rateLimited.Add(uint64(len(good)))
		w.Header().Set("Retry-After", "1")
		playback.WriteJSON(w, http.StatusTooManyRequests, samplesResult{Rejected: len(good) + res.Rejected,
			Errors: []readingErrors{{Index: 0, Error: fmt.Sprintf("%v: %d readings over max_rate (%d/s): none taken; send again", sensor.ErrRateLimited, len(good), f.cfg.MaxRate)}}})
		return
	}
	if err := f.offer(r.Context(), nil, good...); err != nil {
		playback.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("%v: readings may be partly taken; send them again (repeats are dropped)", err))
		return
	}
	res.Accepted = len(good)
	if res.Rejected > 0 {
		playback.WriteJSON(w, http.StatusBadRequest, res)
		return
	}
	playback.WriteJSON(w, http.StatusOK, res)
}

// readLines calls take for each non-empty line; a line over max is passed
// whole (take refuses it as too large) without holding more than max+1
// bytes of it.
func readLines(r io.Reader, max int, take func(int, []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	i := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= max+1 {
			line = append(line, chunk...)
		} else if len(line) <= max {
			line = append(line, chunk[:max+1-len(line)]...) // enough to be too large
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			take(i, t)
			i++
		}
		line = line[:0]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readArray calls take for each element of a JSON array (or the one value
// of a body that is not an array).
func readArray(r io.Reader, take func(int, []byte)) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		// one reading: read it again whole
		return errors.New(`a JSON body is an array of readings ("[…]"); send one reading as [{…}]`)
	}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		take(i, raw)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("the array does not end: %w", err)
	}
	return nil
}

// maxNoticeBytes bounds the readings of a webhook notice; more are cut
// and said so (readings_error).
const maxNoticeBytes = 2 << 20

// errReadingsCut reports readings left out of a notice.
var errReadingsCut = errors.New("readings cut")

// readingsFor returns, for a webhook notice, the readings of the sensor
// streams named (or "linked": those linked to the fragment's stream) in
// the fragment's time range. It waits, up to the sensor's period and
// window and a few seconds more, until those readings are in the
// archive: a sensor's fragments close a window after their end.
func (a *Agent) readingsFor(ctx context.Context, m fragment.Metadata, names []string) (map[string][]json.RawMessage, error) {
	out := map[string][]json.RawMessage{}
	for _, p := range a.sensorsFor(m.Stream, names) {
		if err := p.waitArchived(ctx, m.ProducerEnd); err != nil {
			return nil, err
		}
		lines := []json.RawMessage{}
		size := 0
		var cut error
		err := sensor.Each(ctx, a.Store, a.layout, p.cfg.Name, m.ProducerStart, m.ProducerEnd, nil, func(_ *fragment.Metadata, rs []sensor.Reading, err error) error {
			if errors.Is(err, sensor.ErrBadFragment) {
				cut = err
				return nil
			}
			if err != nil {
				return err
			}
			for i := range rs {
				if rs[i].Time.Before(m.ProducerStart) || !rs[i].Time.Before(m.ProducerEnd) {
					continue
				}
				l := sensor.AppendLine(nil, &rs[i])
				if size+len(l) > maxNoticeBytes {
					cut = fmt.Errorf("%w: %s has more than %d bytes of readings in the fragment's range", errReadingsCut, p.cfg.Name, maxNoticeBytes)
					return errReadingsCut
				}
				size += len(l)
				lines = append(lines, l)
			}
			return nil
		})
		out[p.cfg.Name] = lines
		if err != nil && !errors.Is(err, errReadingsCut) {
			return out, err
		}
		if cut != nil {
			return out, cut
		}
	}
	return out, nil
}

// putReadings stores, beside a sensor fragment (MKV), its readings as
// NDJSON under archive.ReadingsKey, for tools that read the archive
// without an MKV parser. It goes after the fragment, so that there are
// never readings of a fragment not stored (its journal would replay them
// into another: twice in the NDJSON); a crash between the two is repaired
// by the journal's replay (notStored). A fragment whose readings cannot be
// read (sensor.ErrBadFragment) gets none.
func putReadings(ctx context.Context, store archive.Store, m *fragment.Metadata, mkv []byte) error {
	if !sensor.HasReadings(m) {
		return nil
	}
	body, err := sensor.NDJSON(mkv)
	if err != nil {
		return fmt.Errorf("readings of %s: %w", m.Key, err)
	}
	return putNDJSON(ctx, store, m.Key, body)
}

// putNDJSON stores the NDJSON readings of the sensor fragment of key.
func putNDJSON(ctx context.Context, store archive.Store, key string, body []byte) error {
	nk, err := archive.ReadingsKey(key)
	if err != nil {
		return fmt.Errorf("%w: %v", sensor.ErrBadFragment, err)
	}
	if _, err := store.Put(ctx, nk, bytes.NewReader(body), int64(len(body)), archive.PutOptions{ContentType: "application/x-ndjson"}); err != nil {
		return fmt.Errorf("readings of %s: %w", key, err)
	}
	return nil
}
