// Package rtpmedia turns the RTP packets of a media into timed access units
// in MP4 sample format, whatever carries them (RTSP over TCP or UDP,
// WebRTC): H.264 and H.265 (its own assembler of single NAL units,
// aggregation and fragmentation units, into chunk memory), VP8, VP9 and
// AV1 (gortsplib's decoders; their configuration comes from keyframes),
// AAC (RFC 3640), Opus and G.711. A Media keeps the codec configuration
// current from in-band parameter sets, holds video back until a keyframe
// after a loss, derives decode timestamps, and maps RTP time to the
// producer's clock from RTCP sender reports. A Session maps a session's
// access units to producer time and feeds an ingest.Sink. H.264, H.265
// and audio allocate nothing per packet.
package rtpmedia
