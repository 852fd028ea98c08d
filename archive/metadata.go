package archive

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// User-metadata keys of a fragment object (x-amz-meta-<key>), one per field
// of fragment.Metadata, see EncodeMetadata.
const (
	// MetaVersion is the encoding's version, "1"; required.
	MetaVersion = "fragment-version"
	// MetaStream is the stream's name; required.
	MetaStream = "stream"
	// MetaNumber is the fragment number in decimal; required.
	MetaNumber = "number"
	// MetaProducerStart, MetaProducerEnd and MetaServerTime are RFC 3339
	// UTC times with nanoseconds; required.
	MetaProducerStart = "producer-start"
	MetaProducerEnd   = "producer-end"
	MetaServerTime    = "server-time"
	// MetaDuration is the duration in nanoseconds.
	MetaDuration = "duration-ns"
	// MetaSize is the stored size in bytes; required.
	MetaSize = "size"
	// MetaContainer is "fmp4" or "mkv"; required.
	MetaContainer = "container"
	// MetaTracks lists the tracks as "id:kind:codec,…".
	MetaTracks = "tracks"
	// MetaInit is the init segment's config hash.
	MetaInit = "init"
	// MetaKeyframes and MetaSamples are counts in decimal.
	MetaKeyframes = "keyframes"
	MetaSamples   = "samples"
	// MetaDiscontinuity is "true" or "false".
	MetaDiscontinuity = "discontinuity"
	// MetaClockSource is "rtcp" or "receive".
	MetaClockSource = "clock-source"
	// MetaSHA256 is the hex sha256 of the stored bytes.
	MetaSHA256 = "sha256"
	// MetaTags holds the user tags: base64url of their JSON object.
	MetaTags = "tags"
	// MetaTagsOmitted is "true" when the tags did not fit.
	MetaTagsOmitted = "tags-omitted"
)

// metaVersion is the value of MetaVersion this package writes and reads.
const metaVersion = "1"

// EncodeMetadata encodes fragment metadata as object user metadata that
// survives S3 and HTTP headers (ValidateUserMetadata holds for the result):
// one key per field, times as RFC 3339 UTC with nanoseconds, the duration in
// nanoseconds, tracks as "id:kind:codec,…", free-form strings URL-escaped
// (url.QueryEscape), and the user tags in the single field "tags" as
// base64url (no padding) of their JSON object.
//
// When the tags would push the total over MaxUserMetadataSize they are left
// out and "tags-omitted" is set to "true": they then live only in the hour
// manifest (and wherever the writer keeps them). Metadata that is too large
// even without tags is an error wrapping ErrInvalidMetadata. The Key field
// is not encoded: it is the object's key.
func EncodeMetadata(m fragment.Metadata) (map[string]string, error) {
	if err := fragment.ValidateStreamName(m.Stream); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
	}
	md := map[string]string{
		MetaVersion:       metaVersion,
		MetaStream:        m.Stream,
		MetaNumber:        strconv.FormatUint(m.Number, 10),
		MetaProducerStart: formatTime(m.ProducerStart),
		MetaProducerEnd:   formatTime(m.ProducerEnd),
		MetaServerTime:    formatTime(m.ServerTime),
		MetaDuration:      strconv.FormatInt(int64(m.Duration), 10),
		MetaSize:          strconv.FormatInt(m.Size, 10),
		MetaContainer:     url.QueryEscape(m.Container),
		MetaKeyframes:     strconv.Itoa(m.Keyframes),
		MetaSamples:       strconv.Itoa(m.SampleCount),
		MetaDiscontinuity: strconv.FormatBool(m.Discontinuity),
	}
	if len(m.Tracks) > 0 {
		parts := make([]string, len(m.Tracks))
		for i, t := range m.Tracks {
			parts[i] = strconv.FormatUint(uint64(t.ID), 10) + ":" + url.QueryEscape(string(t.Kind)) + ":" + url.QueryEscape(string(t.Codec))
		}
		md[MetaTracks] = strings.Join(parts, ",")
	}
	for k, v := range map[string]string{MetaInit: m.InitHash, MetaClockSource: m.ClockSource, MetaSHA256: m.SHA256} {
		if v != "" {
			md[k] = url.QueryEscape(v)
		}
	}
	if err := ValidateUserMetadata(md); err != nil {
		return nil, fmt.Errorf("fragment %d of %s: %w", m.Number, m.Stream, err)
	}
	if len(m.Tags) > 0 {
		b, err := json.Marshal(m.Tags)
		if err != nil {
			return nil, fmt.Errorf("%w: tags: %w", ErrInvalidMetadata, err)
		}
		tags := base64.RawURLEncoding.EncodeToString(b)
		if metadataSize(md)+len(MetaTags)+len(tags) < MaxUserMetadataSize {
			md[MetaTags] = tags
		} else {
			md[MetaTagsOmitted] = "true"
		}
	}
	return md, nil
}

// DecodeMetadata decodes what EncodeMetadata encodes. Keys are matched
// case-insensitively (minio-go returns "Producer-Start" for
// "producer-start"); unknown keys are ignored. Missing or malformed fields
// give an error wrapping ErrInvalidMetadata that names the field. Key is left
// empty and Tags nil when the tags were omitted (TagsOmitted tells).
func DecodeMetadata(md map[string]string) (fragment.Metadata, error) {
	var m fragment.Metadata
	lc := make(map[string]string, len(md))
	for k, v := range md {
		k = strings.ToLower(k)
		if _, dup := lc[k]; dup {
			return m, fmt.Errorf("%w: key %q given twice", ErrInvalidMetadata, k)
		}
		lc[k] = v
	}
	bad := func(field string, err error) (fragment.Metadata, error) {
		if err == nil {
			return fragment.Metadata{}, fmt.Errorf("%w: %s: missing", ErrInvalidMetadata, field)
		}
		return fragment.Metadata{}, fmt.Errorf("%w: %s: %w", ErrInvalidMetadata, field, err)
	}
	if v, ok := lc[MetaVersion]; !ok {
		return bad(MetaVersion, nil)
	} else if v != metaVersion {
		return bad(MetaVersion, fmt.Errorf("unsupported version %q", v))
	}
	// Required fields.
	get := func(k string) (string, bool) { v, ok := lc[k]; return v, ok }
	var ok bool
	var err error
	if m.Stream, ok = get(MetaStream); !ok {
		return bad(MetaStream, nil)
	}
	if err := fragment.ValidateStreamName(m.Stream); err != nil {
		return bad(MetaStream, err)
	}
	v, ok := get(MetaNumber)
	if !ok {
		return bad(MetaNumber, nil)
	}
	if m.Number, err = strconv.ParseUint(v, 10, 64); err != nil {
		return bad(MetaNumber, err)
	}
	for _, f := range []struct {
		key string
		dst *time.Time
	}{{MetaProducerStart, &m.ProducerStart}, {MetaProducerEnd, &m.ProducerEnd}, {MetaServerTime, &m.ServerTime}} {
		v, ok := get(f.key)
		if !ok {
			return bad(f.key, nil)
		}
		if *f.dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return bad(f.key, err)
		}
		*f.dst = f.dst.UTC()
	}
	if v, ok = get(MetaSize); !ok {
		return bad(MetaSize, nil)
	}
	if m.Size, err = strconv.ParseInt(v, 10, 64); err != nil {
		return bad(MetaSize, err)
	}
	if v, ok = get(MetaContainer); !ok {
		return bad(MetaContainer, nil)
	}
	if m.Container, err = url.QueryUnescape(v); err != nil {
		return bad(MetaContainer, err)
	}
	// Optional fields.
	ints := []struct {
		key string
		dst *int
	}{{MetaKeyframes, &m.Keyframes}, {MetaSamples, &m.SampleCount}}
	for _, f := range ints {
		if v, ok := get(f.key); ok {
			if *f.dst, err = strconv.Atoi(v); err != nil {
				return bad(f.key, err)
			}
		}
	}
	if v, ok := get(MetaDuration); ok {
		d, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad(MetaDuration, err)
		}
		m.Duration = time.Duration(d)
	}
	if v, ok := get(MetaDiscontinuity); ok {
		if m.Discontinuity, err = strconv.ParseBool(v); err != nil {
			return bad(MetaDiscontinuity, err)
		}
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{MetaInit, &m.InitHash}, {MetaClockSource, &m.ClockSource}, {MetaSHA256, &m.SHA256}} {
		if v, ok := get(f.key); ok {
			if *f.dst, err = url.QueryUnescape(v); err != nil {
				return bad(f.key, err)
			}
		}
	}
	if v, ok := get(MetaTracks); ok && v != "" {
		for part := range strings.SplitSeq(v, ",") {
			f := strings.Split(part, ":")
			if len(f) != 3 {
				return bad(MetaTracks, fmt.Errorf("track %q: want id:kind:codec", part))
			}
			id, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				return bad(MetaTracks, fmt.Errorf("track %q: %w", part, err))
			}
			kind, err := url.QueryUnescape(f[1])
			if err != nil {
				return bad(MetaTracks, fmt.Errorf("track %q: %w", part, err))
			}
			codec, err := url.QueryUnescape(f[2])
			if err != nil {
				return bad(MetaTracks, fmt.Errorf("track %q: %w", part, err))
			}
			m.Tracks = append(m.Tracks, fragment.TrackRef{ID: uint32(id), Kind: fragment.Kind(kind), Codec: fragment.Codec(codec)})
		}
	}
	if v, ok := get(MetaTags); ok {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return bad(MetaTags, err)
		}
		if err := json.Unmarshal(b, &m.Tags); err != nil {
			return bad(MetaTags, err)
		}
		if m.Tags == nil {
			return bad(MetaTags, fmt.Errorf("not a JSON object"))
		}
	}
	return m, nil
}

// TagsOmitted reports whether EncodeMetadata left the user tags out of md
// because they did not fit.
func TagsOmitted(md map[string]string) bool {
	for k, v := range md {
		if strings.EqualFold(k, MetaTagsOmitted) {
			return v == "true"
		}
	}
	return false
}

// formatTime formats t as RFC 3339 in UTC with nanoseconds.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func metadataSize(md map[string]string) int {
	n := 0
	for k, v := range md {
		n += len(k) + len(v)
	}
	return n
}
