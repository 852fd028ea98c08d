package inference

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
)

// faultyModel is an endpoint that fails at random: 500s, 429s, answers
// slower than the client's timeout, or a good JSON answer. It records the
// idempotency keys of the requests it got.
type faultyModel struct {
	mu   sync.Mutex
	rng  *rand.Rand
	keys map[string]int // requests per idempotency key
	ok   map[string]int // good answers per key
	hits atomic.Int64
	// failRate is the share of failed answers, slow is how long a slow
	// answer takes
	failRate float64
	slow     time.Duration
}

func (m *faultyModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.hits.Add(1)
	key := r.Header.Get(HeaderIdempotencyKey)
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	m.keys[key]++
	roll := m.rng.Float64()
	pick := m.rng.IntN(3)
	m.mu.Unlock()
	if r.Header.Get(HeaderInferenceID) == "" || r.Header.Get("Content-Type") != "video/mp4" || len(body) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if roll < m.failRate {
		switch pick {
		case 0:
			http.Error(w, "boom", http.StatusInternalServerError)
		case 1:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			select {
			case <-time.After(m.slow):
			case <-r.Context().Done():
			}
			http.Error(w, "too late", http.StatusServiceUnavailable)
		}
		return
	}
	m.mu.Lock()
	m.ok[key]++
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"bytes": len(body), "key": key})
}

// TestInvokerFaults: with an endpoint that fails half the time, every
// fragment ends with a stored result or a dead letter, none skipped; every
// attempt of a fragment carries the same idempotency key.
func TestInvokerFaults(t *testing.T) {
	m := &faultyModel{rng: rand.New(rand.NewPCG(1, 2)), keys: map[string]int{}, ok: map[string]int{}, failRate: 0.5, slow: 300 * time.Millisecond}
	srv := httptest.NewServer(m)
	defer srv.Close()
	h := Hook{Model: "faulty", Kind: KindSageMaker, URL: srv.URL, Timeout: 100 * time.Millisecond, Retries: 3, Concurrency: 8}
	if err := h.Validate("h"); err != nil {
		t.Fatal(err)
	}
	rs := localRecords(t)
	iv := &Invoker{Hook: h, Records: rs, Backoff: time.Millisecond, Logger: quiet}
	base := time.Unix(1_700_000_000, 0).UTC()
	const n = 60
	var wg sync.WaitGroup
	outs := make([]Outcome, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := syntheticInput(t, "cam1", uint64(i), base.Add(time.Duration(i)*2*time.Second), 2000, 300, 300)
			out, err := iv.Process(context.Background(), in, PlacementArchive)
			if err != nil {
				t.Errorf("fragment %d: %v", i, err)
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	results, err := rs.List(context.Background(), archive.RecordResult, "cam1", "faulty", base, base.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := rs.List(context.Background(), archive.RecordDeadLetter, "cam1", "faulty", base, base.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, r := range results {
		seen[r.FragmentNumber] = true
		if r.Status != 200 || len(r.Output) == 0 || r.IdempotencyKey != IdempotencyKey("cam1", r.FragmentNumber, "faulty") {
			t.Errorf("result %+v", r)
		}
	}
	for _, r := range dead {
		if seen[r.FragmentNumber] {
			t.Errorf("fragment %d has a result and a dead letter", r.FragmentNumber)
		}
		seen[r.FragmentNumber] = true
		if r.Error == "" || r.Attempts != 4 {
			t.Errorf("dead letter %+v", r)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d fragments with a record, want %d (%d results, %d dead letters)", len(seen), n, len(results), len(dead))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, c := range m.keys {
		if c > 4 {
			t.Errorf("%s: %d requests for 4 attempts", k, c)
		}
		if m.ok[k] > 1 {
			t.Errorf("%s answered %d times", k, m.ok[k])
		}
	}
	t.Logf("%d fragments: %d results, %d dead letters, %d requests", n, len(results), len(dead), m.hits.Load())
	if len(dead) == 0 || len(results) == 0 {
		t.Errorf("want both outcomes at a 50%% failure rate")
	}
}

// TestInvokerPermanent: a 4xx ends in a dead letter at once, an oversized
// payload without a request, and an oversized answer without retries.
func TestInvokerPermanent(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get(HeaderCustomAttributes) == "big" {
			w.Write([]byte(strings.Repeat("x", 5000)))
			return
		}
		http.Error(w, "no such model", http.StatusNotFound)
	}))
	defer srv.Close()
	rs := localRecords(t)
	base := time.Unix(1_700_000_000, 0).UTC()
	mk := func(attrs string) *Invoker {
		h := Hook{Model: "m", Kind: KindSageMaker, URL: srv.URL, Retries: 5, MaxResult: 1000, CustomAttributes: attrs}
		if err := h.Validate("h"); err != nil {
			t.Fatal(err)
		}
		return &Invoker{Hook: h, Records: rs, Backoff: time.Millisecond, Logger: quiet}
	}
	out, err := mk("").Process(context.Background(), syntheticInput(t, "cam", 1, base, 500), PlacementEdge)
	if err != nil || !out.DeadLetter || out.Attempts != 1 || !errors.Is(out.Err, ErrPermanent) || hits.Load() != 1 {
		t.Fatalf("404: %+v, %v, %d requests", out, err, hits.Load())
	}
	big := syntheticInput(t, "cam", 2, base.Add(2*time.Second), MaxPayload+10)
	out, err = mk("").Process(context.Background(), big, PlacementEdge)
	if err != nil || !out.DeadLetter || !errors.Is(out.Err, ErrPayloadTooLarge) || hits.Load() != 1 {
		t.Fatalf("7 MiB payload: %+v, %v, %d requests", out, err, hits.Load())
	}
	out, err = mk("big").Process(context.Background(), syntheticInput(t, "cam", 3, base.Add(4*time.Second), 500), PlacementEdge)
	if err != nil || !out.DeadLetter || !errors.Is(out.Err, ErrResultTooLarge) || hits.Load() != 2 {
		t.Fatalf("big answer: %+v, %v, %d requests", out, err, hits.Load())
	}
	dead, err := rs.List(context.Background(), archive.RecordDeadLetter, "cam", "", base, base.Add(time.Minute), 0)
	if err != nil || len(dead) != 3 || !strings.Contains(dead[1].Error, "6 MiB") {
		t.Fatalf("dead letters %+v, %v", dead, err)
	}
}

// TestBreaker: five failures in a row open the breaker; requests then wait
// out the cooldown, and one probe closes it again.
func TestBreaker(t *testing.T) {
	now := time.Unix(0, 0)
	b := &breaker{now: func() time.Time { return now }}
	for range breakerFailures {
		if _, err := b.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		b.record(false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open breaker let a request through: %v", err)
	}
	now = now.Add(breakerCooldown)
	probe, err := b.wait(context.Background())
	if err != nil || !probe {
		t.Fatalf("no probe: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := b.wait(ctx2); err == nil {
		t.Fatal("a second request went through while the probe was out")
	}
	// a probe whose context ends leaves the breaker to the next one
	b.abandon(probe)
	probe, err = b.wait(context.Background())
	if err != nil || !probe {
		t.Fatalf("after an abandoned probe: %v, probe %v", err, probe)
	}
	b.record(true)
	if _, err := b.wait(context.Background()); err != nil || b.failures != 0 {
		t.Fatalf("probe's success did not close the breaker: %v", err)
	}
}
