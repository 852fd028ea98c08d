// Package ingest is what every source (RTSP, WebRTC, PutMedia, sensors)
// shares: the Sink a source feeds with tracks and samples, the producer
// Clock that maps media time to the camera's wall clock, per-stream
// Counters, and the Supervisor that keeps a source connected with
// exponential backoff.
//
// A source turns its protocol into sessions: a session starts with the
// tracks the producer announced, carries samples in decode order per track,
// may change a track's codec configuration, and ends with an error. A new
// session after a reconnect starts a new decode timeline.
package ingest
