package webrtc

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// Errors of WHIP publishing, mapped to HTTP statuses by the Server.
var (
	// ErrBusy: another publisher holds the stream (409).
	ErrBusy = errors.New("another producer is publishing to this stream")
	// ErrUnknownStream: no such stream, and new ones are not allowed (404).
	ErrUnknownStream = errors.New("no such stream")
	// ErrForbidden: publishing is off, or the stream is pulled (403).
	ErrForbidden = errors.New("publishing to this stream is not allowed")
	// ErrTooManyPublishers: MaxPublishers are connected (503).
	ErrTooManyPublishers = errors.New("too many WHIP publishers")
	// ErrBadOffer: the body is not an SDP offer pion accepts (400).
	ErrBadOffer = errors.New("bad SDP offer")
	// ErrBadStreamName: the URL's stream name is not one (400).
	ErrBadStreamName = errors.New("bad stream name")
	// ErrShuttingDown: the server is closing (503).
	ErrShuttingDown = errors.New("the agent is shutting down")
	// ErrUnauthorized: a missing or wrong bearer token (401).
	ErrUnauthorized = errors.New("missing or wrong bearer token")
)

// Target is a stream held by one publisher.
type Target interface {
	ingest.Sink
	// Counters of the stream's ingest.
	Counters() *ingest.Counters
	// Release ends the publisher's hold on the stream.
	Release()
	// Done is closed when the stream shuts down: the session ends.
	Done() <-chan struct{}
	// Settings are the stream's own settings for the session.
	Settings() TargetSettings
}

// TargetSettings are a stream's settings for its publisher's session; a
// zero field takes the Server's.
type TargetSettings struct {
	// StallTimeout ends the session after this long without media.
	StallTimeout time.Duration
	// KeyframeInterval: a PLI asks for a keyframe when none came for this
	// long (the stream's fragment target).
	KeyframeInterval time.Duration
}

// Targets hands out streams to publishers.
type Targets interface {
	// Acquire returns the stream for one publisher. Errors wrap ErrBusy,
	// ErrUnknownStream or ErrForbidden.
	Acquire(ctx context.Context, stream string) (Target, error)
}

// Server answers WHIP publishers: POST of an SDP offer to the stream's
// URL gets 201, the answer and a Location; DELETE of the Location ends the
// session; PATCH (trickle ICE) is answered 405: candidates travel in the
// offer and answer. A session also ends when the connection fails, media
// stalls, or the stream shuts down. Mount ServeHTTP on the stream's URL
// and ServeSession on {url}/{id}.
type Server struct {
	// Targets hands out streams. Required.
	Targets Targets
	// Authorize checks a request for a stream; nil allows everything.
	// Its errors are answered 401 (ErrUnauthorized) or 403.
	Authorize func(r *http.Request, stream string) error
	// Engine makes the peer connections. Required.
	Engine *Engine
	// MaxPublishers is the most sessions at once. Default 16.
	MaxPublishers int
	// StallTimeout ends a session without media for this long. Default 5 s.
	StallTimeout time.Duration
	// Timeout bounds ICE gathering for the answer and the wait for the
	// first track. Default 10 s.
	Timeout time.Duration
	// ReorderDelay is how long a sequence gap is waited for. Default 150 ms.
	ReorderDelay time.Duration
	// KeyframeInterval: with no keyframe for this long, a PLI asks for
	// one. Default 2 s (the fragment target).
	KeyframeInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	mu       sync.Mutex
	sessions map[string]*whipSession
	wg       sync.WaitGroup
	closed   bool

	// Sessions, Rejected count publishers accepted and refused.
	Sessions, Rejected atomic.Uint64
}

type whipSession struct {
	id     string
	stream string
	cancel context.CancelFunc
	done   chan struct{}
}

// Active returns the number of sessions running.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Close ends every session and waits for them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, ws := range s.sessions {
		ws.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// httpError answers err with its status.
func (s *Server) httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnauthorized):
		code = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer realm="tributary"`)
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrUnknownStream):
		code = http.StatusNotFound
	case errors.Is(err, ErrBusy):
		code = http.StatusConflict
	case errors.Is(err, ErrTooManyPublishers), errors.Is(err, ErrShuttingDown):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	case errors.Is(err, ErrBadOffer), errors.Is(err, ErrBadStreamName):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNoSupportedTracks):
		code = http.StatusUnsupportedMediaType
	}
	if code >= 400 && code != http.StatusInternalServerError {
		s.Rejected.Add(1)
	}
	http.Error(w, err.Error(), code)
}

// ServeHTTP takes a publisher's offer for stream (POST).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, stream string) {
	log := s.logger().With("stream", stream)
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := fragment.ValidateStreamName(stream); err != nil {
		s.httpError(w, fmt.Errorf("%w: %v", ErrBadStreamName, err))
		return
	}
	if s.Authorize != nil {
		if err := s.Authorize(r, stream); err != nil {
			s.httpError(w, err)
			return
		}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/sdp" {
		s.Rejected.Add(1)
		http.Error(w, "Content-Type must be application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSDP+1))
	if err != nil {
		s.httpError(w, fmt.Errorf("%w: %v", ErrBadOffer, err))
		return
	}
	if len(body) > maxSDP {
		s.httpError(w, fmt.Errorf("%w: over %d bytes", ErrBadOffer, maxSDP))
		return
	}
	want, offered, err := sendingTracks(string(body))
	if err != nil {
		s.httpError(w, fmt.Errorf("%w: %v", ErrBadOffer, err))
		return
	}
	if want == 0 {
		s.httpError(w, fmt.Errorf("%w; offered: %s", ErrNoSupportedTracks, strings.Join(offered, ", ")))
		return
	}

	max := s.MaxPublishers
	if max <= 0 {
		max = 16
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.httpError(w, ErrShuttingDown)
		return
	}
	if len(s.sessions) >= max {
		s.mu.Unlock()
		s.httpError(w, fmt.Errorf("%w (%d)", ErrTooManyPublishers, max))
		return
	}
	if s.sessions == nil {
		s.sessions = map[string]*whipSession{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ws := &whipSession{id: newID(), stream: stream, cancel: cancel, done: make(chan struct{})}
	s.sessions[ws.id] = ws // holds the place while negotiating
	s.wg.Add(1)            // Close waits for negotiations too
	s.mu.Unlock()
	var dropOnce sync.Once
	drop := func() {
		dropOnce.Do(func() {
			cancel()
			s.mu.Lock()
			delete(s.sessions, ws.id)
			s.mu.Unlock()
			close(ws.done)
			s.wg.Done()
		})
	}

	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	pc, err := s.Engine.newPeer()
	if err != nil {
		drop()
		s.httpError(w, fmt.Errorf("webrtc: %w", err))
		return
	}
	target, err := s.Targets.Acquire(r.Context(), stream)
	if err != nil {
		pc.Close()
		drop()
		s.httpError(w, err)
		return
	}
	ctr := target.Counters()
	rc := &receiver{counters: ctr, log: log.With("component", "whip"), stall: s.StallTimeout, timeout: timeout, reorderDelay: s.ReorderDelay, keyInterval: s.KeyframeInterval}
	if st := target.Settings(); st != (TargetSettings{}) {
		rc.stall = cmp.Or(st.StallTimeout, rc.stall)
		rc.keyInterval = cmp.Or(st.KeyframeInterval, rc.keyInterval)
	}
	rc.attach(pc)
	fail := func(err error) {
		pc.Close()
		rc.close()
		target.Release()
		drop()
		s.httpError(w, err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(body)}); err != nil {
		fail(fmt.Errorf("%w: %v", ErrBadOffer, err))
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		fail(fmt.Errorf("%w: %v", ErrBadOffer, err))
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		fail(fmt.Errorf("%w: %v", ErrBadOffer, err))
		return
	}
	select {
	case <-gathered:
	case <-time.After(timeout):
	case <-r.Context().Done():
		fail(r.Context().Err())
		return
	}

	if ctx.Err() != nil {
		// Close (or a DELETE) came while negotiating
		fail(ErrShuttingDown)
		return
	}
	s.Sessions.Add(1)
	go func() {
		defer drop()
		go func() {
			select {
			case <-target.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		err := rc.run(ctx, want, target, func() {})
		pc.Close()
		rc.close()
		target.Release()
		if err != nil {
			log.Info("WHIP session ended", "session", ws.id, "err", err)
		} else {
			log.Info("WHIP session ended", "session", ws.id)
		}
	}()

	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+ws.id)
	w.Header().Set("ETag", `"`+ws.id+`"`)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, pc.LocalDescription().SDP)
	log.Info("WHIP publisher accepted", "session", ws.id, "remote", r.RemoteAddr, "offered", offered)
}

// ServeSession handles requests on a session's URL: DELETE ends it, PATCH
// (trickle ICE, ICE restart) is not supported.
func (s *Server) ServeSession(w http.ResponseWriter, r *http.Request, stream, id string) {
	s.mu.Lock()
	ws := s.sessions[id]
	s.mu.Unlock()
	if ws == nil || ws.stream != stream {
		http.Error(w, "no such WHIP session", http.StatusNotFound)
		return
	}
	if s.Authorize != nil {
		if err := s.Authorize(r, stream); err != nil {
			s.httpError(w, err)
			return
		}
	}
	switch r.Method {
	case http.MethodDelete:
		ws.cancel()
		select {
		case <-ws.done:
		case <-time.After(5 * time.Second):
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		w.Header().Set("Allow", "DELETE")
		http.Error(w, "trickle ICE is not supported: candidates travel in the offer and answer", http.StatusMethodNotAllowed)
	default:
		w.Header().Set("Allow", "DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
