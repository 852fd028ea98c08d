package ingest

import (
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

var t0 = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

func TestClockReceiveThenRTCPSlew(t *testing.T) {
	var c Clock
	// 10 s on the receive clock, media starting at 0
	var prev int64
	for ms := int64(0); ms <= 10000; ms += 40 {
		media := ms * int64(time.Millisecond)
		wall, ev := c.Map(media, t0.Add(time.Duration(media)), time.Time{}, false)
		if ev.Switched || ev.Stepped {
			t.Fatalf("event %+v on the receive clock", ev)
		}
		if wall < prev {
			t.Fatal("time went backwards")
		}
		prev = wall
	}
	if c.Source != fragment.ClockReceive {
		t.Fatalf("source %s", c.Source)
	}
	// RTCP says the camera is 500 ms ahead: slewed at 5 %, never a jump
	switched := false
	var last int64
	for ms := int64(10040); ms <= 30000; ms += 40 {
		media := ms * int64(time.Millisecond)
		recv := t0.Add(time.Duration(media))
		wall, ev := c.Map(media, recv, recv.Add(500*time.Millisecond), true)
		if ev.Switched {
			switched = true
			if ev.Diff != 500*time.Millisecond || ev.From != fragment.ClockReceive || ev.To != fragment.ClockRTCP {
				t.Errorf("switch event %+v", ev)
			}
		}
		if ev.Stepped {
			t.Fatal("a 500 ms difference was stepped")
		}
		if d := wall - prev; d < 0 || d > int64(42*time.Millisecond) {
			t.Fatalf("at %d ms: advanced %v for 40 ms of media", ms, time.Duration(d))
		}
		prev = wall
		last = wall - recv.UnixNano()
	}
	if !switched || c.Source != fragment.ClockRTCP {
		t.Fatal("no switch to RTCP")
	}
	if time.Duration(last) != 500*time.Millisecond {
		t.Errorf("after 20 s the offset is %v, want 500ms", time.Duration(last))
	}
}

func TestClockStepsLargeDifference(t *testing.T) {
	var c Clock
	c.Map(0, t0, time.Time{}, false)
	wall, ev := c.Map(int64(40*time.Millisecond), t0.Add(40*time.Millisecond), t0.Add(5*time.Second), true)
	if !ev.Switched || !ev.Stepped || ev.Diff < 4*time.Second {
		t.Fatalf("event %+v", ev)
	}
	if got := time.Unix(0, wall).Sub(t0); got != 5*time.Second {
		t.Errorf("after the step: %v", got)
	}
}

func TestClockRefusesFarOffCamera(t *testing.T) {
	var c Clock
	// camera clock never set: year 2000
	y2k := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	wall, _ := c.Map(0, t0, y2k, true)
	if c.Source != fragment.ClockReceive || wall != t0.UnixNano() || c.Untrusted == 0 {
		t.Fatalf("source %s wall %v untrusted %v", c.Source, time.Unix(0, wall), c.Untrusted)
	}
}

func TestClockFollowsDrift(t *testing.T) {
	var c Clock
	// the camera's media clock runs 0.1 % slow; transit jitters 0-20 ms
	var wall int64
	for ms := int64(0); ms <= 120000; ms += 20 {
		media := ms * int64(time.Millisecond)
		real := time.Duration(float64(media) * 1.001)
		jitter := time.Duration((ms*7919)%20) * time.Millisecond
		wall, _ = c.Map(media, t0.Add(real+jitter), time.Time{}, false)
	}
	real := t0.Add(120120 * time.Millisecond)
	if d := time.Unix(0, wall).Sub(real); d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("after 2 min of 0.1%% drift the mapping is %v off", d)
	}
}
