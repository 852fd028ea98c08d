package sensor

import (
	"context"
	"sync"
	"time"
)

// Limiter bounds a stream's readings per second: a token bucket holding
// one second's worth. Safe for concurrent use.
type Limiter struct {
	// Rate is the readings per second allowed; 0 allows everything.
	Rate float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// Allow takes one token at now and reports whether there was one.
func (l *Limiter) Allow(now time.Time) bool { return l.AllowN(now, 1) }

// AllowN takes n tokens at now, all or none. A batch larger than a
// second's worth passes when the bucket is full, leaving it in debt.
func (l *Limiter) AllowN(now time.Time, n int) bool {
	if l.Rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	need := min(float64(n), l.Rate)
	if l.tokens < need {
		return false
	}
	l.tokens -= float64(n)
	return true
}

func (l *Limiter) refill(now time.Time) {
	if l.last.IsZero() {
		l.tokens = l.Rate
	} else if d := now.Sub(l.last).Seconds(); d > 0 {
		l.tokens = min(l.Rate, l.tokens+d*l.Rate)
	}
	if now.After(l.last) {
		l.last = now
	}
}

// Wait takes one token, waiting for it: a source that cannot refuse (an
// MQTT subscription, whose messages are acknowledged) is slowed instead.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		if l.Allow(time.Now()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(float64(time.Second) / max(l.Rate, 1))):
		}
	}
}
