package inference

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/fragment"
)

// DefaultQueue is Dispatcher.Queue's default.
const DefaultQueue = 64

// Dispatcher runs hooks in the agent on fragments as they close. Offer
// never blocks: each hook has a bounded queue, and a fragment that finds
// it full is dropped for that hook and counted. Start it, Offer
// fragments, Close it.
type Dispatcher struct {
	// Invokers, one per hook.
	Invokers []*Invoker
	// Queue is the number of fragments waiting per hook. Default 64.
	Queue int
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	hooks  []*edgeHook
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// edgeHook is one hook's queue, samplers and counts.
type edgeHook struct {
	iv    *Invoker
	queue chan *job

	offered, dropped, results, dead, failed atomic.Uint64
	inFlight                                atomic.Int64
	lastLatency                             atomic.Int64 // ns, endpoint
	lastEndToEnd                            atomic.Int64 // ns, fragment close to record stored
}

type job struct {
	in     *Input
	closed time.Time
}

// HookStats are a hook's counts, for status and metrics.
type HookStats struct {
	Model   string `json:"model"`
	Kind    string `json:"kind"`
	URL     string `json:"url"`
	Breaker string `json:"breaker"`
	// Offered fragments were sampled; Dropped found the queue full.
	Offered uint64 `json:"offered"`
	Dropped uint64 `json:"dropped"`
	Queued  int    `json:"queued"`
	// Results and DeadLetters stored; Failed could store neither (the
	// archive failed).
	Results     uint64  `json:"results"`
	DeadLetters uint64  `json:"dead_letters"`
	Failed      uint64  `json:"failed"`
	InFlight    int64   `json:"in_flight"`
	LastLatency float64 `json:"last_latency_ms"`
	// LastEndToEnd is from the fragment's close to its record stored.
	LastEndToEnd float64 `json:"last_end_to_end_ms"`
}

// Start starts each hook's workers (Hook.Concurrency of them).
func (d *Dispatcher) Start() {
	if d.Queue <= 0 {
		d.Queue = DefaultQueue
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for _, iv := range d.Invokers {
		iv.init()
		h := &edgeHook{iv: iv, queue: make(chan *job, d.Queue)}
		d.hooks = append(d.hooks, h)
		for range max(iv.Hook.Concurrency, 1) {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				h.work(ctx, d.Logger)
			}()
		}
	}
}

// Wants returns the hooks that take this fragment (Hook.Samples) at this
// moment; Offer it to them. Model endpoints take fragments as they close
// (landed false): the payload travels with the request. Webhooks take
// them once they are in the archive (landed true): their notice points
// at it.
func (d *Dispatcher) Wants(m *fragment.Metadata, landed bool) []int {
	var which []int
	for i, h := range d.hooks {
		if (h.iv.Hook.Kind == KindWebhook) == landed && h.iv.Hook.Applies(m.Stream) && h.iv.Hook.Samples(m) {
			which = append(which, i)
		}
	}
	return which
}

// Offer queues a fragment for the hooks Wants returned, without blocking.
// in must not change afterwards. closed is when the fragment closed.
func (d *Dispatcher) Offer(hooks []int, in *Input, closed time.Time) {
	for _, i := range hooks {
		h := d.hooks[i]
		h.offered.Add(1)
		select {
		case h.queue <- &job{in: in, closed: closed}:
		default:
			if h.dropped.Add(1)%100 == 1 {
				d.Logger.Warn("inference queue full: fragment dropped for this model", "model", h.iv.Hook.Model, "stream", in.Meta.Stream, "fragment", in.Meta.Number, "dropped", h.dropped.Load())
			}
		}
	}
}

func (h *edgeHook) work(ctx context.Context, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-h.queue:
			h.inFlight.Add(1)
			out, err := h.iv.Process(ctx, j.in, PlacementEdge)
			h.inFlight.Add(-1)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return
				}
				h.failed.Add(1)
				log.Error("inference record not stored", "model", h.iv.Hook.Model, "stream", j.in.Meta.Stream, "fragment", j.in.Meta.Number, "err", err)
			case out.DeadLetter:
				h.dead.Add(1)
			default:
				h.results.Add(1)
				h.lastLatency.Store(int64(out.Latency))
				h.lastEndToEnd.Store(int64(time.Since(j.closed)))
			}
		}
	}
}

// Close stops the workers: requests in flight are cancelled, queued
// fragments are left (the edge is best effort; a consumer from the
// archive is not).
func (d *Dispatcher) Close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

// Stats returns every hook's counts.
func (d *Dispatcher) Stats() []HookStats {
	out := make([]HookStats, 0, len(d.hooks))
	for _, h := range d.hooks {
		out = append(out, HookStats{
			Model: h.iv.Hook.Model, Kind: h.iv.Hook.Kind, URL: redactURL(h.iv.Hook.URL), Breaker: h.iv.State(),
			Offered: h.offered.Load(), Dropped: h.dropped.Load(), Queued: len(h.queue),
			Results: h.results.Load(), DeadLetters: h.dead.Load(), Failed: h.failed.Load(), InFlight: h.inFlight.Load(),
			LastLatency:  float64(h.lastLatency.Load()) / 1e6,
			LastEndToEnd: float64(h.lastEndToEnd.Load()) / 1e6,
		})
	}
	return out
}

var (
	mOffered = prometheus.NewDesc("tributary_inference_offered_total", "Fragments sampled for a model at the edge.", []string{"model"}, nil)
	mDropped = prometheus.NewDesc("tributary_inference_dropped_total", "Fragments dropped for a model because its queue was full.", []string{"model"}, nil)
	mResults = prometheus.NewDesc("tributary_inference_results_total", "Results stored.", []string{"model"}, nil)
	mDead    = prometheus.NewDesc("tributary_inference_dead_letters_total", "Dead letters stored.", []string{"model"}, nil)
	mFailed  = prometheus.NewDesc("tributary_inference_unrecorded_total", "Fragments whose result or dead letter could not be stored.", []string{"model"}, nil)
	mQueued  = prometheus.NewDesc("tributary_inference_queued", "Fragments waiting for a model.", []string{"model"}, nil)
	mOpen    = prometheus.NewDesc("tributary_inference_breaker_open", "1 while a model endpoint's circuit breaker is open.", []string{"model"}, nil)
)

// Describe implements prometheus.Collector.
func (d *Dispatcher) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range []*prometheus.Desc{mOffered, mDropped, mResults, mDead, mFailed, mQueued, mOpen} {
		ch <- m
	}
}

// Collect implements prometheus.Collector.
func (d *Dispatcher) Collect(ch chan<- prometheus.Metric) {
	for _, s := range d.Stats() {
		open := 0.0
		if s.Breaker == "open" {
			open = 1
		}
		for _, v := range []struct {
			d *prometheus.Desc
			t prometheus.ValueType
			v float64
		}{
			{mOffered, prometheus.CounterValue, float64(s.Offered)}, {mDropped, prometheus.CounterValue, float64(s.Dropped)},
			{mResults, prometheus.CounterValue, float64(s.Results)}, {mDead, prometheus.CounterValue, float64(s.DeadLetters)},
			{mFailed, prometheus.CounterValue, float64(s.Failed)}, {mQueued, prometheus.GaugeValue, float64(s.Queued)},
			{mOpen, prometheus.GaugeValue, open},
		} {
			ch <- prometheus.MustNewConstMetric(v.d, v.t, v.v, s.Model)
		}
	}
}
