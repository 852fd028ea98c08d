package ingest

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Supervisor states.
const (
	StateConnecting = "connecting"
	StateStreaming  = "streaming"
	StateBackoff    = "backoff"
	StateFailed     = "failed"
	StateStopped    = "stopped"
)

// ErrPermanent marks an error that retrying cannot fix (a URL of the wrong
// scheme, say): the Supervisor stops and reports StateFailed.
var ErrPermanent = errors.New("permanent error")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds while its
// message stays err's, with " (not retried)" appended.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() + " (not retried)" }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// ErrUnreachable marks a failure to reach the producer at all (connection
// refused, no route): the Supervisor may probe for its return instead of
// waiting out the whole backoff.
var ErrUnreachable = errors.New("producer unreachable")

// Backoff is an exponential backoff with jitter.
type Backoff struct {
	// Min is the first delay. Default 500 ms.
	Min time.Duration
	// Max is the largest delay. Default 30 s.
	Max time.Duration
	// Jitter is the fraction of each delay that is randomised. Default 0.2.
	Jitter float64
	// HealthyAfter is how long a session must last for the delay to reset
	// to Min. Default 1 min.
	HealthyAfter time.Duration

	attempt int
}

func (b *Backoff) defaults() {
	if b.Min <= 0 {
		b.Min = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Jitter <= 0 {
		b.Jitter = 0.2
	}
	if b.HealthyAfter <= 0 {
		b.HealthyAfter = time.Minute
	}
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	b.defaults()
	d := b.Min << min(b.attempt, 20)
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	b.attempt++
	j := time.Duration((rand.Float64()*2 - 1) * b.Jitter * float64(d))
	return max(d+j, b.Min/2)
}

// Reset starts over from Min.
func (b *Backoff) Reset() { b.attempt = 0 }

// Supervisor keeps a source connected: it runs one session after another,
// waiting a backoff between failed ones. A failure never ends the process;
// only ctx, or an error marked ErrPermanent, stops it.
type Supervisor struct {
	// Name is used in logs.
	Name string
	// Session runs one session until it ends and returns why. started is
	// called once media flows (the session is healthy from then on).
	Session func(ctx context.Context, started func()) error
	// Probe, when set, is polled every ProbeInterval during a backoff that
	// follows an ErrUnreachable failure; when it returns true the next
	// attempt starts at once. It should be cheap (a TCP dial).
	Probe func(ctx context.Context) bool
	// ProbeInterval defaults to 250 ms.
	ProbeInterval time.Duration
	// Backoff between attempts.
	Backoff Backoff
	// OnState is told of every state change with the error that caused it
	// and, in StateBackoff, the delay before the next attempt.
	OnState func(state string, err error, retryIn time.Duration)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now (tests use a fixed clock).
	Now func() time.Time
}

// Run supervises until ctx ends or a permanent error happens.
func (s *Supervisor) Run(ctx context.Context) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	state := func(st string, err error, d time.Duration) {
		if s.OnState != nil {
			s.OnState(st, err, d)
		}
	}
	for {
		if ctx.Err() != nil {
			state(StateStopped, nil, 0)
			return
		}
		state(StateConnecting, nil, 0)
		var startedAt time.Time
		err := s.Session(ctx, func() {
			startedAt = now()
			state(StateStreaming, nil, 0)
		})
		if ctx.Err() != nil {
			state(StateStopped, nil, 0)
			return
		}
		if !startedAt.IsZero() && now().Sub(startedAt) >= s.Backoff.HealthyAfterOrDefault() {
			s.Backoff.Reset()
		}
		if errors.Is(err, ErrPermanent) {
			log.Error("source failed; not retrying", "err", err)
			state(StateFailed, err, 0)
			<-ctx.Done()
			state(StateStopped, nil, 0)
			return
		}
		d := s.Backoff.Next()
		log.Warn("source session ended; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
		state(StateBackoff, err, d)
		s.wait(ctx, d, errors.Is(err, ErrUnreachable))
	}
}

// HealthyAfterOrDefault returns HealthyAfter or its default.
func (b *Backoff) HealthyAfterOrDefault() time.Duration {
	b.defaults()
	return b.HealthyAfter
}

func (s *Supervisor) wait(ctx context.Context, d time.Duration, probe bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	if !probe || s.Probe == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return
	}
	iv := s.ProbeInterval
	if iv <= 0 {
		iv = 250 * time.Millisecond
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
			if s.Probe(ctx) {
				return
			}
		}
	}
}
