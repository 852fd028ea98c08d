// Package fragment is Tributary's data model and its containers: tracks,
// samples and fragments, the keyframe-aligned cutter that turns a stream of
// samples into fragments, and the fMP4 (CMAF) writer and reader.
//
// A fragment is one or more whole GOPs that start on a keyframe. Every
// fragment carries its Metadata: the stream it belongs to, a number that is
// monotonic per stream and never reused, producer and server timestamps, its
// duration, size, keyframe count, discontinuity flag and sha256.
//
// The package has no dependency on the agent and may be imported by ML
// consumers that read fragments from an archive.
package fragment
