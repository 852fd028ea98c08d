// Package rtpmedia turns the RTP packets of a media into timed access units
// in MP4 sample format, whatever carries them (RTSP over TCP or UDP, and
// WebRTC next): H.264 and H.265 (its own assembler of single NAL units,
// aggregation and fragmentation units, into chunk memory), AAC (RFC 3640),
// Opus and G.711. A Media keeps the codec configuration current from
// in-band parameter sets, holds video back until a keyframe after a loss,
// derives decode timestamps, and maps RTP time to the camera's clock from
// RTCP sender reports. It allocates nothing per packet.
package rtpmedia
