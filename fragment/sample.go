package fragment

// Sample is one access unit of one track: a video frame, an audio frame or a
// data record.
type Sample struct {
	// DTS is the decode timestamp in ticks of the track's TimeScale.
	DTS int64
	// PTSOffset is PTS minus DTS in ticks (positive with B-frames).
	PTSOffset int32
	// Duration in ticks. The cutter fills it from the next sample's DTS.
	Duration uint32
	// Keyframe is true for a sample a decoder can start from (an IDR for
	// H.264, an IRAP for H.265, every audio frame).
	Keyframe bool
	// Time is the producer's wall clock at the sample's PTS, in Unix
	// nanoseconds: from RTCP sender reports when the camera sends them, else
	// from the agent's receive clock.
	Time int64
	// Payload is the sample's data: length-prefixed NAL units (4-byte
	// lengths, as in MP4) for H.264 and H.265, raw frames for audio.
	Payload []byte
}

// PTS returns the presentation timestamp in ticks.
func (s *Sample) PTS() int64 { return s.DTS + int64(s.PTSOffset) }
