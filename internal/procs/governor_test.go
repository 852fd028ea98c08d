package procs

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	g := &Governor{Max: 4, Up: 0.7, Down: 0.5, Calm: 3}
	calm := 0
	steps := []struct {
		use  float64
		cur  int
		want int
	}{
		{0.2, 1, 1},  // light
		{0.8, 1, 2},  // busy: up
		{1.5, 2, 3},  // busy: up
		{3.9, 4, 4},  // at Max
		{0.3, 3, 3},  // quiet 1
		{0.3, 3, 3},  // quiet 2
		{0.3, 3, 2},  // quiet 3: down
		{0.45, 2, 2}, // not below 0.5 of one P: stays
		{0.1, 2, 2},  // quiet 1
		{1.2, 2, 2},  // busy again, resets the count
		{0.1, 2, 2},  // quiet 1
		{0.1, 2, 2},  // quiet 2
		{0.1, 2, 1},  // quiet 3: down
	}
	for i, s := range steps {
		if got := g.next(s.use, s.cur, &calm); got != s.want {
			t.Fatalf("step %d: next(%v, %d) = %d, want %d", i, s.use, s.cur, got, s.want)
		}
	}
}

// TestRun drives the governor with a fake CPU clock: busy raises the Ps,
// quiet lowers them, and the original GOMAXPROCS is back after Run.
func TestRun(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	var mu sync.Mutex
	var cpu time.Duration
	rate := 0.0 // cores
	last := time.Now()
	var seen []int
	g := &Governor{Max: 2, Interval: 10 * time.Millisecond, Calm: 2,
		cpu: func() time.Duration {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			cpu += time.Duration(rate * float64(now.Sub(last)))
			last = now
			return cpu
		},
		OnChange: func(n int) { mu.Lock(); seen = append(seen, n); mu.Unlock() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	wait := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("GOMAXPROCS %d, want %d", runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(1)
	mu.Lock()
	rate = 0.95
	mu.Unlock()
	wait(2)
	mu.Lock()
	rate = 0.1
	mu.Unlock()
	wait(1)
	cancel()
	<-done
	if runtime.GOMAXPROCS(0) != orig {
		t.Errorf("GOMAXPROCS %d after Run, want the default %d", runtime.GOMAXPROCS(0), orig)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 || seen[0] != 1 {
		t.Errorf("changes %v", seen)
	}
}
