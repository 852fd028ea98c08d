// Package sensor ingests sensor readings (MQTT subscriptions, HTTP pushes)
// as time-aligned data streams beside the video: each reading gets a
// producer time (from a field of its JSON, or its receive time), readings
// are put in order within a reorder window, and a Fragmenter cuts them on
// a wall-clock grid into fragments of one JSON data track, which the
// agent archives like video fragments (MKV, numbered, indexed). Readings
// that come after their fragment closed are kept in a fragment of their
// own flagged late, never dropped silently.
package sensor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors of a reading.
var (
	ErrNotJSON          = errors.New("reading is not JSON")
	ErrMissingTimestamp = errors.New("reading has no timestamp field")
	ErrBadTimestamp     = errors.New("bad timestamp")
	ErrTooLarge         = errors.New("reading too large")
	ErrRateLimited      = errors.New("reading rate over the stream's limit")
)

// Timestamp formats.
const (
	FormatAuto    = "auto" // RFC 3339 strings; numbers by magnitude (s, ms, µs, ns)
	FormatRFC3339 = "rfc3339"
	FormatSeconds = "s"
	FormatMillis  = "ms"
	FormatMicros  = "us"
	FormatNanos   = "ns"
)

// Timestamp says where a reading's producer time is.
type Timestamp struct {
	// Field is the path of the timestamp in the reading's JSON object,
	// dot-separated ("ts", "meta.time"). Empty: the receive time.
	Field string `yaml:"field" json:"field,omitempty"`
	// Format of the field: auto, rfc3339, s, ms, us or ns. Default auto.
	Format string `yaml:"format" json:"format,omitempty"`
}

// Validate checks the format.
func (ts Timestamp) Validate() error {
	switch ts.Format {
	case "", FormatAuto, FormatRFC3339, FormatSeconds, FormatMillis, FormatMicros, FormatNanos:
		return nil
	}
	return fmt.Errorf("format %q is not one of auto, rfc3339, s, ms, us, ns", ts.Format)
}

// Time returns the producer time of a reading received at recv.
func (ts Timestamp) Time(raw []byte, recv time.Time) (time.Time, error) {
	if ts.Field == "" {
		return recv, nil
	}
	v, err := lookup(raw, ts.Field)
	if err != nil {
		return time.Time{}, err
	}
	return parseTime(v, ts.Format)
}

// lookup finds the value at a dot-separated path of a JSON object.
func lookup(raw []byte, path string) (json.RawMessage, error) {
	cur := json.RawMessage(raw)
	for _, key := range strings.Split(path, ".") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("%w %q: not an object", ErrMissingTimestamp, path)
		}
		v, ok := obj[key]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrMissingTimestamp, path)
		}
		cur = v
	}
	return cur, nil
}

// earliest and latest bound the timestamps taken (1990 to 2200): a value
// outside is a unit mistake, not a time.
var earliest, latest = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

func parseTime(v json.RawMessage, format string) (time.Time, error) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, fmt.Errorf("%w: %v", ErrBadTimestamp, err)
		}
		if format == "" || format == FormatAuto || format == FormatRFC3339 {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return time.Time{}, fmt.Errorf("%w: %q is not RFC 3339", ErrBadTimestamp, s)
			}
			return check(t)
		}
		v = []byte(s) // an epoch number written as a string
	} else if format == FormatRFC3339 {
		return time.Time{}, fmt.Errorf("%w: %s is not an RFC 3339 string", ErrBadTimestamp, v)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("%w: %q is not a number", ErrBadTimestamp, v)
	}
	unit := format
	if unit == "" || unit == FormatAuto {
		switch a := math.Abs(f); {
		case a < 1e11:
			unit = FormatSeconds
		case a < 1e14:
			unit = FormatMillis
		case a < 1e17:
			unit = FormatMicros
		default:
			unit = FormatNanos
		}
	}
	mult := map[string]int64{FormatSeconds: 1e9, FormatMillis: 1e6, FormatMicros: 1e3, FormatNanos: 1}[unit]
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		// integers exactly: a float64 has no room for nanoseconds
		if n > math.MaxInt64/mult || n < math.MinInt64/mult {
			return time.Time{}, fmt.Errorf("%w: %s out of range", ErrBadTimestamp, v)
		}
		return check(time.Unix(0, n*mult))
	}
	ns := f * float64(mult)
	if ns > math.MaxInt64 || ns < math.MinInt64 {
		return time.Time{}, fmt.Errorf("%w: %s out of range", ErrBadTimestamp, v)
	}
	return check(time.Unix(0, int64(ns)))
}

func check(t time.Time) (time.Time, error) {
	if t.Before(earliest) || t.After(latest) {
		return time.Time{}, fmt.Errorf("%w: %s is outside 1990-2200 (wrong unit?)", ErrBadTimestamp, t.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// Reading is one sensor reading.
type Reading struct {
	// Time is the producer time; Recv when the agent got it.
	Time, Recv time.Time
	// Value is the reading's JSON, as received (compacted).
	Value json.RawMessage
	// Topic is where it came from (an MQTT topic), when known.
	Topic string
	// Late is set on readings that came after their fragment closed.
	Late bool
	// Seq is the agent's journal number of the reading (0: none); not
	// stored with it.
	Seq uint64
}

// line is a reading as stored (an MKV block, a line of NDJSON).
type line struct {
	Time  time.Time       `json:"time"`
	Recv  time.Time       `json:"recv"`
	Topic string          `json:"topic,omitempty"`
	Late  bool            `json:"late,omitempty"`
	Value json.RawMessage `json:"value"`
}

// AppendLine appends the stored form of r: one JSON object, no newline.
func AppendLine(dst []byte, r *Reading) []byte {
	b, err := json.Marshal(line{Time: r.Time.UTC(), Recv: r.Recv.UTC(), Topic: r.Topic, Late: r.Late, Value: r.Value})
	if err != nil {
		return dst // Value was compacted valid JSON: cannot happen
	}
	return append(dst, b...)
}

// ParseLine reads what AppendLine wrote.
func ParseLine(b []byte) (Reading, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return Reading{}, err
	}
	return Reading{Time: l.Time, Recv: l.Recv, Topic: l.Topic, Late: l.Late, Value: l.Value}, nil
}

// Decode turns a message into a reading: its JSON is checked and
// compacted, and its time taken per ts. max bounds its size (0: no bound).
func Decode(msg []byte, ts Timestamp, recv time.Time, max int) (Reading, error) {
	if max > 0 && len(msg) > max {
		return Reading{}, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(msg), max)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, msg); err != nil {
		return Reading{}, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	t, err := ts.Time(buf.Bytes(), recv)
	if err != nil {
		return Reading{}, err
	}
	return Reading{Time: t, Recv: recv, Value: buf.Bytes()}, nil
}
