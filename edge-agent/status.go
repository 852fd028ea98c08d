package edgeagent

import (
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// StreamStatus is a stream's state as /v1/status shows it.
type StreamStatus struct {
	Name string `json:"name"`
	// URL with credentials redacted.
	URL string `json:"url"`
	// State is connecting, streaming, backoff, failed or stopped.
	State string `json:"state"`
	// Since is when the stream entered State.
	Since time.Time `json:"since"`
	// RetryInMS is the backoff before the next attempt, in StateBackoff.
	RetryInMS   int64     `json:"retry_in_ms,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Transport   string    `json:"transport,omitempty"`
	Tracks      []string  `json:"tracks,omitempty"`
	// Ignored lists offered tracks of unsupported codecs.
	Ignored     []string     `json:"ignored,omitempty"`
	ClockSource string       `json:"clock_source,omitempty"`
	ClockChange *ClockChange `json:"clock_change,omitempty"`
	// ConnectedAt is when the current or last session started.
	ConnectedAt time.Time `json:"connected_at,omitzero"`
	// Sessions counts sessions since the agent started.
	Sessions     int                `json:"sessions"`
	LastFragment *fragment.Metadata `json:"last_fragment,omitempty"`
	Counters     StreamCounters     `json:"counters"`
	// Sensor is a sensor stream's readings, clock skew and broker state.
	Sensor *SensorStatus `json:"sensor,omitempty"`
	// Upload is the stream's spool and upload state (with a spool).
	Upload *StreamUpload `json:"upload,omitempty"`
	// DurableLatency lists the latest fragments' close → durable latencies
	// (at most LatencySamples), when asked for with ?latency_since=.
	DurableLatency []LatencySample `json:"durable_latency,omitempty"`
}

// LatencySample is one fragment's close → durable latency: from the moment
// the cutter closed it to the moment it was fsynced in the spool or the
// local archive.
type LatencySample struct {
	// Closed is when the fragment closed (server clock).
	Closed time.Time `json:"closed"`
	// MS is the latency in milliseconds.
	MS float64 `json:"ms"`
}

// LatencySamples is how many recent latencies a stream keeps (8.5 min of
// 2 s fragments).
const LatencySamples = 256

// latencyRing keeps the latest LatencySamples latencies.
type latencyRing struct {
	closed [LatencySamples]int64 // unix ns
	took   [LatencySamples]time.Duration
	n      int // samples added, ever
}

func (r *latencyRing) add(closed time.Time, took time.Duration) {
	i := r.n % LatencySamples
	r.closed[i], r.took[i] = closed.UnixNano(), took
	r.n++
}

// since returns the samples of fragments closed at or after t, oldest first.
func (r *latencyRing) since(t time.Time) []LatencySample {
	var out []LatencySample
	for k := max(0, r.n-LatencySamples); k < r.n; k++ {
		i := k % LatencySamples
		if c := time.Unix(0, r.closed[i]); !c.Before(t) {
			out = append(out, LatencySample{Closed: c.UTC(), MS: float64(r.took[i]) / float64(time.Millisecond)})
		}
	}
	return out
}

// ClockChange records the last change of the producer clock source.
type ClockChange struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	DiffMS  int64     `json:"diff_ms"`
	Stepped bool      `json:"stepped"`
	At      time.Time `json:"at"`
}

// StreamCounters are a stream's counters since the agent started.
type StreamCounters struct {
	Packets          uint64 `json:"packets"`
	Bytes            uint64 `json:"bytes"`
	Samples          uint64 `json:"samples"`
	Fragments        uint64 `json:"fragments"`
	FragmentBytes    uint64 `json:"fragment_bytes"`
	PacketsLost      uint64 `json:"packets_lost"`
	DecodeErrors     uint64 `json:"decode_errors"`
	DroppedQueueFull uint64 `json:"dropped_queue_full"`
	DroppedNoParams  uint64 `json:"dropped_no_params"`
	DroppedGOPs      uint64 `json:"dropped_gops"`
	DroppedSamples   uint64 `json:"dropped_samples"`
	FragmentsLost    uint64 `json:"fragments_lost"`
	FragmentsDenied  uint64 `json:"fragments_denied"`
	StoreErrors      uint64 `json:"store_errors"`
	Reconnects       uint64 `json:"reconnects"`
	KeyframeRequests uint64 `json:"keyframe_requests"`
}

func (p *pipeline) snapshot() StreamStatus {
	p.mu.Lock()
	s := p.status
	p.mu.Unlock()
	if p.sensor != nil {
		s.Sensor = p.sensor.status()
	}
	c := &p.counters
	s.Counters = StreamCounters{
		Packets:          c.Packets.Load(),
		Bytes:            c.Bytes.Load(),
		Samples:          c.Samples.Load(),
		Fragments:        p.fragments.Load(),
		FragmentBytes:    p.fragmentBytes.Load(),
		PacketsLost:      c.PacketsLost.Load(),
		DecodeErrors:     c.DecodeErrors.Load(),
		DroppedQueueFull: c.DroppedQueueFull.Load(),
		DroppedNoParams:  c.DroppedNoParams.Load(),
		DroppedGOPs:      p.droppedGOPs.Load(),
		DroppedSamples:   p.droppedSamples.Load(),
		FragmentsLost:    p.fragmentsLost.Load(),
		FragmentsDenied:  p.denied.Load(),
		StoreErrors:      p.storeErrors.Load(),
		Reconnects:       c.Reconnects.Load(),
		KeyframeRequests: c.KeyframeRequests.Load(),
	}
	if p.spool != nil {
		u := p.spool.streamStatus(p.cfg.Name)
		s.Upload = &u
	}
	return s
}
