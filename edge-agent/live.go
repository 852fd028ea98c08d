package edgeagent

import (
	"sync"

	"github.com/tributary-io/tributary/fragment"
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
