package archive

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Names and extensions of the key layout.
const (
	// HourIndexName is the name of an hour manifest in an hour directory.
	HourIndexName = "index.json"
	// StreamObjectName is the name of a stream's metadata object.
	StreamObjectName = "stream.json"
	// ExtFMP4 and ExtMKV are the extensions of fragment objects.
	ExtFMP4 = ".m4s"
	ExtMKV  = ".mkv"
	// ExtInit is the extension of init segments.
	ExtInit = ".mp4"
	// ExtNDJSON is the extension of the readings of a sensor fragment as
	// NDJSON, beside its MKV object (ReadingsKey).
	ExtNDJSON = ".ndjson"
)

// MaxStartMs is the largest producer start, in Unix milliseconds, that fits
// the 13 digits of a fragment key (the year 2286).
const MaxStartMs = 9_999_999_999_999

// Layout computes the keys of an archive under Prefix (may be empty; slashes
// around it are ignored):
//
//	{prefix}/streams/{stream}/stream.json
//	{prefix}/streams/{stream}/init/{configHash}.mp4
//	{prefix}/streams/{stream}/f/YYYY/MM/DD/HH/{startMs:013}-{number:020}.m4s|.mkv
//	{prefix}/streams/{stream}/f/YYYY/MM/DD/HH/{startMs:013}-{number:020}.ndjson  (a sensor fragment's readings)
//	{prefix}/streams/{stream}/f/YYYY/MM/DD/HH/index.json
//
// Hours are UTC; startMs is the producer start in Unix milliseconds. Keys
// have no leading or trailing slash; the prefixes that the *Prefix methods
// return end with a slash, ready for Store.List. Every method rejects a
// stream name that fragment.ValidateStreamName rejects (the error wraps
// fragment.ErrInvalidStreamName) and a Prefix that is not a valid key
// (ErrInvalidKey).
type Layout struct {
	// Prefix under which the archive lives, e.g. "site-a" or "".
	Prefix string
}

// root returns "{prefix}/streams/".
func (l Layout) root() (string, error) {
	p := strings.Trim(l.Prefix, "/")
	if p == "" {
		return "streams/", nil
	}
	if err := ValidateKey(p); err != nil {
		return "", fmt.Errorf("layout prefix: %w", err)
	}
	return p + "/streams/", nil
}

// StreamsPrefix returns "{prefix}/streams/", the prefix of every stream.
func (l Layout) StreamsPrefix() (string, error) {
	return l.root()
}

// StreamPrefix returns "{prefix}/streams/{stream}/", the prefix of every
// object of a stream.
func (l Layout) StreamPrefix(stream string) (string, error) {
	if err := fragment.ValidateStreamName(stream); err != nil {
		return "", err
	}
	root, err := l.root()
	if err != nil {
		return "", err
	}
	return root + stream + "/", nil
}

// StreamKey returns the key of the stream's metadata object, stream.json.
func (l Layout) StreamKey(stream string) (string, error) {
	p, err := l.StreamPrefix(stream)
	if err != nil {
		return "", err
	}
	return p + StreamObjectName, nil
}

// InitKey returns the key of the init segment of a codec configuration
// (fragment.ConfigHash: lower-case hex).
func (l Layout) InitKey(stream, configHash string) (string, error) {
	p, err := l.StreamPrefix(stream)
	if err != nil {
		return "", err
	}
	if configHash == "" || len(configHash) > 64 || strings.Trim(configHash, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: config hash %q: want 1 to 64 lower-case hex digits", ErrInvalidKey, configHash)
	}
	return p + "init/" + configHash + ExtInit, nil
}

// FragmentsPrefix returns "{prefix}/streams/{stream}/f/", the prefix of
// every fragment and hour manifest of a stream.
func (l Layout) FragmentsPrefix(stream string) (string, error) {
	p, err := l.StreamPrefix(stream)
	if err != nil {
		return "", err
	}
	return p + "f/", nil
}

// HourPrefix returns "{prefix}/streams/{stream}/f/YYYY/MM/DD/HH/", the
// prefix of the fragments of the UTC hour that contains t.
func (l Layout) HourPrefix(stream string, t time.Time) (string, error) {
	p, err := l.FragmentsPrefix(stream)
	if err != nil {
		return "", err
	}
	if t.Before(time.UnixMilli(0)) || t.After(time.UnixMilli(MaxStartMs)) {
		return "", fmt.Errorf("%w: time %s outside the key layout (1970 to 2286)", ErrInvalidKey, t.UTC().Format(time.RFC3339))
	}
	return p + hourPath(t), nil
}

// HourIndexKey returns the key of the manifest of the UTC hour that
// contains hour.
func (l Layout) HourIndexKey(stream string, hour time.Time) (string, error) {
	p, err := l.HourPrefix(stream, hour)
	if err != nil {
		return "", err
	}
	return p + HourIndexName, nil
}

// ReadingsKey returns the key of the NDJSON readings beside a sensor
// fragment (an MKV object): the fragment's key with ExtNDJSON for ExtMKV.
// Listings skip it; retention deletes it with its hour.
func ReadingsKey(fragmentKey string) (string, error) {
	base, ok := strings.CutSuffix(fragmentKey, ExtMKV)
	if !ok {
		return "", fmt.Errorf("%w: %q is not an MKV fragment's key", ErrInvalidKey, fragmentKey)
	}
	return base + ExtNDJSON, nil
}

// FragmentKey returns the key of a fragment from its metadata: Stream,
// ProducerStart, Number and Container.
func (l Layout) FragmentKey(m fragment.Metadata) (string, error) {
	return l.FragmentKeyAt(m.Stream, m.ProducerStart, m.Number, m.Container)
}

// FragmentKeyAt returns the key of the fragment number of stream that
// started at start (producer clock, truncated to the millisecond) in
// container (fragment.ContainerFMP4 or fragment.ContainerMKV).
func (l Layout) FragmentKeyAt(stream string, start time.Time, number uint64, container string) (string, error) {
	ext, err := containerExt(container)
	if err != nil {
		return "", err
	}
	ms := start.UnixMilli()
	if ms < 0 || ms > MaxStartMs {
		return "", fmt.Errorf("%w: producer start %s outside the key layout (1970 to 2286)", ErrInvalidKey, start.UTC().Format(time.RFC3339Nano))
	}
	p, err := l.HourPrefix(stream, time.UnixMilli(ms))
	if err != nil {
		return "", err
	}
	return p + fmt.Sprintf("%013d-%020d", ms, number) + ext, nil
}

// ParseFragmentKey splits the key of a fragment, under any prefix, into its
// stream, producer start in Unix milliseconds, number and container. It
// rejects with ErrInvalidKey anything FragmentKeyAt would not produce,
// including an hour directory that does not match the start.
func ParseFragmentKey(key string) (stream string, startMs int64, number uint64, container string, err error) {
	bad := func(why string) (string, int64, uint64, string, error) {
		return "", 0, 0, "", fmt.Errorf("%w: %q is not a fragment key: %s", ErrInvalidKey, key, why)
	}
	// …/streams/{stream}/f/YYYY/MM/DD/HH/{name}: the last 8 segments,
	// found from the end without allocating (listings parse every key).
	var s [8]string
	end := len(key)
	for i := 7; i > 0; i-- {
		j := strings.LastIndexByte(key[:end], '/')
		if j < 0 {
			return bad("too few segments")
		}
		s[i], end = key[j+1:end], j
	}
	s[0] = key[:end]
	if j := strings.LastIndexByte(key[:end], '/'); j >= 0 {
		s[0] = key[j+1 : end]
		if err := ValidateKey(key[:j]); err != nil {
			return bad("bad prefix")
		}
	}
	if s[0] != "streams" || s[2] != "f" {
		return bad(`want …/streams/{stream}/f/YYYY/MM/DD/HH/{name}`)
	}
	stream = s[1]
	if err := fragment.ValidateStreamName(stream); err != nil {
		return "", 0, 0, "", fmt.Errorf("%w: %q is not a fragment key: %w", ErrInvalidKey, key, err)
	}
	name := s[7]
	switch {
	case strings.HasSuffix(name, ExtFMP4):
		container, name = fragment.ContainerFMP4, strings.TrimSuffix(name, ExtFMP4)
	case strings.HasSuffix(name, ExtMKV):
		container, name = fragment.ContainerMKV, strings.TrimSuffix(name, ExtMKV)
	default:
		return bad("unknown extension")
	}
	if len(name) != 13+1+20 || name[13] != '-' || !allDigits(name[:13]) || !allDigits(name[14:]) {
		return bad("want {startMs:013}-{number:020}")
	}
	startMs, _ = strconv.ParseInt(name[:13], 10, 64)
	number, err = strconv.ParseUint(name[14:], 10, 64)
	if err != nil {
		return bad("number out of range")
	}
	var hb [16]byte
	hour := time.UnixMilli(startMs).UTC().AppendFormat(hb[:0], "2006/01/02/15")
	if len(s[3])+len(s[4])+len(s[5])+len(s[6])+3 != len(hour) || key[len(key)-len(s[7])-1-len(hour):len(key)-len(s[7])-1] != string(hour) {
		return bad("hour directory does not match the start")
	}
	return stream, startMs, number, container, nil
}

// hourPath returns "YYYY/MM/DD/HH/" of t in UTC.
func hourPath(t time.Time) string {
	return t.UTC().Format("2006/01/02/15/")
}

// containerExt returns the extension of a fragment container.
func containerExt(container string) (string, error) {
	switch container {
	case fragment.ContainerFMP4:
		return ExtFMP4, nil
	case fragment.ContainerMKV:
		return ExtMKV, nil
	}
	return "", fmt.Errorf("%w: unknown container %q (want %q or %q)", ErrInvalidKey, container, fragment.ContainerFMP4, fragment.ContainerMKV)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// StreamInfo is the content of a stream's stream.json (at StreamKey): its
// name, current tracks and their configuration hash, container and tags,
// as the agent writes it and the playback server reads it.
type StreamInfo struct {
	Name      string            `json:"name"`
	Tracks    []fragment.Track  `json:"tracks"`
	InitHash  string            `json:"init"`
	Container string            `json:"container"`
	Tags      map[string]string `json:"tags,omitempty"`
	// Link is, for a sensor stream, the camera stream it belongs to.
	Link    string    `json:"link,omitempty"`
	Updated time.Time `json:"updated"`
}
