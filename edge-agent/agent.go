package edgeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/putmedia"
	"github.com/tributary-io/tributary/ingest/sensor"
	iwebrtc "github.com/tributary-io/tributary/ingest/webrtc"
	"github.com/tributary-io/tributary/playback"
)

// Agent runs the configured streams. Start it once; Close stops every
// stream, stores the fragments in progress and waits.
type Agent struct {
	// Config is the agent's configuration (already validated).
	Config *Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Store overrides the archive built from Config.Archive (tests).
	Store archive.Store
	// Handler, when set, is mounted on the agent's HTTP server for every
	// path the agent does not serve itself (the playback API).
	Handler http.Handler
	// ShutdownGrace is how long Close waits for uploads to take the last
	// fragments to the archive; what is not uploaded stays in the spool for
	// the next run. Default: Config.Spool.ShutdownGrace (5 s).
	ShutdownGrace time.Duration

	spool     *spool
	uploader  *uploader
	inference *inference.Dispatcher
	engine    *iwebrtc.Engine // WebRTC peer connections (WHEP pulls, WHIP)
	whip      *iwebrtc.Server

	mu           sync.Mutex // guards pipelines (push streams are added while running) and closing
	closing      bool
	layout       archive.Layout
	storeLatency latencyObserver
	pushCounters putmedia.Counters
	hub          hub
	access       playback.Access
	upCancel     context.CancelFunc
	upDone       chan struct{}

	pipelines []*pipeline
	registry  *prometheus.Registry
	srv       *http.Server
	ln        net.Listener
	srvDone   chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Start opens the archive, starts one pipeline per enabled stream and the
// HTTP server. It returns once everything is running.
func (a *Agent) Start(ctx context.Context) error {
	if a.Config == nil {
		return errors.New("edgeagent: no config")
	}
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	cfg := a.Config
	if a.Store == nil {
		st, err := OpenArchive(ctx, cfg.Archive, a.Logger)
		if err != nil {
			return err
		}
		a.Store = st
	}
	layout := archive.Layout{Prefix: cfg.Archive.Prefix}
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tributary_fragment_store_seconds",
		Help:    "Time from a fragment's close to its durable write in the archive.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	a.registry.MustRegister(latency, &metrics{agent: a})

	uploadLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tributary_fragment_upload_seconds",
		Help:    "Time from a fragment's close to its arrival in the archive (through the spool).",
		Buckets: []float64{.01, .025, .05, .1, .15, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
	})
	a.registry.MustRegister(uploadLatency)

	if cfg.Spool.Active(cfg.Archive.Type) {
		sp, err := openSpool(cfg.Spool.Path, int64(cfg.Spool.MaxBytes), cfg.Spool.Strategy, !*cfg.Spool.DeleteAfterUpload,
			a.Logger.With("component", "spool"))
		if err != nil {
			return err
		}
		a.spool = sp
		a.uploader = &uploader{
			spool: sp, store: a.Store, layout: layout, workers: cfg.Spool.UploadConcurrency,
			log: a.Logger.With("component", "uploader"), classify: a.classify,
			onUploaded: func(m fragment.Metadata, d time.Duration) {
				uploadLatency.Observe(d.Seconds())
				a.landed(m)
				if cfg.PutMedia.PersistedOn == "archive" {
					for _, p := range a.streams() {
						if p.cfg.Name == m.Stream {
							p.ackPersisted(m)
						}
					}
				}
			},
		}
	}

	a.layout, a.storeLatency = layout, latency
	a.engine = cfg.WebRTC.engine()
	a.whip = a.whipServer()
	for _, h := range cfg.Inference.Hooks {
		if h.Placement == inference.PlacementEdge {
			a.startInference(layout)
			break
		}
	}
	for _, sc := range cfg.Streams {
		if sc.Disabled {
			continue
		}
		p, err := a.newStream(sc)
		if err != nil {
			a.closeSpool()
			return err
		}
		a.pipelines = append(a.pipelines, p)
	}
	// sensor streams aligned to a camera hear of its fragments' ends
	for _, p := range a.pipelines {
		if p.sensor == nil || p.sensor.cuts == nil {
			continue
		}
		for _, q := range a.pipelines {
			if q.cfg.Name == p.sensor.cfg.AlignTo && q != p {
				q.cutListeners = append(q.cutListeners, p.sensor.cuts)
			}
		}
	}
	acc, err := a.apiAccess()
	if err != nil {
		a.closeSpool()
		return err
	}
	a.access = acc
	if a.Handler == nil {
		a.Handler = &playback.Server{Store: a.Store, Layout: layout, Access: acc, Live: a, Logger: a.Logger.With("component", "playback")}
	}
	if cfg.HTTP.Listen != "off" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		a.ln = ln
		a.srv = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
		a.srvDone = make(chan struct{})
		go func() {
			defer close(a.srvDone)
			if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.Logger.Error("http server", "err", err)
			}
		}()
		a.Logger.Info("agent listening", "addr", ln.Addr().String())
	}
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, p := range a.pipelines {
		switch {
		case p.source != nil:
			p.start(a.ctx)
		case p.sensor != nil:
			p.startSensor(a.ctx)
		default:
			p.startPush(a.ctx)
		}
	}
	go a.retentionLoop(a.ctx, layout)
	if a.uploader != nil {
		var upCtx context.Context
		upCtx, a.upCancel = context.WithCancel(context.WithoutCancel(ctx))
		a.upDone = make(chan struct{})
		go func() {
			defer close(a.upDone)
			a.uploader.run(upCtx)
		}()
		retention := time.Duration(cfg.Spool.Retention)
		go func() {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-upCtx.Done():
					return
				case <-t.C:
					a.spool.expire(retention)
				}
			}
		}()
	}
	return nil
}

// newStream builds a stream's pipeline (not started).
func (a *Agent) newStream(sc StreamConfig) (*pipeline, error) {
	p, err := newPipeline(sc, a.Store, a.layout, filepath.Join(a.Config.DataDir, "state"), a.Logger, a.storeLatency, a.engine)
	if err != nil {
		return nil, err
	}
	p.persistOnUpload = a.Config.PutMedia.PersistedOn == "archive"
	p.landed = a.landed
	if p.sensor != nil {
		p.sensor.journalDir = filepath.Join(a.Config.DataDir, "sensors", sc.Name)
	}
	p.inference = a.inference
	if a.spool != nil {
		p.spool = a.spool
		if p.crashLost {
			a.spool.countLost(sc.Name, LostCrash)
		}
		// numbering continues after whatever the spool holds
		if n := a.spool.maxNumber(sc.Name); n >= p.seq.next {
			p.seq.next, p.seq.reserved = n+1, n+1
		}
	}
	return p, nil
}

// streams returns the current pipelines (push streams may be added).
func (a *Agent) streams() []*pipeline {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*pipeline(nil), a.pipelines...)
}

// classify says whether an archive error is worth retrying, and its class
// for metrics.
func (a *Agent) classify(err error) (bool, string) {
	if errors.Is(err, ErrConfig) {
		return false, "config"
	}
	return archive.Retryable(err), archive.ErrorClass(err)
}

// retentionLoop enforces each stream's archive retention: a bucket
// lifecycle rule where the store supports one, and a prune every hour
// (which also covers stores without lifecycle rules).
func (a *Agent) retentionLoop(ctx context.Context, layout archive.Layout) {
	type lifecycler interface {
		SetLifecycle(ctx context.Context, prefix string, days int) error
	}
	var streams []StreamConfig
	for _, p := range a.streams() {
		if p.cfg.Retention > 0 {
			streams = append(streams, p.cfg)
		}
	}
	if len(streams) == 0 {
		return
	}
	if lc, ok := a.Store.(lifecycler); ok {
		for _, sc := range streams {
			days := int((time.Duration(sc.Retention) + 24*time.Hour - 1) / (24 * time.Hour))
			prefix, err := layout.FragmentsPrefix(sc.Name)
			if err != nil {
				continue
			}
			if err := lc.SetLifecycle(ctx, prefix, days); err != nil {
				a.Logger.Info("no bucket lifecycle rule; the agent prunes instead", "stream", sc.Name, "err", err)
			}
		}
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, sc := range streams {
			res, err := archive.Prune(ctx, a.Store, layout, sc.Name, time.Now().Add(-time.Duration(sc.Retention)), false)
			if err != nil {
				a.Logger.Warn("archive retention", "stream", sc.Name, "err", err)
			} else if res.Fragments > 0 {
				a.Logger.Info("archive retention: pruned", "stream", sc.Name, "fragments", res.Fragments, "bytes", res.Bytes, "records", res.Records)
			}
		}
		t.Reset(time.Hour)
	}
}

func (a *Agent) closeSpool() {
	if a.spool != nil {
		if err := a.spool.close(); err != nil {
			a.Logger.Error("closing the spool", "err", err)
		}
	}
}

// Addr is the HTTP server's address ("" when it is off).
func (a *Agent) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Close stops every stream (closing and storing the fragment in progress),
// then the HTTP server.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closing = true
		a.mu.Unlock()
		var wg sync.WaitGroup
		for _, p := range a.streams() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop()
			}()
		}
		wg.Wait()
		if a.whip != nil {
			a.whip.Close() // its sessions ended with their streams
		}
		if a.cancel != nil {
			a.cancel()
		}
		if a.uploader != nil {
			// give the uploads a moment to take the last fragments to the
			// archive; whatever is left stays in the spool for the next run
			grace := a.ShutdownGrace
			if grace == 0 {
				grace = time.Duration(a.Config.Spool.ShutdownGrace)
			}
			deadline := time.Now().Add(grace)
			for time.Now().Before(deadline) && a.spool.status().Fragments > 0 && a.spool.uploadable() {
				time.Sleep(20 * time.Millisecond)
			}
			a.upCancel()
			<-a.upDone
			a.closeSpool()
		}
		if a.inference != nil {
			a.inference.Close()
		}
		if a.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.srv.Shutdown(ctx)
			<-a.srvDone
		}
	})
	return nil
}

// Status returns every stream's status.
func (a *Agent) Status() []StreamStatus {
	ps := a.streams()
	out := make([]StreamStatus, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out
}

// SpoolStatus returns the spool's state (zero without a spool).
func (a *Agent) SpoolStatus() SpoolStatus {
	if a.spool == nil {
		return SpoolStatus{}
	}
	return a.spool.status()
}

// InferenceStats returns the counts of the inference hooks (none without
// hooks).
func (a *Agent) InferenceStats() []inference.HookStats {
	if a.inference == nil {
		return nil
	}
	return a.inference.Stats()
}

// Registry is the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.registry }

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := a.Status()
		if v := r.URL.Query().Get("latency_since"); v != "" {
			since, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				playback.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("latency_since: %q is not an RFC 3339 time", v))
				return
			}
			for i, p := range a.streams() {
				if i < len(st) && st[i].Name == p.cfg.Name {
					p.mu.Lock()
					st[i].DurableLatency = p.durable.since(since)
					p.mu.Unlock()
				}
			}
		}
		out := map[string]any{"streams": st}
		if a.spool != nil {
			out["spool"] = a.spool.status()
		}
		if a.inference != nil {
			out["inference"] = a.inference.Stats()
		}
		playback.WriteJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/status/{stream}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("stream")
		for _, p := range a.streams() {
			if p.cfg.Name == name {
				playback.WriteJSON(w, http.StatusOK, p.snapshot())
				return
			}
		}
		playback.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no stream %q", name))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		playback.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		// ready once every stream has left its first connecting state
		var waiting []string
		for _, s := range a.Status() {
			if s.State == ingest.StateConnecting && s.Sessions == 0 && s.LastError == "" {
				waiting = append(waiting, s.Name)
			}
		}
		if len(waiting) > 0 {
			playback.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "starting", "streams": waiting})
			return
		}
		playback.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	if a.Config.HTTP.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("POST /v1/streams/{stream}/putmedia", a.putMediaHandler())
	mux.HandleFunc("POST /v1/streams/{stream}/samples", a.samplesHandler)
	mux.HandleFunc("/v1/streams/{stream}/whip", func(w http.ResponseWriter, r *http.Request) {
		if a.whipCORS(w, r) {
			return
		}
		a.whip.ServeHTTP(w, r, r.PathValue("stream"))
	})
	mux.HandleFunc("/v1/streams/{stream}/whip/{session}", func(w http.ResponseWriter, r *http.Request) {
		if a.whipCORS(w, r) {
			return
		}
		a.whip.ServeSession(w, r, r.PathValue("stream"), r.PathValue("session"))
	})
	if a.Handler != nil {
		mux.Handle("/", a.Handler)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			playback.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
		})
	}
	return mux
}

// landed is told when a fragment is in the archive: live subscribers, and
// webhooks, whose notices point at it.
func (a *Agent) landed(m fragment.Metadata) {
	a.hub.notify(m)
	if d := a.inference; d != nil && !sensor.HasReadings(&m) { // hooks take video
		if which := d.Wants(&m, true); len(which) > 0 {
			d.Offer(which, &inference.Input{Meta: m}, m.ServerTime)
		}
	}
}

// startInference starts the hooks' dispatcher. Results and dead letters go
// to the archive (not through the spool: they are small, and an edge
// result the archive cannot take is counted as unrecorded).
func (a *Agent) startInference(layout archive.Layout) {
	cfg := a.Config.Inference
	records := &inference.Records{Store: a.Store, Layout: layout}
	d := &inference.Dispatcher{Queue: cfg.Queue, Logger: a.Logger.With("component", "inference")}
	for _, h := range cfg.Hooks {
		if h.Placement != inference.PlacementEdge {
			continue // for tributary consume
		}
		d.Invokers = append(d.Invokers, &inference.Invoker{
			Hook: h, Records: records, FragmentURL: a.fragmentURLs, Readings: a.readingsFor, ReadingsURLs: a.readingsURLs,
			Logger: a.Logger.With("component", "inference", "model", h.Model),
		})
	}
	d.Start()
	a.inference = d
	a.registry.MustRegister(d)
}

// publicBase is the agent's base URL as hook endpoints reach it.
func (a *Agent) publicBase() (string, error) {
	base := strings.TrimRight(a.Config.Inference.PublicURL, "/")
	if base == "" {
		addr := a.Addr()
		if addr == "" {
			return "", errors.New("the agent serves no HTTP (http.listen off) and inference.public_url is not set")
		}
		base = "http://" + addr
	}
	return base, nil
}

// fragmentURLs returns signed URLs of a fragment and of its init segment
// on the agent's playback API, for webhook notices: each signed for its
// own path alone, valid for an hour.
func (a *Agent) fragmentURLs(m fragment.Metadata) (string, string, error) {
	base, err := a.publicBase()
	if err != nil {
		return "", "", err
	}
	prefix, err := a.layout.FragmentsPrefix(m.Stream)
	if err != nil {
		return "", "", err
	}
	rel, ok := strings.CutPrefix(m.Key, prefix)
	if !ok {
		return "", "", fmt.Errorf("fragment key %q is not under %q", m.Key, prefix)
	}
	if m.Container == fragment.ContainerMKV {
		rel += ".m4s" // served remuxed to fMP4
	}
	sign := func(path string) string {
		if a.access.Disabled {
			return base + path
		}
		return base + path + "?" + a.access.SignPath(path, time.Hour, time.Now())
	}
	s := "/v1/streams/" + m.Stream
	return sign(s + "/hls/f/" + rel), sign(s + "/hls/init/" + m.InitHash + ".mp4"), nil
}
