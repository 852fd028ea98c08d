package playback

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

var selectorCases = []struct {
	in   string
	ok   bool
	kind string
}{
	{"", true, SelectNow}, {"now", true, SelectNow}, {"earliest", true, SelectEarliest},
	{"fragment:42", true, SelectFragment}, {"producer:2026-11-27T03:00:00Z", true, SelectProducer},
	{"server:1795748400.5", true, SelectServer}, {"token:abc", true, SelectToken},
	{"fragment:0", false, ""}, {"fragment:-1", false, ""}, {"fragment:x", false, ""}, {"producer:yesterday", false, ""},
	{"later", false, ""}, {"now:1", false, ""}, {"token:", false, ""}, {"server:1e300", false, ""}, {"producer:NaN", false, ""},
}

func TestParseStartSelector(t *testing.T) {
	for _, c := range selectorCases {
		s, err := ParseStartSelector(c.in)
		if (err == nil) != c.ok || (c.ok && s.Kind != c.kind) {
			t.Errorf("%q: %+v %v", c.in, s, err)
		}
		if err != nil && !errors.Is(err, ErrBadParam) {
			t.Errorf("%q: error %v does not wrap ErrBadParam", c.in, err)
		}
	}
	s, _ := ParseStartSelector("server:1795748400.5")
	if !s.Time.Equal(time.UnixMilli(1795748400500)) {
		t.Errorf("server time %v", s.Time)
	}
}

func TestTimeRange(t *testing.T) {
	if _, _, err := timeRange(url.Values{"start": {"2026-11-27T03:00:00Z"}, "end": {"2026-11-27T02:00:00Z"}}); err == nil {
		t.Error("end before start accepted")
	}
	if _, _, err := timeRange(url.Values{"start": {"soon"}}); err == nil || !errors.Is(err, ErrBadParam) {
		t.Errorf("bad start: %v", err)
	}
	if _, err := intParam(url.Values{"limit": {"5000"}}, "limit", 100, 1, 1000); err == nil {
		t.Error("limit 5000 accepted")
	}
	if d, err := durationParam(url.Values{"ttl": {"600"}}, "ttl", 0, time.Second, time.Hour); err != nil || d != 10*time.Minute {
		t.Errorf("ttl %v %v", d, err)
	}
}

func FuzzParams(f *testing.F) {
	for _, c := range selectorCases {
		f.Add(c.in, "2026-11-27T03:00:00Z", "1795748400", "10m")
	}
	f.Fuzz(func(t *testing.T, sel, start, end, ttl string) {
		if s, err := ParseStartSelector(sel); err == nil && s.Kind == "" {
			t.Fatal("no kind")
		}
		a, b, err := timeRange(url.Values{"start": {start}, "end": {end}})
		if err == nil && !a.IsZero() && !b.IsZero() && b.Before(a) {
			t.Fatal("end before start accepted")
		}
		_, _ = durationParam(url.Values{"ttl": {ttl}}, "ttl", 0, time.Second, time.Hour)
	})
}
