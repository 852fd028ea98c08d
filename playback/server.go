package playback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// Live is what an agent offers the playback server beside the archive:
// stream states, and a notice when a fragment lands, so live HLS and
// GetMedia follow the edge without polling. Nil over an archive alone.
type Live interface {
	// StreamState returns the stream's state ("" when unknown).
	StreamState(stream string) string
	// Subscribe returns a channel that receives the metadata of each
	// fragment of stream as it lands in the archive, and a function that
	// ends the subscription. A slow reader misses notices, never blocks.
	Subscribe(stream string) (<-chan fragment.Metadata, func())
	// Ring returns the stream's live edge for low-latency HLS, or nil.
	Ring(stream string) *LiveRing
}

// Server is the playback API over an archive.
type Server struct {
	// Store is the archive. Required.
	Store archive.Store
	// Layout is the archive's key layout (its prefix).
	Layout archive.Layout
	// Access configures tokens, signed sessions and CORS.
	Access Access
	// Live, inside an agent, gives stream states and landing notices.
	Live Live
	// PollInterval is how often GetMedia and live playlists look for new
	// fragments without Live. Default 100 ms.
	PollInterval time.Duration
	// FFmpeg is the ffmpeg binary for images ("" looks it up on PATH; when
	// absent, images answer 501).
	FFmpeg string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now (tests use a fixed clock).
	Now func() time.Time

	once   sync.Once
	mux    *http.ServeMux
	inits  sync.Map // key → []byte: init segments are immutable
	hours  sync.Map // manifest key → *cachedHour
	viewer http.Handler
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.PollInterval <= 0 {
			s.PollInterval = 100 * time.Millisecond
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		s.viewer = viewerHandler()
		m := http.NewServeMux()
		m.HandleFunc("GET /v1/streams", s.authed(s.listStreams))
		m.HandleFunc("GET /v1/streams/{stream}", s.authed(s.getStream))
		m.HandleFunc("GET /v1/streams/{stream}/fragments", s.authed(s.listFragments))
		m.HandleFunc("GET /v1/streams/{stream}/timeline", s.authed(s.timeline))
		m.HandleFunc("POST /v1/streams/{stream}/session", s.authed(s.newSession))
		m.HandleFunc("GET /v1/streams/{stream}/hls/master.m3u8", s.authed(s.hlsMaster))
		m.HandleFunc("GET /v1/streams/{stream}/hls/media.m3u8", s.authed(s.hlsMedia))
		m.HandleFunc("GET /v1/streams/{stream}/hls/init/{hash}", s.authed(s.hlsInit))
		m.HandleFunc("GET /v1/streams/{stream}/hls/f/{path...}", s.authed(s.hlsSegment))
		m.HandleFunc("GET /v1/streams/{stream}/hls/ll.m3u8", s.authed(s.hlsLL))
		m.HandleFunc("GET /v1/streams/{stream}/hls/ll/part/{name}", s.authed(s.hlsLLPart))
		m.HandleFunc("GET /v1/streams/{stream}/hls/ll/seg/{name}", s.authed(s.hlsLLSegment))
		m.HandleFunc("GET /v1/streams/{stream}/hls/ll/init/{hash}", s.authed(s.hlsLLInit))
		m.HandleFunc("GET /v1/streams/{stream}/media", s.authed(s.getMedia))
		m.HandleFunc("POST /v1/streams/{stream}/media/fragments", s.authed(s.getMediaForFragmentList))
		m.HandleFunc("GET /v1/streams/{stream}/clip.mp4", s.authed(s.clip))
		m.HandleFunc("GET /v1/streams/{stream}/images", s.authed(s.images))
		m.HandleFunc("GET /v1/streams/{stream}/results", s.authed(s.listRecords(archive.RecordResult)))
		m.HandleFunc("GET /v1/streams/{stream}/deadletters", s.authed(s.listRecords(archive.RecordDeadLetter)))
		m.HandleFunc("GET /v1/streams/{stream}/samples", s.authed(s.samples))
		m.HandleFunc("OPTIONS /v1/", func(w http.ResponseWriter, r *http.Request) {
			s.Access.cors(w, r)
			w.WriteHeader(http.StatusNoContent)
		})
		m.Handle("GET /viewer/", s.viewer)
		m.Handle("GET /{$}", s.viewer)
		m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
		})
		s.mux = m
	})
}

// ServeHTTP serves the API and the viewer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	s.mux.ServeHTTP(w, r)
}

// request carries what the handlers need about one request.
type request struct {
	stream  string
	session string // signature query to propagate into URIs ("" when none)
}

// authed wraps a handler with CORS, stream-name validation and access
// control.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.Access.cors(w, r)
		req := request{stream: r.PathValue("stream")}
		if req.stream != "" || strings.Contains(r.URL.Path, "/v1/streams/") && r.URL.Path != "/v1/streams" {
			if err := fragment.ValidateStreamName(req.stream); err != nil {
				WriteError(w, http.StatusBadRequest, "invalid_stream", err.Error())
				return
			}
		}
		sess, err := s.Access.check(r, req.stream, s.Now())
		switch {
		case errors.Is(err, ErrUnauthorized):
			w.Header().Set("WWW-Authenticate", `Bearer realm="tributary"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		case err != nil:
			WriteError(w, http.StatusForbidden, "forbidden", err.Error())
			return
		}
		req.session = sess
		h(w, r, req)
	}
}

// WriteJSON answers with v as indented JSON and the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers with the API's JSON error,
// {"error":{"code":…,"message":…}}, and the status code.
func WriteError(w http.ResponseWriter, code int, errCode, msg string) {
	WriteJSON(w, code, map[string]any{"error": map[string]string{"code": errCode, "message": msg}})
}

// fail maps an error to its HTTP status.
func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadParam), errors.Is(err, archive.ErrInvalidRequest), errors.Is(err, archive.ErrInvalidToken),
		errors.Is(err, fragment.ErrInvalidStreamName):
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, errNoStream), errors.Is(err, errNoFootage):
		WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, archive.ErrNotFound):
		WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, archive.ErrInvalidRange):
		WriteError(w, http.StatusRequestedRangeNotSatisfiable, "bad_range", err.Error())
	case errors.Is(err, errNoFFmpeg):
		WriteError(w, http.StatusNotImplemented, "not_implemented", err.Error())
	case errors.Is(err, errNotYours):
		WriteError(w, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, context.Canceled):
		// the client went away
	default:
		s.Logger.Error("playback", "err", err)
		WriteError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

var errNoStream = errors.New("no such stream")

// errNotYours is a stream a request's session does not cover.
var errNotYours = errors.New("not readable with this session")

// info reads a stream's stream.json; a missing one is errNoStream.
func (s *Server) info(ctx context.Context, stream string) (archive.StreamInfo, error) {
	key, err := s.Layout.StreamKey(stream)
	if err != nil {
		return archive.StreamInfo{}, err
	}
	b, err := s.get(ctx, key, 1<<20)
	if errors.Is(err, archive.ErrNotFound) {
		return archive.StreamInfo{}, fmt.Errorf("%w: %q", errNoStream, stream)
	}
	if err != nil {
		return archive.StreamInfo{}, err
	}
	var si archive.StreamInfo
	if err := json.Unmarshal(b, &si); err != nil {
		return archive.StreamInfo{}, fmt.Errorf("%s: %w", key, err)
	}
	return si, nil
}

// get reads a whole object of at most max bytes.
func (s *Server) get(ctx context.Context, key string, max int64) ([]byte, error) {
	rc, info, err := s.Store.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", key, info.Size, max)
	}
	var buf bytes.Buffer
	buf.Grow(int(info.Size))
	if _, err := io.Copy(&buf, io.LimitReader(rc, max+1)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// initSegment returns (and caches) an init segment.
func (s *Server) initSegment(ctx context.Context, stream, hash string) ([]byte, []fragment.Track, error) {
	key, err := s.Layout.InitKey(stream, hash)
	if err != nil {
		return nil, nil, err
	}
	if v, ok := s.inits.Load(key); ok {
		c := v.(cachedInit)
		return c.b, c.tracks, nil
	}
	b, err := s.get(ctx, key, 1<<20)
	if err != nil {
		return nil, nil, err
	}
	tracks, err := fragment.ParseInit(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", key, err)
	}
	s.inits.Store(key, cachedInit{b: b, tracks: tracks})
	return b, tracks, nil
}

type cachedInit struct {
	b      []byte
	tracks []fragment.Track
}

// readFragment reads and parses an archived fragment (fMP4 or MKV).
func (s *Server) readFragment(ctx context.Context, m fragment.Metadata) (*fragment.Fragment, error) {
	data, err := s.get(ctx, m.Key, 1<<30)
	if err != nil {
		return nil, err
	}
	var f *fragment.Fragment
	if m.Container == fragment.ContainerMKV || strings.HasSuffix(m.Key, ".mkv") {
		c, err := fragment.NewMKVReader(bytes.NewReader(data)).Next()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Key, err)
		}
		if f, err = c.Fragment(); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Key, err)
		}
	} else {
		_, tracks, err := s.initSegment(ctx, m.Stream, m.InitHash)
		if err != nil {
			return nil, err
		}
		if f, err = fragment.ParseFMP4(data, tracks); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Key, err)
		}
	}
	number := m.Number
	f.Metadata = m
	f.Number = number
	if f.InitHash == "" {
		f.InitHash = fragment.ConfigHash(f.TrackConfigs)
	}
	return f, nil
}
