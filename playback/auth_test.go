package playback

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSignPath: a path signature opens that path alone, for GET and HEAD,
// until it expires.
func TestSignPath(t *testing.T) {
	a := &Access{SigningKey: []byte(strings.Repeat("k", 32))}
	now := time.Unix(1_700_000_000, 0)
	path := "/v1/streams/door/hls/f/2026/11/27/05/1795000000000-00000000000000000007.m4s"
	q := a.SignPath(path, time.Hour, now)
	tampered := q[:len(q)-1] + "0"
	if strings.HasSuffix(q, "0") {
		tampered = q[:len(q)-1] + "1"
	}
	cases := []struct {
		name, method, target string
		at                   time.Time
		err                  error
	}{
		{"the path", "GET", path + "?" + q, now, nil},
		{"HEAD", "HEAD", path + "?" + q, now, nil},
		{"another fragment", "GET", strings.Replace(path, "07.m4s", "08.m4s", 1) + "?" + q, now, ErrForbidden},
		{"the stream's playlist", "GET", "/v1/streams/door/hls/media.m3u8?" + q, now, ErrForbidden},
		{"expired", "GET", path + "?" + q, now.Add(2 * time.Hour), ErrForbidden},
		{"POST", "POST", path + "?" + q, now, ErrForbidden},
		{"tampered", "GET", path + "?" + tampered, now, ErrForbidden},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		if _, err := a.check(r, "door", c.at); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}
