package edgeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/ingest"
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
		local := &archive.Local{Root: cfg.Archive.Path}
		// temp files of writes cut short by a crash or power loss
		if n, err := local.CleanTemp(ctx, 0); err != nil {
			a.Logger.Warn("cleaning the archive's temp files", "err", err)
		} else if n > 0 {
			a.Logger.Info("removed temp files left by an interrupted write", "count", n)
		}
		a.Store = local
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

	seqDir := filepath.Join(cfg.DataDir, "state")
	for _, sc := range cfg.Streams {
		if sc.Disabled {
			continue
		}
		p, err := newPipeline(sc, a.Store, layout, seqDir, a.Logger, latency)
		if err != nil {
			return err
		}
		a.pipelines = append(a.pipelines, p)
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
		p.start(a.ctx)
	}
	return nil
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
		var wg sync.WaitGroup
		for _, p := range a.pipelines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop()
			}()
		}
		wg.Wait()
		if a.cancel != nil {
			a.cancel()
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
	out := make([]StreamStatus, 0, len(a.pipelines))
	for _, p := range a.pipelines {
		out = append(out, p.snapshot())
	}
	return out
}

// Registry is the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.registry }

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"streams": a.Status()})
	})
	mux.HandleFunc("GET /v1/status/{stream}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("stream")
		for _, p := range a.pipelines {
			if p.cfg.Name == name {
				writeJSON(w, http.StatusOK, p.snapshot())
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no stream %q", name))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "starting", "streams": waiting})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	if a.Handler != nil {
		mux.Handle("/", a.Handler)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
		})
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]string{"code": errCode, "message": msg}})
}
