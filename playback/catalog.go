package playback

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// cachedHour is a complete hour's manifest, kept in memory: closed hours
// change only when a backfill lands, which rewrites the manifest (its ETag).
type cachedHour struct {
	etag  string
	frags []fragment.Metadata
}

// maxRangeFragments bounds what one playlist or timeline reads.
const maxRangeFragments = 200_000

// maxRangeHours bounds the hours one playlist or timeline reads (31 days).
const maxRangeHours = 31 * 24

// fragmentsIn returns a stream's fragments overlapping [start, end] (by
// producer time) in order. Complete hours come from their manifests
// (cached); the rest from ListFragments.
func (s *Server) fragmentsIn(ctx context.Context, stream string, start, end time.Time) ([]fragment.Metadata, error) {
	now := s.Now()
	if end.IsZero() || end.After(now.Add(time.Hour)) {
		end = now.Add(time.Hour)
	}
	var out []fragment.Metadata
	// the first fragment may start up to MaxFragmentDuration before start
	from := start.Add(-archive.MaxFragmentDuration).UTC().Truncate(time.Hour)
	if start.IsZero() {
		from = time.Time{}
	}
	listFrom := from
	if !from.IsZero() {
		// complete hours come from their manifests, fetched concurrently
		// (24 round trips to S3 one after another would be most of a day's
		// playlist), then appended in order
		var hours []time.Time
		for h := from; !h.After(end); h = h.Add(time.Hour) {
			if h.Add(time.Hour + archive.MaxFragmentDuration).After(now) {
				break // not complete: listed below
			}
			hours = append(hours, h)
		}
		if len(hours) > maxRangeHours {
			return nil, badParam("start", "the range spans more than %d hours", maxRangeHours)
		}
		per, err := s.completeHours(ctx, stream, hours)
		if err != nil {
			return nil, err
		}
		total := 0
		for _, frags := range per {
			total += len(frags)
		}
		out = make([]fragment.Metadata, 0, total)
		for i, frags := range per {
			for _, m := range frags {
				if overlaps(m, start, end) && (len(out) == 0 || m.Key > out[len(out)-1].Key) {
					out = append(out, m)
				}
			}
			listFrom = hours[i].Add(time.Hour)
			if len(out) > maxRangeFragments {
				return nil, badParam("start", "the range holds more than %d fragments", maxRangeFragments)
			}
		}
	}
	if listFrom.After(end) {
		return out, nil
	}
	req := archive.ListRequest{Stream: stream, Start: listFrom, End: end, Limit: archive.MaxListFragmentsLimit}
	if listFrom.IsZero() {
		req.Start = start
	}
	for {
		res, err := archive.ListFragments(ctx, s.Store, s.Layout, req)
		if err != nil {
			return nil, err
		}
		for _, m := range res.Fragments {
			if overlaps(m, start, end) && (len(out) == 0 || m.Key > out[len(out)-1].Key) {
				out = append(out, m)
			}
		}
		if res.NextToken == "" {
			return out, nil
		}
		if len(out) > maxRangeFragments {
			return nil, badParam("start", "the range holds more than %d fragments", maxRangeFragments)
		}
		req.Token = res.NextToken
	}
}

// hourFetchers bounds the concurrent manifest reads of one request.
const hourFetchers = 8

// completeHours returns the fragments of each complete hour, from its manifest or,
// for an hour without one (empty, or not indexed yet), by listing it.
func (s *Server) completeHours(ctx context.Context, stream string, hours []time.Time) ([][]fragment.Metadata, error) {
	out := make([][]fragment.Metadata, len(hours))
	errs := make([]error, len(hours))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(hourFetchers, len(hours)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				frags, ok, err := s.hour(ctx, stream, hours[i])
				if err == nil && !ok {
					frags, err = s.list(ctx, stream, hours[i], hours[i].Add(time.Hour))
				}
				out[i], errs[i] = frags, err
				if err != nil {
					cancel()
				}
			}
		}()
	}
	for i := range hours {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := context.Cause(parent); err != nil {
		return nil, err
	}
	return out, nil
}

// list returns the fragments that start in [from, to) by listing keys.
func (s *Server) list(ctx context.Context, stream string, from, to time.Time) ([]fragment.Metadata, error) {
	var out []fragment.Metadata
	req := archive.ListRequest{Stream: stream, Start: from, End: to, Limit: archive.MaxListFragmentsLimit}
	for {
		res, err := archive.ListFragments(ctx, s.Store, s.Layout, req)
		if err != nil {
			return nil, err
		}
		for _, m := range res.Fragments {
			if !m.ProducerStart.Before(from) && m.ProducerStart.Before(to) {
				out = append(out, m)
			}
		}
		if res.NextToken == "" || len(out) > maxRangeFragments {
			return out, nil
		}
		req.Token = res.NextToken
	}
}

func overlaps(m fragment.Metadata, start, end time.Time) bool {
	if !end.IsZero() && m.ProducerStart.After(end) {
		return false
	}
	return start.IsZero() || m.ProducerEnd.After(start) || !m.ProducerStart.Before(start)
}

// hour returns a complete hour's fragments from its manifest (cached by
// ETag), and false when it has none.
func (s *Server) hour(ctx context.Context, stream string, h time.Time) ([]fragment.Metadata, bool, error) {
	key, err := s.Layout.HourIndexKey(stream, h)
	if err != nil {
		return nil, false, err
	}
	st, err := s.Store.Stat(ctx, key)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if v, ok := s.hours.Load(key); ok && v.(*cachedHour).etag == st.ETag && st.ETag != "" {
		return v.(*cachedHour).frags, true, nil
	}
	idx, err := archive.ReadHourIndex(ctx, s.Store, s.Layout, stream, h)
	if err != nil {
		s.Logger.Warn("unusable hour manifest; listing instead", "key", key, "err", err)
		return nil, false, nil
	}
	s.hours.Store(key, &cachedHour{etag: st.ETag, frags: idx.Fragments})
	return idx.Fragments, true, nil
}

// latest returns the stream's most recent fragments (at most n), looking
// back over the last hours.
func (s *Server) latest(ctx context.Context, stream string, n int) ([]fragment.Metadata, error) {
	now := s.Now()
	for _, back := range []time.Duration{2 * time.Minute, time.Hour, 24 * time.Hour} {
		frags, err := s.fragmentsIn(ctx, stream, now.Add(-back), time.Time{})
		if err != nil {
			return nil, err
		}
		if len(frags) >= n || back == 24*time.Hour {
			if len(frags) > n {
				frags = frags[len(frags)-n:]
			}
			return frags, nil
		}
	}
	return nil, nil
}

// ---- handlers ----

// StreamSummary is a stream in GET /v1/streams.
type StreamSummary struct {
	Name         string             `json:"name"`
	Container    string             `json:"container"`
	Codecs       string             `json:"codecs,omitempty"`
	Tracks       []TrackSummary     `json:"tracks"`
	State        string             `json:"state"`
	LastFragment *fragment.Metadata `json:"last_fragment"`
	Updated      time.Time          `json:"updated"`
	// Link is, for a sensor stream, the camera stream it belongs to.
	Link string `json:"link,omitempty"`
}

// TrackSummary describes a track for players.
type TrackSummary struct {
	ID         uint32         `json:"id"`
	Kind       fragment.Kind  `json:"kind"`
	Codec      fragment.Codec `json:"codec"`
	Width      int            `json:"width,omitempty"`
	Height     int            `json:"height,omitempty"`
	SampleRate int            `json:"sample_rate,omitempty"`
	Channels   int            `json:"channels,omitempty"`
}

func (s *Server) summary(ctx context.Context, name string) (StreamSummary, error) {
	si, err := s.info(ctx, name)
	if err != nil {
		return StreamSummary{}, err
	}
	sum := StreamSummary{Name: name, Container: si.Container, Codecs: codecsOf(si.Tracks), Updated: si.Updated, Link: si.Link}
	for _, t := range si.Tracks {
		sum.Tracks = append(sum.Tracks, TrackSummary{ID: t.ID, Kind: t.Kind, Codec: t.Codec, Width: t.Width, Height: t.Height,
			SampleRate: t.SampleRate, Channels: t.Channels})
	}
	if s.Live != nil {
		sum.State = s.Live.StreamState(name)
	}
	if last, err := s.latest(ctx, name, 1); err == nil && len(last) == 1 {
		m := last[0]
		m.Tags = nil
		sum.LastFragment = &m
	}
	return sum, nil
}

func (s *Server) listStreams(w http.ResponseWriter, r *http.Request, _ request) {
	names, err := archive.ListStreams(r.Context(), s.Store, s.Layout)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := []StreamSummary{}
	for _, n := range names {
		sum, err := s.summary(r.Context(), n)
		if errors.Is(err, errNoStream) {
			continue // fragments but no stream.json yet
		}
		if err != nil {
			s.fail(w, err)
			return
		}
		out = append(out, sum)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"streams": out})
}

func (s *Server) getStream(w http.ResponseWriter, r *http.Request, req request) {
	sum, err := s.summary(r.Context(), req.stream)
	if err != nil {
		s.fail(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, sum)
}

func (s *Server) listFragments(w http.ResponseWriter, r *http.Request, req request) {
	q := r.URL.Query()
	start, end, err := timeRange(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, err := intParam(q, "limit", archive.DefaultListFragmentsLimit, 1, archive.MaxListFragmentsLimit)
	if err != nil {
		s.fail(w, err)
		return
	}
	if _, err := s.info(r.Context(), req.stream); err != nil {
		s.fail(w, err)
		return
	}
	res, err := archive.ListFragments(r.Context(), s.Store, s.Layout, archive.ListRequest{
		Stream: req.stream, Selector: q.Get("selector"), Start: start, End: end, Limit: limit, Token: q.Get("token"),
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	if res.Fragments == nil {
		res.Fragments = []fragment.Metadata{}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"fragments": res.Fragments, "next_token": res.NextToken})
}

// Span is a run of fragments with no gap between them.
type Span struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Fragments int       `json:"fragments"`
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request, req request) {
	q := r.URL.Query()
	start, end, err := timeRange(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.Now().UTC()
	if end.IsZero() {
		end = now
	}
	if start.IsZero() {
		start = end.Add(-time.Hour)
	}
	if end.Sub(start) > 31*24*time.Hour {
		s.fail(w, badParam("start", "the range is longer than 31 days"))
		return
	}
	if _, err := s.info(r.Context(), req.stream); err != nil {
		s.fail(w, err)
		return
	}
	frags, err := s.fragmentsIn(r.Context(), req.stream, start, end)
	if err != nil {
		s.fail(w, err)
		return
	}
	spans := []Span{}
	for _, m := range frags {
		if n := len(spans); n > 0 && m.ProducerStart.Sub(spans[n-1].End) <= fragment.DiscontinuityThreshold {
			spans[n-1].End = maxTime(spans[n-1].End, m.ProducerEnd)
			spans[n-1].Fragments++
			continue
		}
		spans = append(spans, Span{Start: m.ProducerStart.UTC(), End: m.ProducerEnd.UTC(), Fragments: 1})
	}
	WriteJSON(w, http.StatusOK, map[string]any{"start": start, "end": end, "spans": spans})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *Server) newSession(w http.ResponseWriter, r *http.Request, req request) {
	if s.Access.Disabled {
		WriteJSON(w, http.StatusOK, Session{})
		return
	}
	if len(s.Access.SigningKey) == 0 {
		WriteError(w, http.StatusNotImplemented, "not_implemented", "no signing key is configured")
		return
	}
	ttl, err := durationParam(r.URL.Query(), "ttl", time.Hour, time.Minute, 7*24*time.Hour)
	if err != nil {
		s.fail(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, s.Access.NewSession(req.stream, ttl, s.Now()))
}

// withSession appends a session query to a URI.
func withSession(uri, session string) string {
	if session == "" {
		return uri
	}
	if strings.Contains(uri, "?") {
		return uri + "&" + session
	}
	return uri + "?" + session
}

// itoa formats a number.
func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
