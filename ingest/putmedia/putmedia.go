// Package putmedia is Tributary's push ingest: POST /v1/streams/{s}/putmedia
// takes a chunked Matroska body on one long-lived request, as Kinesis Video
// Streams' PutMedia does, and answers with NDJSON acknowledgements per
// fragment: BUFFERING when a producer's fragment (cluster) starts arriving,
// RECEIVED when Tributary has the whole fragment, PERSISTED when it is
// durable, ERROR with numeric codes modelled on KVS's, and IDLE keep-alives.
//
// ffmpeg, GStreamer's matroskamux and KVS-style producers can push:
//
//	ffmpeg -re -i clip.mp4 -c copy -f matroska -method POST \
//	  -headers "Authorization: Bearer TOKEN" http://gateway:8080/v1/streams/door/putmedia
package putmedia

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// Event types of acknowledgements.
const (
	EventBuffering = "BUFFERING"
	EventReceived  = "RECEIVED"
	EventPersisted = "PERSISTED"
	EventError     = "ERROR"
	EventIdle      = "IDLE"
)

// ErrorCode is a numbered PutMedia error, modelled on KVS's.
type ErrorCode struct {
	ID   int
	Name string
}

// Error codes of ERROR acknowledgements. 4000-4011 and 5000-5001 have the
// numbers and names KVS uses; 4012-4014 are Tributary's.
var (
	CodeStreamRead            = ErrorCode{4000, "STREAM_READ_ERROR"}
	CodeMaxFragmentSize       = ErrorCode{4001, "MAX_FRAGMENT_SIZE_REACHED"}
	CodeMaxFragmentDuration   = ErrorCode{4002, "MAX_FRAGMENT_DURATION_REACHED"}
	CodeMaxConnectionDuration = ErrorCode{4003, "MAX_CONNECTION_DURATION_REACHED"}
	CodeTimecodeLower         = ErrorCode{4004, "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"}
	CodeTooManyTracks         = ErrorCode{4005, "MORE_THAN_ALLOWED_TRACKS_FOUND"}
	CodeInvalidMKV            = ErrorCode{4006, "INVALID_MKV_DATA"}
	CodeInvalidProducerTime   = ErrorCode{4007, "INVALID_PRODUCER_TIMESTAMP"}
	CodeTrackMismatch         = ErrorCode{4010, "TRACK_NUMBER_MISMATCH"}
	CodeFramesMissing         = ErrorCode{4011, "FRAMES_MISSING_FOR_TRACK"}
	CodeRateExceeded          = ErrorCode{4012, "RATE_LIMIT_EXCEEDED"}
	CodeUnsupportedCodec      = ErrorCode{4013, "UNSUPPORTED_CODEC"}
	CodeFrameTooLarge         = ErrorCode{4014, "MAX_FRAME_SIZE_REACHED"}
	CodeInternal              = ErrorCode{5000, "INTERNAL_ERROR"}
	CodeArchival              = ErrorCode{5001, "ARCHIVAL_ERROR"}
)

// Ack is one NDJSON acknowledgement line, in KVS's shape (FragmentNumber a
// decimal string, FragmentTimecode the fragment's start in the producer's
// timecode units, milliseconds).
type Ack struct {
	EventType        string `json:"EventType"`
	FragmentTimecode *int64 `json:"FragmentTimecode,omitempty"`
	FragmentNumber   string `json:"FragmentNumber,omitempty"`
	ErrorID          int    `json:"ErrorId,omitempty"`
	ErrorCode        string `json:"ErrorCode,omitempty"`
	// Message explains an ERROR in words (Tributary's addition).
	Message string `json:"Message,omitempty"`
}

// FragmentAck builds a RECEIVED or PERSISTED ack for a fragment.
func FragmentAck(event string, m fragment.Metadata) Ack {
	tc := m.ProducerStart.UnixMilli()
	return Ack{EventType: event, FragmentTimecode: &tc, FragmentNumber: strconv.FormatUint(m.Number, 10)}
}

// ErrorAck builds an ERROR ack.
func ErrorAck(code ErrorCode, timecode int64, msg string) Ack {
	return Ack{EventType: EventError, FragmentTimecode: &timecode, ErrorID: code.ID, ErrorCode: code.Name, Message: msg}
}

// Target is a stream that accepts a push: the pipeline's Sink, plus what a
// producer's session needs. The session is the only goroutine that calls
// the Sink methods while it holds the target.
type Target interface {
	ingest.Sink
	// CutAtNextKeyframe follows the producer's fragmentation: the fragment
	// in progress closes at the next keyframe.
	CutAtNextKeyframe()
	// SetAcks sets where the stream's fragment events go (RECEIVED,
	// PERSISTED, ERROR for dropped GOPs), or stops them with nil. The
	// function must not block.
	SetAcks(func(Ack))
	// Release ends the producer's hold on the stream.
	Release()
	// Done is closed when the stream is shutting down: the session ends.
	Done() <-chan struct{}
}

// Targets hands out push targets.
type Targets interface {
	// Acquire returns the stream's target for one producer. Errors wrap
	// ErrBusy, ErrNotPushable or ErrUnknownStream.
	Acquire(ctx context.Context, stream string) (Target, error)
}

// Errors of Acquire and of authorisation, mapped to HTTP statuses.
var (
	ErrBusy          = errors.New("another producer is pushing to this stream")
	ErrNotPushable   = errors.New("this stream is pulled from a camera")
	ErrUnknownStream = errors.New("no such stream, and new streams are not allowed")
	ErrUnauthorized  = errors.New("missing or wrong bearer token")
	ErrForbidden     = errors.New("push ingest is not enabled")
)

// Counters are the push ingest's counters, for metrics.
type Counters struct {
	Sessions atomic.Uint64
	Bytes    atomic.Uint64
	Frames   atomic.Uint64
	Errors   sync.Map // ErrorCode.Name → *atomic.Uint64
}

func (c *Counters) countError(code ErrorCode) {
	v, _ := c.Errors.LoadOrStore(code.Name, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// Handler serves POST /v1/streams/{stream}/putmedia.
type Handler struct {
	// Targets gives the stream to push into. Required.
	Targets Targets
	// Authorize checks a request for a stream; nil allows every request.
	Authorize func(r *http.Request, stream string) error
	// MaxTracks a producer may send. Default 3 (as KVS).
	MaxTracks int
	// MaxBytesPerSecond is the highest sustained rate a producer may send,
	// measured over 5 s. Default 16 MiB/s.
	MaxBytesPerSecond int64
	// MaxFrameSize bounds one frame. Default 16 MiB.
	MaxFrameSize int64
	// IdleInterval is how often IDLE is sent when nothing else is. Default 2 s.
	IdleInterval time.Duration
	// PersistWait is how long the end of a push waits for the last
	// fragments to be PERSISTED. Default 15 s.
	PersistWait time.Duration
	// Counters, when set, receive counts.
	Counters *Counters
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (h *Handler) defaults() {
	if h.MaxTracks <= 0 {
		h.MaxTracks = 3
	}
	if h.MaxBytesPerSecond <= 0 {
		h.MaxBytesPerSecond = 16 << 20
	}
	if h.MaxFrameSize <= 0 {
		h.MaxFrameSize = 16 << 20
	}
	if h.IdleInterval <= 0 {
		h.IdleInterval = 2 * time.Second
	}
	if h.PersistWait <= 0 {
		h.PersistWait = 15 * time.Second
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	if h.Counters == nil {
		h.Counters = &Counters{}
	}
}

// httpError writes a JSON error as DESIGN.md defines them.
func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// Timecode types (header X-Amzn-Fragment-Timecode-Type).
const (
	TimecodeAbsolute = "ABSOLUTE"
	TimecodeRelative = "RELATIVE"
)

// ServeHTTP runs one push: it reads the producer's Matroska, feeds the
// stream's pipeline and writes acknowledgements until the body ends, an
// error ends it, or the stream shuts down.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.defaults()
	stream := r.PathValue("stream")
	if err := fragment.ValidateStreamName(stream); err != nil {
		httpError(w, http.StatusBadRequest, "invalid_stream", err.Error())
		return
	}
	if h.Authorize != nil {
		if err := h.Authorize(r, stream); err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, ErrForbidden) {
				status = http.StatusForbidden
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tributary"`)
			}
			httpError(w, status, "unauthorized", err.Error())
			return
		}
	}
	tcType := strings.ToUpper(firstHeader(r, "X-Amzn-Fragment-Timecode-Type", "X-Tributary-Fragment-Timecode-Type"))
	switch tcType {
	case "", TimecodeAbsolute, TimecodeRelative:
	default:
		httpError(w, http.StatusBadRequest, "invalid_header", fmt.Sprintf("X-Amzn-Fragment-Timecode-Type %q: want ABSOLUTE or RELATIVE", tcType))
		return
	}
	producerStart := time.Now()
	if v := firstHeader(r, "X-Amzn-Producer-Start-Timestamp", "X-Tributary-Producer-Start-Timestamp"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s < 0 || s > 1e11 {
			httpError(w, http.StatusBadRequest, "invalid_header", fmt.Sprintf("X-Amzn-Producer-Start-Timestamp %q: want decimal seconds since 1970", v))
			return
		}
		producerStart = time.UnixMilli(int64(s*1000 + 0.5))
	}
	target, err := h.Targets.Acquire(r.Context(), stream)
	if err != nil {
		status := http.StatusInternalServerError
		code := "internal"
		switch {
		case errors.Is(err, ErrBusy), errors.Is(err, ErrNotPushable):
			status, code = http.StatusConflict, "conflict"
		case errors.Is(err, ErrUnknownStream):
			status, code = http.StatusNotFound, "not_found"
		}
		httpError(w, status, code, err.Error())
		return
	}
	defer target.Release()
	h.Counters.Sessions.Add(1)

	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // acks go out while the body comes in (HTTP/1.1)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	// one push per connection: net/http's full-duplex mode and keep-alive
	// do not mix (a background read of a finished body races the next
	// request's)
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	s := &session{
		h: h, stream: stream, target: target, log: h.Logger.With("stream", stream, "component", "putmedia", "remote", r.RemoteAddr),
		acks: make(chan Ack, 1024), tcType: tcType, producerStart: producerStart,
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeAcks(w, rc)
	}()
	target.SetAcks(s.ack)
	stop := make(chan struct{})
	go func() {
		select {
		case <-target.Done():
			// unblock the body read: the stream is shutting down
			_ = rc.SetReadDeadline(time.Now())
		case <-stop:
		}
	}()
	s.run(r.Body)
	close(stop)
	s.waitPersisted()
	target.SetAcks(nil)
	close(s.acks)
	<-writerDone
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// session is one producer's push.
type session struct {
	h             *Handler
	stream        string
	target        Target
	log           *slog.Logger
	acks          chan Ack
	tcType        string
	producerStart time.Time

	mu        sync.Mutex
	received  int // RECEIVED sent
	persisted int // PERSISTED sent
	closed    bool
	dropped   atomic.Uint64
}

// ack queues an acknowledgement without blocking (a producer that does
// not read its acks loses some, counted, rather than stalling ingest).
func (s *session) ack(a Ack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	switch a.EventType {
	case EventReceived:
		s.received++
	case EventPersisted:
		s.persisted++
	case EventError:
		s.h.Counters.countError(ErrorCode{a.ErrorID, a.ErrorCode})
	}
	select {
	case s.acks <- a:
	default:
		s.dropped.Add(1)
	}
}

func (s *session) writeAcks(w http.ResponseWriter, rc *http.ResponseController) {
	enc := json.NewEncoder(w)
	idle := time.NewTicker(s.h.IdleInterval)
	defer idle.Stop()
	broken := false
	write := func(a Ack) {
		if broken {
			return
		}
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := enc.Encode(a); err != nil {
			broken = true
			return
		}
		if err := rc.Flush(); err != nil {
			broken = true
		}
	}
	for {
		select {
		case a, ok := <-s.acks:
			if !ok {
				return
			}
			write(a)
			idle.Reset(s.h.IdleInterval)
		case <-idle.C:
			write(Ack{EventType: EventIdle})
		}
	}
}

// waitPersisted waits a while for every RECEIVED fragment to be PERSISTED.
func (s *session) waitPersisted() {
	deadline := time.Now().Add(s.h.PersistWait)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		done := s.persisted >= s.received
		s.mu.Unlock()
		if done {
			break
		}
		select {
		case <-s.target.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// rateReader fails a body that comes faster than the limit: a token bucket
// that holds burst seconds of the rate.
type rateReader struct {
	r      io.Reader
	limit  int64 // bytes per second
	burst  time.Duration
	tokens float64
	last   time.Time
	total  *atomic.Uint64
}

// errRate is returned once the producer exceeds the rate.
var errRate = errors.New("rate limit exceeded")

func (r *rateReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.total.Add(uint64(n))
	now := time.Now()
	capacity := float64(r.limit) * r.burst.Seconds()
	if r.last.IsZero() {
		r.tokens = capacity
	} else {
		r.tokens = min(capacity, r.tokens+now.Sub(r.last).Seconds()*float64(r.limit))
	}
	r.last = now
	r.tokens -= float64(n)
	if r.tokens < 0 {
		return n, fmt.Errorf("%w: more than %.2f MB/s sustained (bursts of %v allowed)", errRate, float64(r.limit)/1e6, r.burst)
	}
	return n, err
}
