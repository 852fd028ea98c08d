package playback

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest/sensor"
)

// continuationToken is the GetMedia token that resumes after a fragment:
// the base64url of its key (the same form as ListFragments' tokens).
func continuationToken(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

func (s *Server) tokenKey(stream, token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", badParam("start", "token: not base64url")
	}
	key := string(b)
	st, _, _, _, err := archive.ParseFragmentKey(key)
	prefix, _ := s.Layout.FragmentsPrefix(stream)
	if err != nil || st != stream || !strings.HasPrefix(key, prefix) {
		return "", badParam("start", "token: not a token of this stream")
	}
	return key, nil
}

// mediaWriter writes fragments as MKV to a client: one Segment of unknown
// size (a new one when the codec configuration changes), and per fragment
// a Tags element with the KVS tags (fragment number, server and producer
// timestamps, continuation token, milliseconds behind now) followed by the
// fragment's Cluster. KVS writes a whole segment per fragment; one segment
// reads the same with a streaming MKV parser and, unlike KVS's, with ffmpeg.
type mediaWriter struct {
	s       *Server
	w       io.Writer
	rc      *http.ResponseController
	mkv     fragment.MKVWriter
	buf     []byte
	started bool
	models  []string  // with inference results on the stream
	listed  time.Time // when models was read: again every 30 s
	sensors []string  // sensor streams whose readings go in as data tracks
	cache   map[string][]sensor.Reading
}

// TagResultPrefix starts the tag that carries a model's result for a
// fragment in GetMedia: TRIBUTARY_RESULT_{model} = the answer (JSON), when
// the result exists as the fragment is sent.
const TagResultPrefix = "TRIBUTARY_RESULT_"

// maxResultTag bounds a result carried as a tag; larger ones are left to
// the results API.
const maxResultTag = 16 << 10

// resultTags adds the fragment's inference results to its tags.
func (mw *mediaWriter) resultTags(ctx context.Context, m fragment.Metadata, tags map[string]string) {
	rs := &inference.Records{Store: mw.s.Store, Layout: mw.s.Layout}
	if now := time.Now(); now.Sub(mw.listed) > 30*time.Second {
		mw.models, _ = rs.Models(ctx, archive.RecordResult, m.Stream)
		mw.listed = now
	}
	for _, model := range mw.models {
		r, err := rs.Get(ctx, archive.RecordResult, m, model)
		if err != nil {
			continue
		}
		v := string(r.Output)
		if v == "" {
			v = r.OutputText
		}
		if v != "" && len(v) <= maxResultTag {
			tags[TagResultPrefix+model] = v
		}
	}
}

func (mw *mediaWriter) write(ctx context.Context, m fragment.Metadata) error {
	f, err := mw.s.readFragment(ctx, m)
	if err != nil {
		return err
	}
	tags := make(map[string]string, len(m.Tags)+2)
	for k, v := range m.Tags {
		tags[k] = v
	}
	tags[fragment.TagContinuationToken] = continuationToken(m.Key)
	tags[fragment.TagMillisBehindNow] = strconv.FormatInt(max(mw.s.Now().Sub(m.ProducerEnd).Milliseconds(), 0), 10)
	mw.resultTags(ctx, m, tags)
	f.Tags = tags
	if len(mw.sensors) > 0 {
		mw.addSensorTracks(ctx, f)
	}
	mw.buf = mw.buf[:0]
	mw.mkv.Monotonic = true
	if !mw.started || !mw.mkv.Wrote(f.TrackConfigs) {
		// one segment for as long as the codec configuration holds
		if mw.buf, err = mw.mkv.AppendStreamStart(mw.buf, f); err != nil {
			return err
		}
		mw.started = true
	}
	mw.buf = mw.mkv.AppendStreamFragment(mw.buf, f)
	if _, err := mw.w.Write(mw.buf); err != nil {
		return err
	}
	return mw.rc.Flush()
}

// addSensorTracks adds a JSON data track per sensor stream with the
// readings of the fragment's time range, on the fragment's timeline. The
// readings are those archived when the fragment is sent (a sensor's
// fragments close a window after their end).
func (mw *mediaWriter) addSensorTracks(ctx context.Context, f *fragment.Fragment) {
	// the fragment's timeline: ProducerStart is its leading track's first PTS
	// (the MKV writer's rule: the first video track, else the first track
	// with samples)
	lead := -1
	for i, t := range f.TrackConfigs {
		if t.Kind == fragment.KindVideo && len(f.Samples[i]) > 0 {
			lead = i
			break
		}
	}
	for i := range f.TrackConfigs {
		if lead < 0 && len(f.Samples[i]) > 0 {
			lead = i
		}
	}
	var leadNs int64
	if lead >= 0 {
		leadNs = ticksToNs(f.Samples[lead][0].PTS(), f.TrackConfigs[lead].TimeScale)
	}
	if mw.cache == nil {
		mw.cache = map[string][]sensor.Reading{}
	}
	nextID := uint32(0)
	for _, t := range f.TrackConfigs {
		nextID = max(nextID, t.ID)
	}
	for _, name := range mw.sensors {
		mw.waitSensor(ctx, name, f.ProducerEnd)
		nextID++
		track := fragment.Track{ID: nextID, Kind: fragment.KindData, Codec: fragment.CodecJSON, TimeScale: 1000, Name: name}
		var ss []fragment.Sample
		cached := func(key string) ([]sensor.Reading, bool) { rs, ok := mw.cache[key]; return rs, ok }
		_ = sensor.Each(ctx, mw.s.Store, mw.s.Layout, name, f.ProducerStart, f.ProducerEnd, cached, func(sm *fragment.Metadata, rs []sensor.Reading, err error) error {
			if err != nil {
				return nil // what cannot be read is left out; the video goes on
			}
			if len(mw.cache) > 8 {
				clear(mw.cache)
			}
			mw.cache[sm.Key] = rs
			for i := range rs {
				if rs[i].Time.Before(f.ProducerStart) || !rs[i].Time.Before(f.ProducerEnd) {
					continue
				}
				ns := leadNs + rs[i].Time.Sub(f.ProducerStart).Nanoseconds()
				ss = append(ss, fragment.Sample{DTS: ns / 1e6, Keyframe: true, Payload: sensor.AppendLine(nil, &rs[i])})
			}
			return nil
		})
		slices.SortStableFunc(ss, func(a, b fragment.Sample) int { return cmp.Compare(a.DTS, b.DTS) })
		f.TrackConfigs = append(f.TrackConfigs[:len(f.TrackConfigs):len(f.TrackConfigs)], track)
		f.Samples = append(f.Samples[:len(f.Samples):len(f.Samples)], ss)
	}
	f.InitHash = fragment.ConfigHash(f.TrackConfigs)
}

// SensorProgress is what a Live source can tell of a sensor stream: the
// time before which its readings are all archived.
type SensorProgress interface {
	SensorThrough(stream string) (through time.Time, wait time.Duration, ok bool)
}

// waitSensor waits, when the live source knows the sensor stream, until
// its readings before end are archived (a sensor's fragments close a
// window after their end), at most as long as the source says.
func (mw *mediaWriter) waitSensor(ctx context.Context, name string, end time.Time) {
	sp, ok := mw.s.Live.(SensorProgress)
	if !ok {
		return
	}
	through, wait, ok := sp.SensorThrough(name)
	if !ok || !through.Before(end) {
		return
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if through, _, ok = sp.SensorThrough(name); !ok || !through.Before(end) {
			return
		}
	}
}

func ticksToNs(v int64, rate uint32) int64 {
	if rate == 0 {
		return 0
	}
	t := int64(rate)
	return (v/t)*int64(time.Second) + (v%t)*int64(time.Second)/t
}

// sensorsParam reads getMedia's sensors= (stream names, comma-separated,
// or "linked": the sensor streams linked to this one). A request
// authorised for this stream alone (a signed session or URL) may name only
// sensors linked to it.
func (s *Server) sensorsParam(ctx context.Context, r *http.Request, req request, v string) ([]string, error) {
	stream := req.stream
	if v == "" {
		return nil, nil
	}
	restricted := !s.Access.Disabled && (req.session != "" || r.URL.Query().Get("osig") != "")
	if v == "linked" {
		names, err := archive.ListStreams(ctx, s.Store, s.Layout)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, n := range names {
			if si, err := s.info(ctx, n); err == nil && si.Link == stream {
				out = append(out, n)
			}
		}
		return out, nil
	}
	var out []string
	for _, n := range strings.Split(v, ",") {
		if err := fragment.ValidateStreamName(n); err != nil {
			return nil, badParam("sensors", "%q is not a stream name", n)
		}
		if len(out) == 4 {
			return nil, badParam("sensors", "at most 4 sensor streams")
		}
		if restricted {
			if si, err := s.info(ctx, n); err != nil || si.Link != stream {
				return nil, fmt.Errorf("%w: a session of %s reads only the sensors linked to it, not %s", errNotYours, stream, n)
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// getMedia streams MKV from a start selector, then tails new fragments as
// they land, until the client goes away.
func (s *Server) getMedia(w http.ResponseWriter, r *http.Request, req request) {
	ctx := r.Context()
	q := r.URL.Query()
	sel, err := ParseStartSelector(q.Get("start"))
	if err != nil {
		s.fail(w, err)
		return
	}
	end, err := ParseTime("end", q.Get("end"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if _, err := s.info(ctx, req.stream); err != nil {
		s.fail(w, err)
		return
	}
	sensors, err := s.sensorsParam(ctx, r, req, q.Get("sensors"))
	if err != nil {
		s.fail(w, err)
		return
	}
	// the cursor: fragments after this key are sent ("" = from the first
	// that matches the list request below)
	after := ""
	var minNumber uint64 // fragment:N: fragments before N that overlap its start are skipped
	list := archive.ListRequest{Stream: req.stream, Limit: 100}
	switch sel.Kind {
	case SelectNow:
		last, err := s.latest(ctx, req.stream, 1)
		if err != nil {
			s.fail(w, err)
			return
		}
		if len(last) == 1 {
			after = last[0].Key
		} else {
			list.Start = s.Now()
		}
	case SelectEarliest:
	case SelectProducer:
		list.Start = sel.Time
	case SelectServer:
		list.Selector, list.Start = archive.SelectorServer, sel.Time
	case SelectToken:
		if after, err = s.tokenKey(req.stream, sel.Token); err != nil {
			s.fail(w, err)
			return
		}
	case SelectFragment:
		found, err := s.findNumbers(ctx, req.stream, []uint64{sel.Number})
		if err != nil {
			s.fail(w, err)
			return
		}
		m, ok := found[sel.Number]
		if !ok {
			s.fail(w, fmt.Errorf("%w: fragment %d of %s", archive.ErrNotFound, sel.Number, req.stream))
			return
		}
		list.Start = m.ProducerStart
		minNumber = sel.Number
	}
	var notify <-chan fragment.Metadata
	if s.Live != nil {
		ch, stop := s.Live.Subscribe(req.stream)
		defer stop()
		notify = ch
	}
	w.Header().Set("Content-Type", "video/x-matroska")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	mw := &mediaWriter{s: s, w: w, rc: http.NewResponseController(w), sensors: sensors}
	_ = mw.rc.Flush()
	poll := time.NewTicker(s.PollInterval)
	defer poll.Stop()
	for {
		if after != "" {
			list.Token = continuationToken(after)
		}
		res, err := archive.ListFragments(ctx, s.Store, s.Layout, list)
		if err != nil {
			if ctx.Err() == nil {
				s.Logger.Warn("getmedia: listing", "stream", req.stream, "err", err)
			}
			return
		}
		for _, m := range res.Fragments {
			if !end.IsZero() && m.ProducerStart.After(end) {
				return
			}
			if m.Number < minNumber {
				after = m.Key
				continue
			}
			if err := mw.write(ctx, m); err != nil {
				if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					s.Logger.Warn("getmedia: fragment", "stream", req.stream, "key", m.Key, "err", err)
				}
				return
			}
			after = m.Key
		}
		if res.NextToken != "" {
			continue // more already there
		}
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-poll.C:
		}
	}
}

// findNumbers finds fragments by number, scanning the stream from its
// earliest fragment (numbers grow with time, so the scan stops once past
// the largest).
func (s *Server) findNumbers(ctx context.Context, stream string, numbers []uint64) (map[uint64]fragment.Metadata, error) {
	want := map[uint64]bool{}
	var top uint64
	for _, n := range numbers {
		want[n] = true
		top = max(top, n)
	}
	found := map[uint64]fragment.Metadata{}
	req := archive.ListRequest{Stream: stream, Limit: archive.MaxListFragmentsLimit}
	scanned := 0
	for {
		res, err := archive.ListFragments(ctx, s.Store, s.Layout, req)
		if err != nil {
			return nil, err
		}
		for _, m := range res.Fragments {
			if want[m.Number] {
				found[m.Number] = m
			}
			if m.Number > top+1000 || len(found) == len(want) {
				return found, nil
			}
		}
		scanned += len(res.Fragments)
		if res.NextToken == "" || scanned > maxRangeFragments*5 {
			return found, nil
		}
		req.Token = res.NextToken
	}
}

// fragmentList is the body of GetMediaForFragmentList.
type fragmentList struct {
	// Fragments are fragment numbers, as strings (as KVS gives them) or numbers.
	Fragments []json.Number `json:"fragments"`
}

// getMediaForFragmentList streams the listed fragments, in the order given.
func (s *Server) getMediaForFragmentList(w http.ResponseWriter, r *http.Request, req request) {
	var body fragmentList
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		s.fail(w, badParam("body", "not JSON {\"fragments\": [\"1\", \"2\"]}: %v", err))
		return
	}
	if len(body.Fragments) == 0 || len(body.Fragments) > 1000 {
		s.fail(w, badParam("fragments", "%d fragments: give 1 to 1000", len(body.Fragments)))
		return
	}
	var numbers []uint64
	for _, n := range body.Fragments {
		v, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil || v == 0 {
			s.fail(w, badParam("fragments", "%q is not a fragment number", n.String()))
			return
		}
		numbers = append(numbers, v)
	}
	if _, err := s.info(r.Context(), req.stream); err != nil {
		s.fail(w, err)
		return
	}
	found, err := s.findNumbers(r.Context(), req.stream, numbers)
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, n := range numbers {
		if _, ok := found[n]; !ok {
			s.fail(w, fmt.Errorf("%w: fragment %d of %s", archive.ErrNotFound, n, req.stream))
			return
		}
	}
	w.Header().Set("Content-Type", "video/x-matroska")
	w.WriteHeader(http.StatusOK)
	mw := &mediaWriter{s: s, w: w, rc: http.NewResponseController(w)}
	for _, n := range numbers {
		if err := mw.write(r.Context(), found[n]); err != nil {
			s.Logger.Warn("getmediaforfragmentlist", "stream", req.stream, "number", n, "err", err)
			return
		}
	}
}
