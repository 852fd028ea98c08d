package fragment

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Containers a fragment can be stored in.
const (
	ContainerFMP4 = "fmp4"
	ContainerMKV  = "mkv"
)

// Clock sources of producer timestamps.
const (
	// ClockReceive means producer timestamps come from the agent's receive clock.
	ClockReceive = "receive"
	// ClockRTCP means producer timestamps come from the camera's RTCP sender reports.
	ClockRTCP = "rtcp"
)

var (
	// ErrGOPTooLong is reported when a camera sends no keyframe within the
	// cutter's MaxDuration: the GOP is dropped until the next keyframe.
	ErrGOPTooLong = errors.New("GOP longer than the maximum fragment duration: no keyframe from the camera")
	// ErrGOPTooLarge is reported when a GOP grows past the cutter's MaxBytes.
	ErrGOPTooLarge = errors.New("GOP larger than the maximum fragment size")
	// ErrDataTooLarge is reported for a data sample (a camera's metadata)
	// that would take a fragment's data past the cutter's MaxDataBytes: the
	// sample is dropped, the video and audio are not.
	ErrDataTooLarge = errors.New("data samples larger than the maximum data of a fragment")
	// ErrInvalidStreamName is returned for a stream name that does not match StreamNamePattern.
	ErrInvalidStreamName = errors.New("invalid stream name")
)

// StreamNamePattern is what a stream name must match: no path tricks.
var StreamNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$`)

// ValidateStreamName returns ErrInvalidStreamName when name is not a valid stream name.
func ValidateStreamName(name string) error {
	if !StreamNamePattern.MatchString(name) {
		return fmt.Errorf("%w %q: must match %s", ErrInvalidStreamName, name, StreamNamePattern)
	}
	return nil
}

// TrackRef names a track in fragment metadata.
type TrackRef struct {
	ID    uint32 `json:"id"`
	Kind  Kind   `json:"kind"`
	Codec Codec  `json:"codec"`
}

// Metadata describes a fragment. It is stored beside the fragment (object
// user metadata and hour manifests) and returned by ListFragments.
type Metadata struct {
	// Stream is the stream's name.
	Stream string
	// Number is monotonic per stream, never reused, and survives restarts.
	Number uint64
	// ProducerStart and ProducerEnd are the camera clock at the fragment's
	// first keyframe and at its end.
	ProducerStart time.Time
	ProducerEnd   time.Time
	// ServerTime is the agent's clock when the fragment closed.
	ServerTime time.Time
	// Duration is the fragment's media duration.
	Duration time.Duration
	// Size in bytes of the stored fragment.
	Size int64
	// Container is ContainerFMP4 or ContainerMKV.
	Container string
	// Tracks present in the fragment.
	Tracks []TrackRef
	// InitHash names the fMP4 init segment of the fragment (ConfigHash).
	InitHash string
	// Keyframes is the number of keyframes of the first video track.
	Keyframes int
	// SampleCount is the number of samples in all tracks.
	SampleCount int
	// Discontinuity is set when a gap or an overlap of more than 50 ms
	// precedes the fragment, or the ingest session restarted before it.
	Discontinuity bool
	// ClockSource is ClockReceive or ClockRTCP.
	ClockSource string
	// SHA256 of the stored bytes, hex.
	SHA256 string
	// Tags are user tags.
	Tags map[string]string
	// Key is the fragment's object key in the archive.
	Key string
}

type metadataJSON struct {
	Stream        string            `json:"stream"`
	Number        uint64            `json:"number"`
	ProducerStart time.Time         `json:"producer_start"`
	ProducerEnd   time.Time         `json:"producer_end"`
	ServerTime    time.Time         `json:"server_timestamp"`
	DurationMS    float64           `json:"duration_ms"`
	Size          int64             `json:"size"`
	Container     string            `json:"container"`
	Tracks        []TrackRef        `json:"tracks"`
	InitHash      string            `json:"init,omitempty"`
	Keyframes     int               `json:"keyframes"`
	Samples       int               `json:"samples"`
	Discontinuity bool              `json:"discontinuity"`
	ClockSource   string            `json:"clock_source,omitempty"`
	SHA256        string            `json:"sha256"`
	Tags          map[string]string `json:"tags,omitempty"`
	Key           string            `json:"key,omitempty"`
}

// MarshalJSON encodes the metadata with snake_case keys, RFC 3339 times and
// the duration in milliseconds.
func (m Metadata) MarshalJSON() ([]byte, error) {
	return json.Marshal(metadataJSON{
		Stream: m.Stream, Number: m.Number, ProducerStart: m.ProducerStart.UTC(), ProducerEnd: m.ProducerEnd.UTC(),
		ServerTime: m.ServerTime.UTC(), DurationMS: float64(m.Duration) / float64(time.Millisecond), Size: m.Size,
		Container: m.Container, Tracks: m.Tracks, InitHash: m.InitHash, Keyframes: m.Keyframes, Samples: m.SampleCount,
		Discontinuity: m.Discontinuity, ClockSource: m.ClockSource, SHA256: m.SHA256, Tags: m.Tags, Key: m.Key,
	})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	var j metadataJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Metadata{
		Stream: j.Stream, Number: j.Number, ProducerStart: j.ProducerStart, ProducerEnd: j.ProducerEnd,
		ServerTime: j.ServerTime, Duration: time.Duration(j.DurationMS * float64(time.Millisecond)), Size: j.Size,
		Container: j.Container, Tracks: j.Tracks, InitHash: j.InitHash, Keyframes: j.Keyframes, SampleCount: j.Samples,
		Discontinuity: j.Discontinuity, ClockSource: j.ClockSource, SHA256: j.SHA256, Tags: j.Tags, Key: j.Key,
	}
	return nil
}

// Fragment is a closed fragment before it is stored: its tracks, its samples
// per track and its metadata.
type Fragment struct {
	Metadata
	// TrackConfigs are the tracks' codec configurations, in track order.
	TrackConfigs []Track
	// Samples holds the samples of each track, indexed like TrackConfigs.
	// DTS values are relative to the start of the ingest session, so they
	// are continuous across the fragments of one session.
	Samples [][]Sample
}
