package edgeagent

import (
	"sync"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/playback"
)

// hub tells subscribers (live HLS, GetMedia tails) when a fragment of a
// stream lands in the archive. Notices are dropped, never queued without
// bound, for a subscriber that does not keep up.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan fragment.Metadata]struct{}
}

func (h *hub) subscribe(stream string) (<-chan fragment.Metadata, func()) {
	ch := make(chan fragment.Metadata, 8)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[string]map[chan fragment.Metadata]struct{}{}
	}
	if h.subs[stream] == nil {
		h.subs[stream] = map[chan fragment.Metadata]struct{}{}
	}
	h.subs[stream][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[stream], ch)
		h.mu.Unlock()
	}
}

func (h *hub) notify(m fragment.Metadata) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[m.Stream] {
		select {
		case ch <- m:
		default:
		}
	}
}

// Subscribe implements playback.Live.
func (a *Agent) Subscribe(stream string) (<-chan fragment.Metadata, func()) {
	return a.hub.subscribe(stream)
}

// StreamState implements playback.Live.
func (a *Agent) StreamState(stream string) string {
	for _, p := range a.streams() {
		if p.cfg.Name == stream {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.status.State
		}
	}
	return ""
}

// Ring implements playback.Live: the stream's live edge for low-latency HLS.
func (a *Agent) Ring(stream string) *playback.LiveRing {
	for _, p := range a.streams() {
		if p.cfg.Name == stream {
			return p.ring
		}
	}
	return nil
}

// onPart puts a part of the fragment in progress on the live edge, while
// someone watches.
func (p *pipeline) onPart(part *fragment.Part) {
	if !p.ring.Active() {
		return
	}
	if part.Aborted {
		p.ring.Abort()
		return
	}
	if part.InitHash != p.ringHash {
		b, err := fragment.MarshalInit(part.TrackConfigs)
		if err != nil {
			return
		}
		p.ring.SetInit(part.InitHash, b)
		p.ringHash = part.InitHash
	}
	msn := p.seq.next // the number the fragment will get when it closes
	if p.cutter.Held() {
		msn++ // after the one held for late data
	}
	part.Number = msn<<8 | uint64(part.Index&0xff)
	data := fragment.AppendFMP4(nil, &part.Fragment)
	p.ring.AddPart(msn, part.Index, part.ProducerStart, data, part.Duration, part.Independent)
}

// SensorThrough tells GetMedia (playback.SensorProgress) the time before
// which a sensor stream's readings are all archived, and how long waiting
// for more is worth (its period and window, plus a second).
func (a *Agent) SensorThrough(stream string) (time.Time, time.Duration, bool) {
	for _, p := range a.streams() {
		if p.cfg.Name != stream || p.sensor == nil {
			continue
		}
		f := p.sensor
		through := time.Unix(0, f.frag.Stats.ThroughNS.Load())
		if p.fragments.Load()+p.fragmentsLost.Load()+p.denied.Load() < f.frag.Stats.Fragments.Load() {
			// emitted, not yet stored: wait a little more
			through = through.Add(-time.Duration(f.cfg.Period))
		}
		if u := p.snapshot().Upload; u != nil && u.BacklogFragments > 0 {
			through = through.Add(-time.Duration(f.cfg.Period))
		}
		return through, min(time.Duration(f.cfg.Period)+time.Duration(f.cfg.Window)+time.Second, 30*time.Second), true
	}
	return time.Time{}, 0, false
}
