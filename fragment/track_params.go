package fragment

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// FillFromParams derives Width and Height from the SPS of a video track and
// SampleRate and Channels from the AudioSpecificConfig of an AAC track.
func (t *Track) FillFromParams() error {
	switch t.Codec {
	case CodecH264:
		var sps h264.SPS
		if err := sps.Unmarshal(t.SPS); err != nil {
			return fmt.Errorf("H264 SPS: %w", err)
		}
		t.Width, t.Height = sps.Width(), sps.Height()
	case CodecH265:
		var sps h265.SPS
		if err := sps.Unmarshal(t.SPS); err != nil {
			return fmt.Errorf("H265 SPS: %w", err)
		}
		t.Width, t.Height = sps.Width(), sps.Height()
	case CodecAAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(t.Config); err != nil {
			return fmt.Errorf("AAC config: %w", err)
		}
		//lint:ignore SA1019 ChannelCount is still filled, and counts what ChannelConfig encodes
		t.SampleRate, t.Channels = asc.SampleRate, asc.ChannelCount
	}
	return nil
}
