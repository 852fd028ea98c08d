package archive

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// testMeta returns the metadata of a plausible fragment.
func testMeta(stream string, number uint64, start time.Time, d time.Duration) fragment.Metadata {
	return fragment.Metadata{
		Stream: stream, Number: number, ProducerStart: start.UTC(), ProducerEnd: start.Add(d).UTC(),
		ServerTime: start.Add(d + 300*time.Millisecond).UTC(), Duration: d, Size: 1000 + int64(number),
		Container: fragment.ContainerFMP4,
		Tracks: []fragment.TrackRef{{ID: 1, Kind: fragment.KindVideo, Codec: fragment.CodecH264},
			{ID: 2, Kind: fragment.KindAudio, Codec: fragment.CodecAAC}},
		InitHash: "0123456789abcdef", Keyframes: 1, SampleCount: 60 + int(number%7), ClockSource: fragment.ClockRTCP,
		SHA256: strings.Repeat("ab", 32),
	}
}

// sameMeta compares metadata by value, with times compared as instants and
// empty and nil collections equal.
func sameMeta(a, b fragment.Metadata) bool {
	norm := func(m fragment.Metadata) fragment.Metadata {
		m.ProducerStart, m.ProducerEnd, m.ServerTime = m.ProducerStart.UTC(), m.ProducerEnd.UTC(), m.ServerTime.UTC()
		if len(m.Tracks) == 0 {
			m.Tracks = nil
		}
		if len(m.Tags) == 0 {
			m.Tags = nil
		}
		return m
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

var metadataCases = []struct {
	name string
	m    func() fragment.Metadata
}{
	{"plain", func() fragment.Metadata {
		return testMeta("cam1", 42, time.Date(2026, 11, 27, 3, 4, 5, 123456789, time.UTC), 2*time.Second)
	}},
	{"mkv, tags, discontinuity, local zone", func() fragment.Metadata {
		m := testMeta("Front_Door.cam-2", 1<<63+5, time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)), 1500*time.Millisecond)
		m.Container = fragment.ContainerMKV
		m.Discontinuity = true
		m.Tags = map[string]string{"site": "entrepôt nord", "a,b:c": "=%\n"}
		return m
	}},
	{"odd track names", func() fragment.Metadata {
		m := testMeta("c", 0, time.UnixMilli(0), 0)
		m.Tracks = []fragment.TrackRef{{ID: 7, Kind: "da:ta", Codec: "x,y z/é"}}
		m.ClockSource = ""
		m.InitHash = ""
		m.SHA256 = ""
		return m
	}},
	{"no tracks, zero times", func() fragment.Metadata {
		return fragment.Metadata{Stream: "s", Container: fragment.ContainerFMP4}
	}},
}

func TestMetadataRoundTrip(t *testing.T) {
	for _, tc := range metadataCases {
		m := tc.m()
		md, err := EncodeMetadata(m)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := ValidateUserMetadata(md); err != nil {
			t.Errorf("%s: encoded metadata breaks S3 rules: %v", tc.name, err)
		}
		for k := range md {
			if k != strings.ToLower(k) {
				t.Errorf("%s: key %q is not lower-case", tc.name, k)
			}
		}
		got, err := DecodeMetadata(md)
		if err != nil {
			t.Fatalf("%s: decode: %v", tc.name, err)
		}
		if !sameMeta(got, m) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", tc.name, got, m)
		}
		// minio-go canonicalises keys: Producer-Start.
		canon := map[string]string{}
		for k, v := range md {
			parts := strings.Split(k, "-")
			for i, p := range parts {
				parts[i] = strings.ToUpper(p[:1]) + p[1:]
			}
			canon[strings.Join(parts, "-")] = v
		}
		if got, err := DecodeMetadata(canon); err != nil || !sameMeta(got, m) {
			t.Errorf("%s: canonical-case keys: %+v, %v", tc.name, got, err)
		}
	}
}

func TestMetadataTagsTooLarge(t *testing.T) {
	m := metadataCases[0].m()
	m.Tags = map[string]string{"notes": strings.Repeat("n", 2000)}
	md, err := EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateUserMetadata(md); err != nil {
		t.Fatalf("too-large tags were not left out: %v", err)
	}
	if _, ok := md[MetaTags]; ok || !TagsOmitted(md) {
		t.Errorf("tags kept or not flagged: %v", md)
	}
	got, err := DecodeMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	m.Tags = nil
	if !sameMeta(got, m) {
		t.Errorf("got %+v", got)
	}
	if TagsOmitted(map[string]string{"Tags-Omitted": "true"}) != true || TagsOmitted(nil) {
		t.Error("TagsOmitted")
	}
	// Too large even without tags.
	for i := range 200 {
		m.Tracks = append(m.Tracks, fragment.TrackRef{ID: uint32(i), Kind: fragment.KindData, Codec: "custom-codec"})
	}
	if _, err := EncodeMetadata(m); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("huge metadata: %v", err)
	}
	m.Tracks = nil
	m.Stream = "../x"
	if _, err := EncodeMetadata(m); !errors.Is(err, fragment.ErrInvalidStreamName) {
		t.Errorf("bad stream: %v", err)
	}
}

// badMetadata are hostile inputs to DecodeMetadata, as "key: value" lines.
var badMetadata = []string{
	"",
	"fragment-version: 2",
	"stream: cam1",
	"fragment-version: 1\nstream: ../etc\nnumber: 1",
	"fragment-version: 1\nstream: cam1\nnumber: -1",
	"fragment-version: 1\nstream: cam1\nnumber: 99999999999999999999999",
	"fragment-version: 1\nstream: cam1\nnumber: 1\nproducer-start: yesterday",
	"fragment-version: 1\nStream: a\nstream: b",
	"fragment-version: 1\nstream: c\nnumber: 1\nproducer-start: 2026-01-01T00:00:00Z\nproducer-end: 2026-01-01T00:00:00Z\nserver-time: 2026-01-01T00:00:00Z\nsize: 1\ncontainer: fmp4\ntracks: 1:video",
	"fragment-version: 1\nstream: c\nnumber: 1\nproducer-start: 2026-01-01T00:00:00Z\nproducer-end: 2026-01-01T00:00:00Z\nserver-time: 2026-01-01T00:00:00Z\nsize: 1\ncontainer: fmp4\ntags: bnVsbA",
	"fragment-version: 1\nstream: c\nnumber: 1\nproducer-start: 2026-01-01T00:00:00Z\nproducer-end: 2026-01-01T00:00:00Z\nserver-time: 2026-01-01T00:00:00Z\nsize: 1\ncontainer: %zz",
	"fragment-version: 1\nstream: c\nnumber: 1\nproducer-start: 2026-01-01T00:00:00Z\nproducer-end: 2026-01-01T00:00:00Z\nserver-time: 2026-01-01T00:00:00Z\nsize: 1\ncontainer: fmp4\ntags: !!",
}

func parseLines(s string) map[string]string {
	md := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			md[k] = v
		}
	}
	return md
}

func formatLines(md map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(md)) {
		fmt.Fprintf(&b, "%s: %s\n", k, md[k])
	}
	return b.String()
}

func TestDecodeMetadataErrors(t *testing.T) {
	for _, in := range badMetadata {
		if _, err := DecodeMetadata(parseLines(in)); !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("DecodeMetadata(%q) = %v, want ErrInvalidMetadata", in, err)
		}
	}
}

// FuzzDecodeMetadata feeds hostile user metadata ("key: value" lines) to the
// decoder: an error or metadata that re-encodes to itself, never a panic.
func FuzzDecodeMetadata(f *testing.F) {
	for _, tc := range metadataCases {
		md, _ := EncodeMetadata(tc.m())
		f.Add(formatLines(md))
	}
	for _, in := range badMetadata {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := DecodeMetadata(parseLines(in))
		if err != nil {
			if !errors.Is(err, ErrInvalidMetadata) {
				t.Fatalf("error %v does not wrap ErrInvalidMetadata", err)
			}
			return
		}
		md, err := EncodeMetadata(m)
		if err != nil {
			return // e.g. decoded fields too large to re-encode
		}
		m2, err := DecodeMetadata(md)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v\n%v", err, md)
		}
		if TagsOmitted(md) {
			m.Tags = nil
		}
		if !sameMeta(m, m2) {
			t.Fatalf("unstable round trip\n%+v\n%+v", m, m2)
		}
	})
}
