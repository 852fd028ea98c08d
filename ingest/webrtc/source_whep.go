package webrtc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tributary-io/tributary/ingest"
)

// Errors of a WHEP pull.
var (
	ErrBadURL    = errors.New("bad WHEP URL")
	ErrBadAnswer = errors.New("WHEP endpoint answered badly")
)

// maxSDP bounds an SDP body.
const maxSDP = 64 << 10

// Source pulls one stream from a WHEP endpoint: recvonly video and audio
// transceivers, an SDP offer POSTed as application/sdp, the 201 answer,
// and a DELETE of its Location when the session ends. One Run is one
// session; an ingest.Supervisor runs them with backoff.
type Source struct {
	// URL of the endpoint: whep://host/path (over HTTP) or wheps://…
	// (HTTPS); http(s):// URLs are taken as they are.
	URL string
	// Token is sent as "Authorization: Bearer …" when set.
	Token string
	// Engine makes the peer connections (ICE servers, ports). Required.
	Engine *Engine
	// StallTimeout ends a session that receives no media for this long.
	// Default 5 s.
	StallTimeout time.Duration
	// Timeout of the HTTP exchange, and of the first track's arrival
	// after it. Default 10 s.
	Timeout time.Duration
	// ReorderDelay is how long a sequence gap is waited for. Default 150 ms.
	ReorderDelay time.Duration
	// KeyframeInterval: with no keyframe for this long, a PLI asks for
	// one. Default 2 s (the fragment target).
	KeyframeInterval time.Duration
	// MaxClockSkew is passed to the producer Clock. Default 10 min.
	MaxClockSkew time.Duration
	// Client does the HTTP requests. Default: a client with Timeout.
	Client *http.Client
	// Counters receive the source's counts. Required.
	Counters *ingest.Counters
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// IsURL reports whether raw names a WHEP endpoint (whep:// or wheps://).
func IsURL(raw string) bool {
	return strings.HasPrefix(raw, "whep://") || strings.HasPrefix(raw, "wheps://")
}

// endpoint returns the HTTP URL of the endpoint.
func (s *Source) endpoint() (*url.URL, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, ingest.Permanent(fmt.Errorf("%w: %s", ErrBadURL, Redact(s.URL)))
	}
	switch u.Scheme {
	case "whep":
		u.Scheme = "http"
	case "wheps":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, ingest.Permanent(fmt.Errorf("%w: scheme %q is not whep, wheps, http or https", ErrBadURL, u.Scheme))
	}
	if u.Host == "" {
		return nil, ingest.Permanent(fmt.Errorf("%w: no host in %s", ErrBadURL, Redact(s.URL)))
	}
	return u, nil
}

// Redact returns raw with credentials (user info, a token in the query)
// replaced, for logs and status.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			if k == "token" || k == "access_token" || strings.Contains(strings.ToLower(k), "key") {
				q.Set(k, "REDACTED")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Validate checks the URL without connecting. Its errors wrap
// ingest.ErrPermanent.
func (s *Source) Validate() error {
	_, err := s.endpoint()
	return err
}

// Probe reports whether the endpoint's port accepts TCP connections, for
// the Supervisor's early retry.
func (s *Source) Probe(ctx context.Context) bool {
	u, err := s.endpoint()
	if err != nil {
		return false
	}
	hp := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		hp = net.JoinHostPort(u.Hostname(), port)
	}
	c, err := (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext(ctx, "tcp", hp)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (s *Source) defaults() {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Client == nil {
		s.Client = &http.Client{Timeout: s.Timeout}
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Counters == nil {
		s.Counters = &ingest.Counters{}
	}
	if s.Engine == nil {
		s.Engine = &Engine{}
	}
}

// Run runs one session: offer, answer, and media into sink until the
// connection fails, media stalls or ctx ends. started is called when the
// first sample reaches the sink.
func (s *Source) Run(ctx context.Context, sink ingest.Sink, started func()) error {
	s.defaults()
	u, err := s.endpoint()
	if err != nil {
		return err
	}
	pc, err := s.Engine.newPeer()
	if err != nil {
		return ingest.Permanent(fmt.Errorf("webrtc: %w", err))
	}
	r := &receiver{counters: s.Counters, log: s.Logger, stall: s.StallTimeout, timeout: s.Timeout,
		reorderDelay: s.ReorderDelay, maxSkew: s.MaxClockSkew, keyInterval: s.KeyframeInterval}
	r.attach(pc)
	var location string
	defer func() {
		if location != "" {
			s.hangUp(location)
		}
		pc.Close()
		r.close()
	}()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("webrtc: %w", err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("webrtc offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("webrtc offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil
	case <-time.After(s.Timeout):
		// send what was gathered so far
	}
	answer, loc, err := s.post(ctx, u, pc.LocalDescription().SDP)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	location = loc
	want, offered, err := sendingTracks(answer)
	if err != nil {
		return fmt.Errorf("%w: SDP: %v", ErrBadAnswer, err)
	}
	if want == 0 {
		// retried: the endpoint may have nothing to send yet
		return fmt.Errorf("%w; answered: %s", ErrNoSupportedTracks, strings.Join(offered, ", "))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAnswer, err)
	}
	return r.run(ctx, want, sink, started)
}

// post sends the offer and returns the answer and the session's URL.
func (s *Source) post(ctx context.Context, u *url.URL, offer string) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(offer))
	if err != nil {
		return "", "", ingest.Permanent(fmt.Errorf("%w: %v", ErrBadURL, err))
	}
	req.Header.Set("Content-Type", "application/sdp")
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	res, err := s.Client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return "", "", fmt.Errorf("%w: %v", ingest.ErrUnreachable, err)
		}
		return "", "", fmt.Errorf("WHEP request: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxSDP+1))
	if err != nil {
		return "", "", fmt.Errorf("WHEP answer: %w", err)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return "", "", fmt.Errorf("WHEP endpoint: %w (%s)", ErrUnauthorized, res.Status)
	case res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK:
		return "", "", fmt.Errorf("%w: %s: %s", ErrBadAnswer, res.Status, firstLine(body))
	case len(body) > maxSDP:
		return "", "", fmt.Errorf("%w: answer over %d bytes", ErrBadAnswer, maxSDP)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/sdp") {
		return "", "", fmt.Errorf("%w: Content-Type %q, not application/sdp", ErrBadAnswer, ct)
	}
	if loc := res.Header.Get("Location"); loc != "" {
		if lu, err := u.Parse(loc); err == nil {
			location = lu.String()
		}
	}
	return string(body), location, nil
}

// hangUp DELETEs the session's resource (best effort).
func (s *Source) hangUp(location string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	res, err := s.Client.Do(req)
	if err != nil {
		s.Logger.Debug("WHEP DELETE", "err", err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	res.Body.Close()
}

func firstLine(b []byte) string {
	b, _, _ = bytes.Cut(b, []byte("\n"))
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}
