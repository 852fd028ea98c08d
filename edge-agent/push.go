package edgeagent

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/putmedia"
	iwebrtc "github.com/tributary-io/tributary/ingest/webrtc"
	"github.com/tributary-io/tributary/playback"
)

// StateWaiting is the state of a push stream with no producer connected.
const StateWaiting = "waiting"

// startPush starts a push stream's pipeline: its store goroutine only; a
// producer's PutMedia session drives the Sink while it holds the stream.
func (p *pipeline) startPush(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.stopping = make(chan struct{})
	storeDone := make(chan struct{})
	go func() {
		defer close(storeDone)
		p.storeLoop()
	}()
	p.onState(StateWaiting, nil, 0)
	go func() {
		defer close(p.done)
		<-ctx.Done()
		close(p.stopping) // the producer's session ends and releases the stream
		p.pushMu.Lock()
		for p.pushBusy {
			p.pushCond.Wait()
		}
		p.pushMu.Unlock()
		p.cutter.Flush()
		close(p.queue)
		<-storeDone
		p.seq.SetLastEnd(p.lastEnd)
		if err := p.seq.Close(); err != nil {
			p.log.Error("saving fragment numbering", "err", err)
		}
	}()
}

// pushTarget is a push stream held by one producer.
type pushTarget struct{ *pipeline }

func (t pushTarget) CutAtNextKeyframe() { t.cutter.CutAtNextKeyframe() }

func (t pushTarget) SetAcks(f func(putmedia.Ack)) {
	if f == nil {
		t.acks.Store(nil)
		return
	}
	t.acks.Store(&f)
}

func (t pushTarget) Done() <-chan struct{} { return t.stopping }

func (t pushTarget) Release() {
	t.acks.Store(nil)
	t.pushMu.Lock()
	t.pushBusy = false
	t.pushMu.Unlock()
	t.pushCond.Broadcast()
	t.onState(StateWaiting, nil, 0)
}

// ack sends a fragment event to the producer pushing this stream, if any.
func (p *pipeline) ack(a putmedia.Ack) {
	if f := p.acks.Load(); f != nil {
		(*f)(a)
	}
}

// Acquire implements putmedia.Targets: it hands a push stream to one
// producer, creating the stream on its first push when the config allows.
func (a *Agent) Acquire(ctx context.Context, stream string) (putmedia.Target, error) {
	if err := fragment.ValidateStreamName(stream); err != nil {
		return nil, fmt.Errorf("%w: %v", putmedia.ErrUnknownStream, err)
	}
	a.mu.Lock()
	var p *pipeline
	for _, q := range a.pipelines {
		if q.cfg.Name == stream {
			p = q
		}
	}
	if p == nil {
		if a.closing {
			a.mu.Unlock()
			return nil, fmt.Errorf("%w: the agent is stopping", putmedia.ErrUnknownStream)
		}
		if !*a.Config.PutMedia.AllowNewStreams {
			a.mu.Unlock()
			return nil, fmt.Errorf("%w: %q", putmedia.ErrUnknownStream, stream)
		}
		sc := a.Config.streamDefaults(stream)
		np, err := a.newStream(sc)
		if err != nil {
			a.mu.Unlock()
			return nil, err
		}
		a.pipelines = append(a.pipelines, np)
		np.startPush(a.ctx)
		p = np
		a.Logger.Info("new push stream", "stream", stream)
	}
	a.mu.Unlock()
	if p.source != nil || p.sensor != nil {
		return nil, fmt.Errorf("%w: %q", putmedia.ErrNotPushable, stream)
	}
	p.pushMu.Lock()
	defer p.pushMu.Unlock()
	select {
	case <-p.stopping:
		return nil, fmt.Errorf("%w: the stream is stopping", putmedia.ErrBusy)
	default:
	}
	if p.pushBusy {
		return nil, fmt.Errorf("%w: %q", putmedia.ErrBusy, stream)
	}
	p.pushBusy = true
	p.onState(ingest.StateStreaming, nil, 0)
	return pushTarget{p}, nil
}

// authorizePush checks a PutMedia request's bearer token.
func (a *Agent) authorizePush(r *http.Request, stream string) error {
	if !*a.Config.PutMedia.Enabled {
		return putmedia.ErrForbidden
	}
	return a.checkPushToken(r, stream)
}

// checkPushToken checks a producer's bearer token against putmedia.tokens
// and the stream's own token (unless putmedia.auth is none).
func (a *Agent) checkPushToken(r *http.Request, stream string) error {
	pc := a.Config.PutMedia
	if pc.Auth == "none" {
		return nil
	}
	tokens := pc.Tokens
	for _, sc := range a.Config.Streams {
		if sc.Name == stream && sc.Token != "" {
			tokens = append(tokens[:len(tokens):len(tokens)], sc.Token)
		}
	}
	if len(tokens) == 0 {
		return fmt.Errorf("%w: no putmedia.tokens are configured", putmedia.ErrForbidden)
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return putmedia.ErrUnauthorized
	}
	for _, t := range tokens {
		if subtle.ConstantTimeCompare([]byte(got), []byte(t)) == 1 {
			return nil
		}
	}
	return putmedia.ErrUnauthorized
}

// putMediaHandler is the agent's POST /v1/streams/{stream}/putmedia.
func (a *Agent) putMediaHandler() *putmedia.Handler {
	pc := a.Config.PutMedia
	return &putmedia.Handler{
		Targets:           a,
		Authorize:         a.authorizePush,
		MaxTracks:         pc.MaxTracks,
		MaxBytesPerSecond: int64(pc.MaxRate),
		MaxFrameSize:      int64(pc.MaxFrameSize),
		Counters:          &a.pushCounters,
		Logger:            a.Logger,
	}
}

// streamDefaults is the configuration of a stream created by a push.
func (c *Config) streamDefaults(name string) StreamConfig {
	d := c.Defaults
	return StreamConfig{
		Name: name, Transport: d.Transport, StallTimeout: d.StallTimeout, Fragment: d.Fragment,
		Container: d.Container, Retention: c.Archive.Retention,
	}
}

// pushAckReceived and friends map pipeline events to acks.
func (p *pipeline) ackReceived(m fragment.Metadata) {
	p.ack(putmedia.FragmentAck(putmedia.EventReceived, m))
}

func (p *pipeline) ackPersisted(m fragment.Metadata) {
	p.ack(putmedia.FragmentAck(putmedia.EventPersisted, m))
}

func (p *pipeline) ackError(code putmedia.ErrorCode, at time.Time, err error) {
	p.ack(putmedia.ErrorAck(code, at.UnixMilli(), err.Error()))
}

// whipTargets hands push streams to WHIP publishers, as to PutMedia
// producers: one publisher per stream, streams created on a first publish
// when putmedia.allow_new_streams is on.
type whipTargets struct{ a *Agent }

// whipTarget is a push stream held by a WHIP publisher.
type whipTarget struct{ pushTarget }

func (t whipTarget) Counters() *ingest.Counters { return &t.counters }

// Settings are the stream's stall timeout, and its fragment target as the
// longest time without a keyframe.
func (t whipTarget) Settings() iwebrtc.TargetSettings {
	return iwebrtc.TargetSettings{StallTimeout: time.Duration(t.cfg.StallTimeout), KeyframeInterval: time.Duration(t.cfg.Fragment.Target)}
}

func (w whipTargets) Acquire(ctx context.Context, stream string) (iwebrtc.Target, error) {
	t, err := w.a.Acquire(ctx, stream)
	switch {
	case errors.Is(err, putmedia.ErrBusy):
		return nil, fmt.Errorf("%w: %v", iwebrtc.ErrBusy, err)
	case errors.Is(err, putmedia.ErrNotPushable):
		return nil, fmt.Errorf("%w: %v", iwebrtc.ErrForbidden, err)
	case errors.Is(err, putmedia.ErrUnknownStream):
		return nil, fmt.Errorf("%w: %v", iwebrtc.ErrUnknownStream, err)
	case err != nil:
		return nil, err
	}
	return whipTarget{t.(pushTarget)}, nil
}

// authorizeWHIP checks a WHIP request's bearer token: a push token
// (putmedia.tokens, the stream's token), or an API token when
// webrtc.api_tokens_publish is on (the viewer's Publish camera button
// sends the viewer's token).
func (a *Agent) authorizeWHIP(r *http.Request, stream string) error {
	if !*a.Config.WebRTC.WHIP {
		return fmt.Errorf("%w: webrtc.whip is off", iwebrtc.ErrForbidden)
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.Config.WebRTC.APITokensPublish && !a.access.Disabled {
		for _, t := range a.access.Tokens {
			if subtle.ConstantTimeCompare([]byte(got), []byte(t)) == 1 {
				return nil
			}
		}
	}
	err := a.checkPushToken(r, stream)
	switch {
	case errors.Is(err, putmedia.ErrUnauthorized):
		return fmt.Errorf("%w", iwebrtc.ErrUnauthorized)
	case errors.Is(err, putmedia.ErrForbidden):
		return fmt.Errorf("%w: %v", iwebrtc.ErrForbidden, err)
	}
	return err
}

// whipServer is the agent's WHIP endpoint.
func (a *Agent) whipServer() *iwebrtc.Server {
	return &iwebrtc.Server{
		Targets:       whipTargets{a},
		Authorize:     a.authorizeWHIP,
		Engine:        a.engine,
		MaxPublishers: a.Config.WebRTC.MaxPublishers,
		StallTimeout:  time.Duration(a.Config.Defaults.StallTimeout),
		// a keyframe at least every fragment target
		KeyframeInterval: time.Duration(a.Config.Defaults.Fragment.Target),
		Logger:           a.Logger.With("component", "whip"),
	}
}

// whipCORS sets the CORS headers of a WHIP request from an allowed origin
// (api.cors_origins), so that pages elsewhere can publish, and answers a
// preflight; it reports whether it did.
func (a *Agent) whipCORS(w http.ResponseWriter, r *http.Request) bool {
	a.access.CORS(w, r, whipCORSRules)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		w.Header().Set("Accept-Post", "application/sdp")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// whipCORSRules let pages elsewhere publish and end their sessions.
var whipCORSRules = playback.CORSRules{Methods: "POST, DELETE, PATCH, OPTIONS", Headers: "Authorization, Content-Type, If-Match", Expose: "Location, ETag, Link"}
