// Package fragment is Tributary's data model and its containers: tracks,
// samples and fragments, the keyframe-aligned cutter that turns a stream of
// samples into fragments, the fMP4 (CMAF) writer and reader, and the
// Matroska writer and streaming reader.
//
// A fragment is one or more whole GOPs that start on a keyframe. Every
// fragment carries its Metadata: the stream it belongs to, a number that is
// monotonic per stream and never reused, producer and server timestamps, its
// duration, size, keyframe count, discontinuity flag and sha256.
//
// Fragments are stored as fMP4 (an init segment per codec configuration,
// then moof+mdat per fragment; see MarshalInit, AppendFMP4, ParseInit,
// ParseFMP4) or as self-contained MKV in the shape Kinesis Video Streams'
// GetMedia returns, with AWS_KINESISVIDEO_* tags (MKVWriter). MKVReader reads
// one or many concatenated MKV segments from a stream — a GetMedia response,
// a PutMedia body, a file — and MKVCluster.Fragment turns each cluster into
// a Fragment; MKVToFMP4 and FMP4ToMKV convert without re-encoding.
//
// The package has no dependency on the agent and may be imported by ML
// consumers that read fragments from an archive.
package fragment
