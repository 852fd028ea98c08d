package sensor

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

var decodeCases = []struct {
	name string
	msg  string
	ts   Timestamp
	want time.Time // zero: the receive time
	err  error
}{
	{"receive time", `{"temp":21.5}`, Timestamp{}, time.Time{}, nil},
	{"rfc3339", `{"temp":1,"ts":"2026-11-27T10:00:00.123Z"}`, Timestamp{Field: "ts"}, time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC), nil},
	{"epoch s", `{"ts":1795780800}`, Timestamp{Field: "ts"}, time.Unix(1795780800, 0), nil},
	{"epoch s float", `{"ts":1795780800.5}`, Timestamp{Field: "ts", Format: FormatSeconds}, time.Unix(1795780800, 5e8), nil},
	{"epoch ms auto", `{"ts":1795780800123}`, Timestamp{Field: "ts"}, time.UnixMilli(1795780800123), nil},
	{"epoch us", `{"ts":1795780800123456}`, Timestamp{Field: "ts", Format: FormatMicros}, time.UnixMicro(1795780800123456), nil},
	{"epoch ns auto", `{"ts":1795780800123456789}`, Timestamp{Field: "ts"}, time.Unix(0, 1795780800123456789), nil},
	{"ms as a string", `{"ts":"1795780800123"}`, Timestamp{Field: "ts", Format: FormatMillis}, time.UnixMilli(1795780800123), nil},
	{"nested", `{"meta":{"time":"2026-11-27T10:00:00Z"},"v":3}`, Timestamp{Field: "meta.time"}, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), nil},
	{"missing field", `{"temp":1}`, Timestamp{Field: "ts"}, time.Time{}, ErrMissingTimestamp},
	{"not an object", `[1,2]`, Timestamp{Field: "ts"}, time.Time{}, ErrMissingTimestamp},
	{"wrong unit", `{"ts":1795780800}`, Timestamp{Field: "ts", Format: FormatNanos}, time.Time{}, ErrBadTimestamp},
	{"garbage time", `{"ts":"yesterday"}`, Timestamp{Field: "ts"}, time.Time{}, ErrBadTimestamp},
	{"number for rfc3339", `{"ts":5}`, Timestamp{Field: "ts", Format: FormatRFC3339}, time.Time{}, ErrBadTimestamp},
	{"not json", `{"temp":`, Timestamp{}, time.Time{}, ErrNotJSON},
	{"too large", `{"blob":"` + string(make([]byte, 70)) + `"}`, Timestamp{}, time.Time{}, ErrTooLarge},
}

func TestDecode(t *testing.T) {
	recv := time.Date(2026, 11, 27, 10, 0, 1, 0, time.UTC)
	for _, c := range decodeCases {
		r, err := Decode([]byte(c.msg), c.ts, recv, 64)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			}
			continue
		}
		want := c.want
		if want.IsZero() {
			want = recv
		}
		if err != nil || !r.Time.Equal(want) {
			t.Errorf("%s: %v %v, want %v", c.name, r.Time, err, want)
		}
	}
}

// FuzzDecode: any message decodes or fails cleanly, and a decoded
// reading's stored line reads back the same.
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add(c.msg, c.ts.Field, c.ts.Format)
	}
	recv := time.Date(2026, 11, 27, 10, 0, 1, 0, time.UTC)
	f.Fuzz(func(t *testing.T, msg, field, format string) {
		ts := Timestamp{Field: field, Format: format}
		if ts.Validate() != nil {
			return
		}
		r, err := Decode([]byte(msg), ts, recv, 1<<16)
		if err != nil {
			return
		}
		back, err := ParseLine(AppendLine(nil, &r))
		if err != nil || !back.Time.Equal(r.Time) || string(back.Value) != string(r.Value) {
			t.Fatalf("round trip of %q: %+v %v", msg, back, err)
		}
	})
}

type collected struct {
	start, end time.Time
	late       bool
	readings   []Reading
}

func collect(fr *Fragmenter) *[]collected {
	var out []collected
	fr.Emit = func(f *fragment.Fragment) {
		c := collected{start: f.ProducerStart, end: f.ProducerEnd, late: f.Tags[TagLate] == "true"}
		for _, s := range f.Samples[0] {
			r, err := ParseLine(s.Payload)
			if err != nil {
				panic(err)
			}
			if s.DTS != r.Time.UnixMilli() {
				panic(fmt.Sprintf("DTS %d for a reading at %v", s.DTS, r.Time))
			}
			c.readings = append(c.readings, r)
		}
		out = append(out, c)
	}
	return &out
}

func reading(t time.Time, v int) Reading {
	return Reading{Time: t, Recv: t, Value: json.RawMessage(fmt.Sprint(v))}
}

func TestFragmenter(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) // on the 2 s grid
	fr := &Fragmenter{}
	out := collect(fr)
	now := base
	// readings at 1 kHz for 5 s, arriving 10 ms late, a few out of order
	for i := 0; i < 5000; i++ {
		at := base.Add(time.Duration(i) * time.Millisecond)
		now = at.Add(10 * time.Millisecond)
		r := reading(at, i)
		r.Recv = now
		if i%100 == 50 {
			// swap with the next one: this one comes after it
			next := reading(at.Add(time.Millisecond), i+1)
			next.Recv = now
			fr.Add(next, now)
			fr.Add(r, now)
			i++
		} else {
			fr.Add(r, now)
		}
		fr.Tick(now)
	}
	fr.Add(reading(base.Add(1500*time.Millisecond), 1500), now) // a duplicate, in its open cell? no: closed, late
	fr.Add(reading(base.Add(4500*time.Millisecond), 4500), now) // a duplicate in an open cell
	now = now.Add(5 * time.Second)
	fr.Tick(now)
	fr.Flush()
	var n int
	var inOrder []collected
	for _, c := range *out {
		if c.late {
			if len(c.readings) != 1 || c.readings[0].Time != base.Add(1500*time.Millisecond) || !c.readings[0].Late {
				t.Errorf("late fragment %+v", c)
			}
			continue
		}
		inOrder = append(inOrder, c)
		for i, r := range c.readings {
			if r.Time.Before(c.start) || !r.Time.Before(c.end) {
				t.Errorf("reading at %v outside its fragment [%v, %v)", r.Time, c.start, c.end)
			}
			if i > 0 && r.Time.Before(c.readings[i-1].Time) {
				t.Errorf("out of order in a fragment")
			}
			var v int
			json.Unmarshal(r.Value, &v)
			if v != n {
				t.Fatalf("reading %d, want %d", v, n)
			}
			n++
		}
	}
	if n != 5000 || len(inOrder) != 3 || fr.Stats.Duplicates.Load() != 1 || fr.Stats.Late.Load() != 1 {
		t.Errorf("%d readings in %d fragments, %d duplicates, %d late", n, len(inOrder), fr.Stats.Duplicates.Load(), fr.Stats.Late.Load())
	}
	for i, c := range inOrder {
		if !c.end.Equal(base.Add(time.Duration(i+1) * 2 * time.Second)) {
			t.Errorf("fragment %d ends %v", i, c.end)
		}
	}
	if skew := time.Duration(fr.Stats.SkewNS.Load()); skew != 10*time.Millisecond {
		t.Errorf("skew %v, want 10ms", skew)
	}
}

func TestLimiter(t *testing.T) {
	l := &Limiter{Rate: 100}
	now := time.Unix(1e9, 0)
	n := 0
	for i := 0; i < 1000; i++ { // 1000 at once: a second's worth pass
		if l.Allow(now) {
			n++
		}
	}
	now = now.Add(500 * time.Millisecond)
	for i := 0; i < 1000; i++ {
		if l.Allow(now) {
			n++
		}
	}
	if n != 150 {
		t.Errorf("%d allowed, want 150", n)
	}
}

// TestFragmenterLate: readings far behind go into late fragments of one
// grid cell each (a range query finds them however old), emitted at most
// once a Period however often Tick runs.
func TestFragmenterLate(t *testing.T) {
	fr := &Fragmenter{Period: time.Second, Window: time.Second}
	out := collect(fr)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	fr.Tick(now)
	// a device back online after 9 minutes sends them all
	for i := 0; i < 540; i++ {
		fr.Add(reading(now.Add(-9*time.Minute+time.Duration(i)*time.Second), i), now)
	}
	for i := 0; i < 10; i++ { // ten Ticks within one Period
		now = now.Add(100 * time.Millisecond)
		fr.Tick(now)
		fr.Add(reading(now.Add(-5*time.Second), 1000+i), now) // a clock 5 s behind
	}
	now = now.Add(time.Second)
	fr.Tick(now)
	late := 0
	for _, c := range *out {
		if !c.late {
			continue
		}
		late++
		if c.end.Sub(c.start) > time.Second || c.start.Truncate(time.Second) != c.end.Add(-time.Nanosecond).Truncate(time.Second) {
			t.Errorf("late fragment [%v, %v) spans more than its cell", c.start, c.end)
		}
	}
	// 540 cells of the backlog, plus the behind-clock readings: 10 in 2
	// cells, emitted in two goes at most
	if late > 539+4 || fr.Stats.Late.Load() != 549 { // the last of the backlog is within the window
		t.Errorf("%d late fragments for %d late readings", late, fr.Stats.Late.Load())
	}
}

// TestFragmenterAligned: with boundaries from a camera (irregular
// fragment ends), sensor fragments end where the camera's do; while none
// come for Fallback, the grid takes over.
func TestFragmenterAligned(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	fr := &Fragmenter{Aligned: true, Period: time.Second, Window: 500 * time.Millisecond, Fallback: 5 * time.Second}
	out := collect(fr)
	now := base
	fr.Tick(now)
	ends := []time.Duration{1900 * time.Millisecond, 4100 * time.Millisecond, 6033 * time.Millisecond}
	next := 0
	for i := 0; i < 8000; i++ { // 8 s at 1 kHz
		now = base.Add(time.Duration(i) * time.Millisecond)
		fr.Add(reading(now, i), now)
		if next < len(ends) && now.Sub(base) >= ends[next]+100*time.Millisecond {
			fr.Cut(base.Add(ends[next]), now) // the camera's fragment lands 100 ms after its end
			next++
		}
		fr.Tick(now)
	}
	// no boundary after 6.033 s: the grid takes over 5 s later
	for i := 0; i < 60; i++ {
		now = now.Add(100 * time.Millisecond)
		fr.Tick(now)
	}
	var got []time.Duration
	n := 0
	for _, c := range *out {
		if c.late {
			t.Errorf("late fragment %+v", c)
		}
		got = append(got, c.end.Sub(base))
		for _, r := range c.readings {
			if r.Time.Before(c.start) || !r.Time.Before(c.end) {
				t.Fatalf("reading at %v outside [%v, %v)", r.Time, c.start, c.end)
			}
			n++
		}
	}
	want := []time.Duration{1900 * time.Millisecond, 4100 * time.Millisecond, 6033 * time.Millisecond, 7 * time.Second, 8 * time.Second}
	if n != 8000 || !slicesEqual(got, want) {
		t.Errorf("%d readings; fragments end at %v, want %v", n, got, want)
	}
}

func slicesEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNDJSON: a stored fragment's NDJSON is its readings' stored lines,
// one a line, as the readings parsed from it give them; a block that is
// not a stored line makes it unreadable.
func TestNDJSON(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var samples []fragment.Sample
	for i := range 50 {
		r := Reading{Time: start.Add(time.Duration(i) * 10 * time.Millisecond), Recv: start, Topic: "plant/a",
			Value: []byte(fmt.Sprintf(`{"n":%d,"s":"a\nb"}`, i))}
		samples = append(samples, fragment.Sample{DTS: int64(i * 10), Duration: 10, Keyframe: true, Payload: AppendLine(nil, &r)})
	}
	mkvOf := func(ss []fragment.Sample) []byte {
		f := &fragment.Fragment{TrackConfigs: []fragment.Track{Track}, Samples: [][]fragment.Sample{ss}}
		f.Metadata = fragment.Metadata{Stream: "env", Number: 1, ProducerStart: start, ProducerEnd: start.Add(time.Second), Duration: time.Second}
		b, err := fragment.AppendMKV(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mkv := mkvOf(samples)
	got, err := NDJSON(mkv)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ReadFragment(mkv)
	if err != nil || len(rs) != 50 {
		t.Fatalf("%d readings, %v", len(rs), err)
	}
	if want := AppendNDJSON(nil, rs); string(got) != string(want) {
		t.Fatalf("NDJSON\n%s\nwant\n%s", got, want)
	}
	bad := append([]fragment.Sample(nil), samples...)
	bad[3].Payload = []byte("not a line\n")
	if _, err := NDJSON(mkvOf(bad)); !errors.Is(err, ErrBadFragment) {
		t.Fatalf("a bad block: %v", err)
	}
}
