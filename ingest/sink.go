package ingest

import (
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Session describes an ingest session, from connect to disconnect.
type Session struct {
	// Tracks announced by the producer that Tributary keeps, IDs from 1.
	Tracks []fragment.Track
	// Ignored lists tracks the producer offered that were not kept (an
	// unsupported codec, say), for status and logs.
	Ignored []string
	// Transport is how media flows ("tcp", "udp", ...).
	Transport string
	// Started is the agent's clock when the session started.
	Started time.Time
}

// Sink receives a source's sessions and samples. The source calls it from
// one goroutine, so a Sink needs no locking of its own.
type Sink interface {
	// StartSession begins a session. The previous one, if any, has ended.
	// A session starts on the receive clock; ClockChanged reports another
	// (before the first sample, when a sender report came first).
	StartSession(s Session)
	// WriteSample adds a sample of track i (an index into Session.Tracks).
	// The payload is only valid during the call.
	WriteSample(i int, s fragment.Sample)
	// UpdateTracks reports a codec configuration change (a new SPS, say);
	// it takes effect at the next keyframe.
	UpdateTracks(tracks []fragment.Track)
	// ClockChanged reports a change of the producer clock source (from
	// "receive" to "rtcp") with the difference between the two, and whether
	// producer time stepped (instead of being slewed): after a step the next
	// fragment is discontinuous.
	ClockChanged(from, to string, diff time.Duration, stepped bool)
	// EndSession ends the session; err says why (nil on a clean stop).
	EndSession(err error)
}

// Counters are a stream's ingest counters. Sources add to them where the
// events happen; status pages and metrics read them.
type Counters struct {
	// Packets and Bytes received from the producer.
	Packets atomic.Uint64
	Bytes   atomic.Uint64
	// Samples (access units) delivered to the sink.
	Samples atomic.Uint64
	// PacketsLost is what sequence-number gaps say was lost upstream.
	PacketsLost atomic.Uint64
	// DecodeErrors counts packets that could not be depacketized (garbage
	// payloads); each drops that packet only.
	DecodeErrors atomic.Uint64
	// DroppedQueueFull counts access units dropped because the stream's
	// pipeline could not keep up.
	DroppedQueueFull atomic.Uint64
	// DroppedNoParams counts access units dropped while waiting for
	// parameter sets (SPS/PPS) to describe the track.
	DroppedNoParams atomic.Uint64
	// KeyframeRequests counts the keyframes asked of the producer (RTCP
	// PLI over WebRTC), at the start and after losses.
	KeyframeRequests atomic.Uint64
	// Reconnects counts sessions started after the first.
	Reconnects atomic.Uint64
}
