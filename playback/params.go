package playback

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrBadParam is wrapped by every error about a request parameter; the
// message names the parameter.
var ErrBadParam = errors.New("bad parameter")

func badParam(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrBadParam, name, fmt.Sprintf(format, args...))
}

// ParseTime reads a time given as RFC 3339 or as decimal Unix seconds.
func ParseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(s) || s < 0 || s > 1e11 {
		return time.Time{}, badParam(name, "%q is neither an RFC 3339 time nor decimal Unix seconds", v)
	}
	return time.UnixMilli(int64(s*1000 + 0.5)).UTC(), nil
}

// timeRange reads the start and end parameters.
func timeRange(q url.Values) (time.Time, time.Time, error) {
	start, err := ParseTime("start", q.Get("start"))
	if err != nil {
		return start, start, err
	}
	end, err := ParseTime("end", q.Get("end"))
	if err != nil {
		return start, end, err
	}
	if !end.IsZero() && !start.IsZero() && end.Before(start) {
		return start, end, badParam("end", "%s is before start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	return start, end, nil
}

// recentRange reads start and end, defaulting to the hour before end and
// end to now; the range must be positive and at most max.
func recentRange(q url.Values, now time.Time, max time.Duration) (time.Time, time.Time, error) {
	start, end, err := timeRange(q)
	if err != nil {
		return start, end, err
	}
	if end.IsZero() {
		end = now.UTC()
	}
	if start.IsZero() {
		start = end.Add(-time.Hour)
	}
	if !end.After(start) || end.Sub(start) > max {
		return start, end, badParam("start", "the range must be positive and at most %v", max)
	}
	return start, end, nil
}

// intParam reads an integer parameter within [min, max], def when absent.
func intParam(q url.Values, name string, def, min, max int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, badParam(name, "%q is not a whole number from %d to %d", v, min, max)
	}
	return n, nil
}

// durationParam reads a Go duration ("10m") or seconds ("600").
func durationParam(q url.Values, name string, def, min, max time.Duration) (time.Duration, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s, err2 := strconv.ParseFloat(v, 64)
		if err2 != nil || math.IsNaN(s) {
			return 0, badParam(name, "%q is not a duration such as 10m or 600", v)
		}
		d = time.Duration(s * float64(time.Second))
	}
	if d < min || d > max {
		return 0, badParam(name, "%v is outside %v to %v", d, min, max)
	}
	return d, nil
}

// Start selectors of GetMedia.
const (
	SelectNow      = "now"
	SelectEarliest = "earliest"
	SelectFragment = "fragment"
	SelectProducer = "producer"
	SelectServer   = "server"
	SelectToken    = "token"
)

// StartSelector is where a GetMedia stream starts.
type StartSelector struct {
	Kind   string
	Number uint64    // fragment:N
	Time   time.Time // producer:T, server:T
	Token  string    // token:X (a continuation token)
}

// ParseStartSelector reads now, earliest, fragment:N, producer:T, server:T
// or token:X (T as in ParseTime).
func ParseStartSelector(v string) (StartSelector, error) {
	kind, arg, _ := strings.Cut(v, ":")
	s := StartSelector{Kind: kind}
	switch kind {
	case "", SelectNow:
		s.Kind = SelectNow
		if arg != "" {
			return s, badParam("start", "now takes no value")
		}
	case SelectEarliest:
		if arg != "" {
			return s, badParam("start", "earliest takes no value")
		}
	case SelectFragment:
		n, err := strconv.ParseUint(arg, 10, 64)
		if err != nil || n == 0 {
			return s, badParam("start", "fragment:%q is not a fragment number", arg)
		}
		s.Number = n
	case SelectProducer, SelectServer:
		t, err := ParseTime("start", arg)
		if err != nil || t.IsZero() {
			return s, badParam("start", "%s:%q is not a time", kind, arg)
		}
		s.Time = t
	case SelectToken:
		if arg == "" || len(arg) > 4096 {
			return s, badParam("start", "token: missing or too long")
		}
		s.Token = arg
	default:
		return s, badParam("start", "%q is not one of now, earliest, fragment:N, producer:T, server:T, token:X", v)
	}
	return s, nil
}
