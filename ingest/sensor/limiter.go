package sensor

import (
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
func (l *Limiter) Allow(now time.Time) bool {
	if l.Rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = l.Rate
	} else if d := now.Sub(l.last).Seconds(); d > 0 {
		l.tokens = min(l.Rate, l.tokens+d*l.Rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
