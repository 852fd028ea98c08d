package inference

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// Headers sent with every invocation.
const (
	// HeaderIdempotencyKey carries "{stream}/{fragment number}/{model}":
	// the same for every attempt and every repeat of a fragment.
	HeaderIdempotencyKey = "X-Tributary-Idempotency-Key"
	// HeaderInferenceID is SageMaker's request identifier, set to the
	// idempotency key (hashed when longer than its 64 characters).
	HeaderInferenceID = "X-Amzn-SageMaker-Inference-Id"
	// HeaderReadings carries signed URLs of the sensor readings of the
	// fragment's time range: stream=URL, comma-separated.
	HeaderReadings = "X-Tributary-Readings"
	// HeaderCustomAttributes is SageMaker's free-form attributes header.
	HeaderCustomAttributes = "X-Amzn-SageMaker-Custom-Attributes"
)

// Errors of an invocation, recorded in dead letters.
var (
	// ErrPermanent wraps an answer retrying cannot change (4xx but 429).
	ErrPermanent = errors.New("endpoint refused the request")
	// ErrResultTooLarge is an answer over the hook's MaxResult.
	ErrResultTooLarge = errors.New("answer larger than max_result")
)

// Invoker sends fragments to one hook's endpoint and stores what comes
// back. It is safe for concurrent use; Hook.Concurrency bounds the
// requests in flight.
type Invoker struct {
	// Hook, validated.
	Hook Hook
	// Records stores results and dead letters. Required.
	Records *Records
	// Client makes the requests. Default: a client with the hook's timeout
	// per request.
	Client *http.Client
	// FragmentURL returns signed URLs to fetch a fragment (as fMP4) and
	// its init segment, for webhook notices. Required for webhooks.
	FragmentURL func(m fragment.Metadata) (frag, init string, err error)
	// Readings returns the readings of the sensor streams named (as the
	// hook's Readings) in the fragment's time range, each stream's as
	// stored lines, for webhook notices. Required when the hook has
	// Readings.
	Readings func(ctx context.Context, m fragment.Metadata, streams []string) (map[string][]json.RawMessage, error)
	// ReadingsURLs returns, for SageMaker-style requests, signed URLs of
	// the readings of the sensor streams named in the fragment's time
	// range, once they are archived. Required when such a hook has
	// Readings.
	ReadingsURLs func(ctx context.Context, m fragment.Metadata, streams []string) (map[string]string, error)
	// Backoff is the first retry's delay, doubled for each next one up to
	// 30 s, with full jitter. Default 500 ms.
	Backoff time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	once    sync.Once
	sem     chan struct{}
	breaker breaker
	signer  *signer
}

func (iv *Invoker) init() {
	iv.once.Do(func() {
		if iv.Client == nil {
			iv.Client = &http.Client{}
		}
		if iv.Backoff <= 0 {
			iv.Backoff = 500 * time.Millisecond
		}
		if iv.Now == nil {
			iv.Now = time.Now
		}
		if iv.Logger == nil {
			iv.Logger = slog.Default()
		}
		iv.sem = make(chan struct{}, max(iv.Hook.Concurrency, 1))
		iv.breaker.now = iv.Now
		if iv.Hook.SigV4 != nil {
			iv.signer = newSigner(iv.Hook.SigV4)
		}
	})
}

// IdempotencyKey is the key of a fragment's invocations of a model.
func IdempotencyKey(stream string, number uint64, model string) string {
	return stream + "/" + strconv.FormatUint(number, 10) + "/" + model
}

// Outcome is what Process did with a fragment.
type Outcome struct {
	// DeadLetter is set when the fragment ended as a dead letter rather
	// than a result.
	DeadLetter bool
	Attempts   int
	Latency    time.Duration
	Err        error // the last failure, for dead letters
}

// Process invokes the endpoint for a fragment, with retries, and stores a
// result or a dead letter. It returns an error only when neither could be
// stored or ctx ended: the fragment is then still to do.
func (iv *Invoker) Process(ctx context.Context, in *Input, placement string) (Outcome, error) {
	iv.init()
	h := &iv.Hook
	rec := iv.record(in, placement)
	var out Outcome
	body, ctype, err := iv.body(ctx, in, rec.IdempotencyKey)
	if err == nil && body.size() > MaxPayload {
		err = fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, body.size())
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out.DeadLetter, out.Err = true, err
		return out, iv.deadLetter(ctx, rec, err)
	}
	readings := ""
	if h.Kind != KindWebhook && len(h.Readings) > 0 {
		if iv.ReadingsURLs == nil {
			iv.Logger.Warn("inference: no way to sign readings URLs here", "model", h.Model)
		} else if urls, err := iv.ReadingsURLs(ctx, in.Meta, h.Readings); err != nil {
			iv.Logger.Warn("inference: readings URLs", "model", h.Model, "err", err)
		} else {
			names := make([]string, 0, len(urls))
			for n := range urls {
				names = append(names, n)
			}
			sort.Strings(names)
			var b strings.Builder
			for i, n := range names {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(n + "=" + urls[n])
			}
			readings = b.String()
		}
	}
	for attempt := 0; ; attempt++ {
		probe, err := iv.breaker.wait(ctx)
		if err != nil {
			return out, err
		}
		select {
		case iv.sem <- struct{}{}:
		case <-ctx.Done():
			iv.breaker.abandon(probe)
			return out, ctx.Err()
		}
		status, rctype, answer, latency, err := iv.do(ctx, body, ctype, rec.IdempotencyKey, readings)
		<-iv.sem
		out.Attempts, out.Latency = attempt+1, latency
		rec.Attempts, rec.LatencyMs, rec.Status, rec.ContentType = attempt+1, float64(latency.Microseconds())/1000, status, rctype
		if ctx.Err() != nil {
			iv.breaker.abandon(probe)
			return out, ctx.Err()
		}
		retry := retryable(status, err)
		iv.breaker.record(err == nil || !retry)
		if err == nil {
			rec.setOutput(answer)
			rec.Stored = iv.Now().UTC()
			return out, iv.Records.Put(ctx, archive.RecordResult, rec)
		}
		if !retry || attempt >= h.Retries {
			rec.setOutput(answer)
			out.DeadLetter, out.Err = true, err
			return out, iv.deadLetter(ctx, rec, err)
		}
		iv.Logger.Debug("invocation failed; retrying", "model", h.Model, "stream", rec.Stream, "fragment", rec.FragmentNumber, "attempt", attempt+1, "err", err)
		d := min(iv.Backoff<<min(attempt, 16), 30*time.Second)
		d = time.Duration(rand.Int64N(int64(d)) + 1)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// Fail stores a dead letter for a fragment that cannot be sent at all (its
// objects are gone), without a request.
func (iv *Invoker) Fail(ctx context.Context, in *Input, placement string, cause error) error {
	iv.init()
	return iv.deadLetter(ctx, iv.record(in, placement), cause)
}

// record starts the record of a fragment.
func (iv *Invoker) record(in *Input, placement string) *Record {
	h := &iv.Hook
	return &Record{
		Stream: in.Meta.Stream, Model: h.Model, FragmentNumber: in.Meta.Number,
		ProducerStart: in.Meta.ProducerStart, ProducerEnd: in.Meta.ProducerEnd, ServerTime: in.Meta.ServerTime,
		IdempotencyKey: IdempotencyKey(in.Meta.Stream, in.Meta.Number, h.Model), Placement: placement, Payload: h.Payload,
	}
}

func (iv *Invoker) deadLetter(ctx context.Context, rec *Record, err error) error {
	rec.Error = err.Error()
	rec.Stored = iv.Now().UTC()
	iv.Logger.Warn("inference failed for good; dead letter stored", "model", rec.Model, "stream", rec.Stream, "fragment", rec.FragmentNumber, "attempts", rec.Attempts, "err", err)
	return iv.Records.Put(ctx, archive.RecordDeadLetter, rec)
}

// notice is the JSON a webhook receives.
type notice struct {
	Model          string            `json:"model"`
	IdempotencyKey string            `json:"idempotency_key"`
	Fragment       fragment.Metadata `json:"fragment"`
	URL            string            `json:"url"`
	InitURL        string            `json:"init_url"`
	// Readings of the hook's sensor streams in the fragment's time range.
	Readings map[string][]json.RawMessage `json:"readings,omitempty"`
	// ReadingsError says why readings are missing or cut short; the notice
	// goes out anyway.
	ReadingsError string `json:"readings_error,omitempty"`
}

// parts is a request body in pieces, sent without joining them (the
// fragment payload is the init segment then the fragment).
type parts [][]byte

func (p parts) size() int {
	n := 0
	for _, b := range p {
		n += len(b)
	}
	return n
}

func (p parts) reader() io.ReadCloser {
	rs := make([]io.Reader, len(p))
	for i, b := range p {
		rs[i] = bytes.NewReader(b)
	}
	return io.NopCloser(io.MultiReader(rs...))
}

func (iv *Invoker) body(ctx context.Context, in *Input, key string) (parts, string, error) {
	if iv.Hook.Kind != KindWebhook {
		if (iv.Hook.Payload == PayloadFragment || iv.Hook.Payload == "") && in.Meta.Container != fragment.ContainerMKV {
			return parts{in.Init, in.Data}, "video/mp4", nil
		}
		b, ctype, err := Payload(ctx, iv.Hook.Payload, in)
		return parts{b}, ctype, err
	}
	if iv.FragmentURL == nil {
		return nil, "", errors.New("webhook: no way to sign fragment URLs here")
	}
	u, iu, err := iv.FragmentURL(in.Meta)
	if err != nil {
		return nil, "", fmt.Errorf("webhook: fragment URL: %w", err)
	}
	n := notice{Model: iv.Hook.Model, IdempotencyKey: key, Fragment: in.Meta, URL: u, InitURL: iu}
	if len(iv.Hook.Readings) > 0 {
		if iv.Readings == nil {
			return nil, "", errors.New("webhook: no way to read sensor readings here")
		}
		if n.Readings, err = iv.Readings(ctx, in.Meta, iv.Hook.Readings); err != nil {
			// the fragment's notice matters more than its side data
			n.ReadingsError = err.Error()
		}
	}
	b, err := json.Marshal(n)
	return parts{b}, "application/json", err
}

// do makes one request and reads the answer, bounded by MaxResult.
func (iv *Invoker) do(ctx context.Context, body parts, ctype, key, readings string) (status int, rctype string, answer []byte, latency time.Duration, err error) {
	h := &iv.Hook
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.InvokeURL(), nil)
	if err != nil {
		return 0, "", nil, 0, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	req.Body, req.ContentLength = body.reader(), int64(body.size())
	req.GetBody = func() (io.ReadCloser, error) { return body.reader(), nil }
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", h.Accept)
	req.Header.Set(HeaderIdempotencyKey, key)
	id := key
	if len(id) > 64 {
		sum := sha256.Sum256([]byte(key))
		id = hex.EncodeToString(sum[:])
	}
	req.Header.Set(HeaderInferenceID, id)
	if h.CustomAttributes != "" {
		req.Header.Set(HeaderCustomAttributes, h.CustomAttributes)
	}
	if readings != "" {
		req.Header.Set(HeaderReadings, readings)
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	if iv.signer != nil {
		hs := sha256.New()
		for _, b := range body {
			hs.Write(b)
		}
		iv.signer.sign(req, hex.EncodeToString(hs.Sum(nil)), iv.Now())
	}
	start := time.Now()
	resp, err := iv.Client.Do(req)
	if err != nil {
		return 0, "", nil, time.Since(start), err
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, int64(h.MaxResult)+1))
	latency = time.Since(start)
	rctype = resp.Header.Get("Content-Type")
	if err != nil {
		return resp.StatusCode, rctype, nil, latency, fmt.Errorf("reading the answer: %w", err)
	}
	if len(answer) > h.MaxResult {
		return resp.StatusCode, rctype, nil, latency, fmt.Errorf("%w (%d bytes)", ErrResultTooLarge, h.MaxResult)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(answer[:min(len(answer), 200)]))
		err = fmt.Errorf("endpoint answered %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), msg)
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode/100 == 4 {
			err = fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		return resp.StatusCode, rctype, answer, latency, err
	}
	return resp.StatusCode, rctype, answer, latency, nil
}

// retryable is the retry classifier: 5xx, 429, timeouts and network
// errors are worth another try; other 4xx, an oversized answer and bad
// requests are not.
func retryable(status int, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrPermanent), errors.Is(err, ErrResultTooLarge):
		return false
	case status == http.StatusTooManyRequests, status >= 500:
		return true
	case status == 0:
		return true // no answer: a network error or a timeout
	}
	return false
}

// breaker is a circuit breaker for one endpoint: after breakerFailures
// failures in a row it opens for breakerCooldown, during which requests
// wait; then one request goes through (half open), and its outcome closes
// or reopens it.
type breaker struct {
	mu       sync.Mutex
	now      func() time.Time
	failures int
	openTill time.Time
	probing  bool
}

const (
	breakerFailures = 5
	breakerCooldown = 10 * time.Second
)

// wait returns when a request may go; probe is set when it is the
// half-open breaker's one probe, whose outcome must be recorded (or the
// probe abandoned).
func (b *breaker) wait(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		now := b.now()
		if b.failures < breakerFailures {
			b.mu.Unlock()
			return false, nil
		}
		if !now.Before(b.openTill) && !b.probing {
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		d := b.openTill.Sub(now)
		if d <= 0 {
			d = 100 * time.Millisecond // a probe is in flight
		}
		b.mu.Unlock()
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// abandon lets another request probe when this one, the probe, ends
// without an outcome (its context ended).
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// record counts a request's outcome (ok: the endpoint worked, even if it
// refused this request).
func (b *breaker) record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= breakerFailures {
		b.openTill = b.now().Add(breakerCooldown)
	}
}

// State reports the breaker's state: "closed", "open" or "half-open".
func (iv *Invoker) State() string {
	iv.init()
	b := &iv.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < breakerFailures:
		return "closed"
	case b.now().Before(b.openTill):
		return "open"
	}
	return "half-open"
}
