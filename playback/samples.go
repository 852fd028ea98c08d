package playback

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest/sensor"
)

// Limits of GET …/samples.
const (
	defaultSamplesLimit = 10000
	maxSamplesLimit     = 100000
	maxSamplesRange     = 7 * 24 * time.Hour
)

// samplesCursor is where a page of readings stopped: after reading index
// of fragment number, which starts at start.
type samplesCursor struct {
	start  time.Time
	number uint64
	index  int
}

func parseCursor(s string) (samplesCursor, error) {
	parts := strings.Split(s, "_")
	if len(parts) != 3 {
		return samplesCursor{}, badParam("after", "%q is not a cursor from a Link header", s)
	}
	ns, err1 := strconv.ParseInt(parts[0], 10, 64)
	num, err2 := strconv.ParseUint(parts[1], 10, 64)
	idx, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || idx < -1 {
		return samplesCursor{}, badParam("after", "%q is not a cursor from a Link header", s)
	}
	return samplesCursor{time.Unix(0, ns), num, idx}, nil
}

func (c samplesCursor) String() string {
	return fmt.Sprintf("%d_%d_%d", c.start.UnixNano(), c.number, c.index)
}

// before reports whether reading index of fragment m comes at or before
// the cursor (was on an earlier page). Fragments are listed by their start
// in milliseconds (their keys), then number: so is the cursor compared.
func (c samplesCursor) before(m *fragment.Metadata, index int) bool {
	ms, cms := m.ProducerStart.UnixMilli(), c.start.UnixMilli()
	switch {
	case ms < cms:
		return true
	case ms > cms:
		return false
	case m.Number != c.number:
		return m.Number < c.number
	}
	return index <= c.index
}

// maxSamplesPage bounds the bytes of one page.
const maxSamplesPage = 16 << 20

// samples serves GET /v1/streams/{s}/samples?start&end&limit&after: the
// readings of a sensor stream whose time is in [start, end) (default the
// last hour, at most 7 days), at most one per step when step is set (a
// duration, for charts), as NDJSON, one stored reading a line
// ({"time","recv","topic","late","value"}), in fragment order (late
// readings where their late fragment's time range starts). At most limit
// (default 10000, at most 100000) a page; a Link header (rel="next") gives
// the next page.
func (s *Server) samples(w http.ResponseWriter, r *http.Request, req request) {
	q := r.URL.Query()
	start, end, err := recentRange(q, s.Now(), maxSamplesRange)
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, err := intParam(q, "limit", defaultSamplesLimit, 1, maxSamplesLimit)
	if err != nil {
		s.fail(w, err)
		return
	}
	// step thins the readings out for charts: at most one per step
	var step int64
	if v := q.Get("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.fail(w, badParam("step", "%q is not a duration such as 500ms", v))
			return
		}
		step = int64(d)
	}
	lastBucket := int64(-1 << 63)
	var cur *samplesCursor
	if a := q.Get("after"); a != "" {
		c, err := parseCursor(a)
		if err != nil {
			s.fail(w, err)
			return
		}
		cur = &c
	}
	if _, err := s.info(r.Context(), req.stream); err != nil {
		s.fail(w, err)
		return
	}
	listFrom := start
	if cur != nil && cur.start.After(start) {
		listFrom = cur.start.Truncate(time.Millisecond)
	}
	var out []byte
	n := 0
	var next *samplesCursor
	err = sensor.Each(r.Context(), s.Store, s.Layout, req.stream, listFrom, end, nil, func(m *fragment.Metadata, rs []sensor.Reading, err error) error {
		if errors.Is(err, sensor.ErrBadFragment) {
			s.Logger.Warn("sensor fragment", "key", m.Key, "err", err)
			return nil
		}
		if err != nil {
			return err
		}
		for j := range rs {
			if (cur != nil && cur.before(m, j)) || rs[j].Time.Before(start) || !rs[j].Time.Before(end) {
				continue
			}
			if step > 0 {
				b := rs[j].Time.UnixNano() / step
				if b == lastBucket {
					continue
				}
				lastBucket = b
			}
			if n == limit || len(out) >= maxSamplesPage {
				next = &samplesCursor{m.ProducerStart, m.Number, j - 1}
				return errPageFull
			}
			out = sensor.AppendLine(out, &rs[j])
			out = append(out, '\n')
			n++
		}
		return nil
	})
	if err != nil && err != errPageFull {
		s.fail(w, err) // nothing is written before the page is whole
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Tributary-Readings", strconv.Itoa(n))
	if next != nil {
		nq := url.Values{}
		nq.Set("start", start.UTC().Format(time.RFC3339Nano))
		nq.Set("end", end.UTC().Format(time.RFC3339Nano))
		nq.Set("limit", strconv.Itoa(limit))
		nq.Set("after", next.String())
		if v := q.Get("step"); v != "" {
			nq.Set("step", v)
		}
		link := r.URL.Path + "?" + nq.Encode()
		if req.session != "" {
			link += "&" + req.session // a signed session reads the next page too
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, link))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// errPageFull ends the reading of a full page.
var errPageFull = errors.New("page full")
