package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2}
	want := []time.Duration{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Next()
		if d < w*8/10 || d > w*12/10 {
			t.Errorf("attempt %d: %v, want %v ± 20%%", i, d, w)
		}
	}
	b.Reset()
	if d := b.Next(); d > 600*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

type states struct {
	mu sync.Mutex
	s  []string
	e  []error
}

func (s *states) on(state string, err error, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s = append(s.s, state)
	s.e = append(s.e, err)
}

func TestSupervisorPermanentStops(t *testing.T) {
	var st states
	calls := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sup := &Supervisor{
		Session: func(context.Context, func()) error { calls++; return Permanent(errors.New("bad URL")) },
		OnState: st.on,
	}
	go func() { sup.Run(ctx); close(done) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	if calls != 1 {
		t.Errorf("%d attempts after a permanent error", calls)
	}
	if st.s[1] != StateFailed || st.e[1].Error() != "bad URL (not retried)" {
		t.Errorf("states %v errors %v", st.s, st.e)
	}
}

func TestSupervisorRetriesAndProbes(t *testing.T) {
	var back atomic.Bool
	var attempts atomic.Int32
	var st states
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connected := make(chan time.Time, 1)
	sup := &Supervisor{
		Backoff: Backoff{Min: 5 * time.Second, Max: 30 * time.Second},
		Session: func(ctx context.Context, started func()) error {
			attempts.Add(1)
			if !back.Load() {
				return fmt.Errorf("%w: connection refused", ErrUnreachable)
			}
			started()
			connected <- time.Now()
			<-ctx.Done()
			return nil
		},
		Probe:         func(context.Context) bool { return back.Load() },
		ProbeInterval: 20 * time.Millisecond,
		OnState:       st.on,
	}
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	time.Sleep(100 * time.Millisecond)
	returned := time.Now()
	back.Store(true)
	select {
	case at := <-connected:
		if d := at.Sub(returned); d > 500*time.Millisecond {
			t.Errorf("reconnected %v after the producer returned (backoff was 5 s)", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the probe did not cut the backoff short")
	}
	cancel()
	<-done
	if attempts.Load() != 2 {
		t.Errorf("%d attempts", attempts.Load())
	}
}

func TestSupervisorHealthyResetsBackoff(t *testing.T) {
	now := time.Unix(0, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	var delays []time.Duration
	n := 0
	sup := &Supervisor{
		Now:     clock,
		Backoff: Backoff{Min: time.Millisecond, Max: time.Second, Jitter: 0.01},
		Session: func(ctx context.Context, started func()) error {
			n++
			switch {
			case n <= 3:
				return errors.New("refused")
			case n == 4:
				started()
				advance(2 * time.Minute) // a healthy session
				return errors.New("camera rebooted")
			default:
				cancel()
				return errors.New("stop")
			}
		},
		OnState: func(s string, _ error, d time.Duration) {
			if s == StateBackoff {
				delays = append(delays, d)
			}
		},
	}
	sup.Run(ctx)
	if len(delays) < 4 || delays[3] > delays[0]*2 {
		t.Errorf("delays %v: not reset after a healthy session", delays)
	}
}
