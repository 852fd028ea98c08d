package archive

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// HourIndexVersion is the manifest version this package writes. It reads
// version 1 (an object per fragment) too.
const HourIndexVersion = 2

// MaxHourIndexSize bounds the manifest a reader accepts (64 MiB).
const MaxHourIndexSize = 64 << 20

// ErrInvalidManifest is returned for an hour manifest that cannot be decoded
// or does not describe the hour it claims to.
var ErrInvalidManifest = errors.New("invalid hour manifest")

// HourIndex is the manifest of one UTC hour of a stream's fragments, stored
// as index.json in the hour's directory once the hour is complete. Version 2
// stores the fragments' metadata by column, one array per field:
//
//	{"version":2,"stream":"cam1","hour":"2026-11-27T03:00:00Z","count":1800,
//	 "key":[…],"number":[…],"producer_start_ns":[…],…,"inits":[…],"init_ix":[…],…}
//
// Version 1, still read, has an object per fragment:
//
//	{"version":1,"stream":"cam1","hour":"2026-11-27T03:00:00Z","fragments":[…]}
//
// Fragments are sorted by key: producer start in milliseconds, then number.
// Each carries its Key. The manifest is a cache of the fragments' object
// metadata: the object listing stays the truth for which fragments exist.
type HourIndex struct {
	// Version is the version the manifest was decoded from; it is written
	// as HourIndexVersion whatever it holds.
	Version int `json:"version"`
	// Stream is the stream's name.
	Stream string `json:"stream"`
	// Hour is the start of the UTC hour.
	Hour time.Time `json:"hour"`
	// Fragments of the hour, with their keys, in key order.
	Fragments []fragment.Metadata `json:"fragments"`
}

// WriteHourIndex builds the manifest of the UTC hour that contains hour from
// the fragments stored in it (one List, then a Stat per fragment when the
// backend's List gives no metadata) and stores it, replacing any previous
// one. Call it once the hour is complete, and again after a backfill into
// the hour. It writes a manifest even for an hour without fragments.
func WriteHourIndex(ctx context.Context, store Store, layout Layout, stream string, hour time.Time) error {
	return WriteHourIndexKnown(ctx, store, layout, stream, hour, nil)
}

// WriteHourIndexKnown is WriteHourIndex for a writer that already knows the
// metadata of some of the hour's fragments (the uploader that just stored
// them): the listing still decides which fragments exist, but only the
// fragments not in known are read with a Stat.
func WriteHourIndexKnown(ctx context.Context, store Store, layout Layout, stream string, hour time.Time, known []fragment.Metadata) error {
	hour = hour.UTC().Truncate(time.Hour)
	byKey := make(map[string]fragment.Metadata, len(known))
	for _, m := range known {
		byKey[m.Key] = m
	}
	prefix, err := layout.HourPrefix(stream, hour)
	if err != nil {
		return err
	}
	idx := HourIndex{Version: HourIndexVersion, Stream: stream, Hour: hour, Fragments: []fragment.Metadata{}}
	after := ""
	for {
		objs, err := store.List(ctx, prefix, after, DefaultListLimit)
		if err != nil {
			return fmt.Errorf("hour index of %s at %s: %w", stream, hour.Format(time.RFC3339), err)
		}
		for _, o := range objs {
			if strings.HasSuffix(o.Key, "/"+HourIndexName) {
				continue
			}
			if _, _, _, _, err := ParseFragmentKey(o.Key); err != nil {
				continue // not a fragment: not ours to index
			}
			if m, ok := byKey[o.Key]; ok {
				idx.Fragments = append(idx.Fragments, m)
				continue
			}
			m, err := fragmentMetadata(ctx, store, o)
			if errors.Is(err, ErrNotFound) {
				continue // deleted since the List
			}
			if err != nil {
				return fmt.Errorf("hour index of %s at %s: %w", stream, hour.Format(time.RFC3339), err)
			}
			idx.Fragments = append(idx.Fragments, m)
		}
		if len(objs) < DefaultListLimit {
			break
		}
		after = objs[len(objs)-1].Key
	}
	var buf bytes.Buffer
	if err := EncodeHourIndex(&buf, idx); err != nil {
		return err
	}
	_, err = store.Put(ctx, prefix+HourIndexName, bytes.NewReader(buf.Bytes()), int64(buf.Len()), PutOptions{ContentType: "application/json"})
	return err
}

// ReadHourIndex reads and decodes the manifest of the UTC hour that contains
// hour. A missing manifest is an error wrapping ErrNotFound.
func ReadHourIndex(ctx context.Context, store Store, layout Layout, stream string, hour time.Time) (HourIndex, error) {
	hour = hour.UTC().Truncate(time.Hour)
	key, err := layout.HourIndexKey(stream, hour)
	if err != nil {
		return HourIndex{}, err
	}
	rc, _, err := store.Get(ctx, key, nil)
	if err != nil {
		return HourIndex{}, err
	}
	defer rc.Close()
	idx, err := DecodeHourIndex(rc)
	if err != nil {
		return HourIndex{}, fmt.Errorf("%s: %w", key, err)
	}
	if idx.Stream != stream || !idx.Hour.Equal(hour) {
		return HourIndex{}, fmt.Errorf("%w: %s: describes %s at %s", ErrInvalidManifest, key, idx.Stream, idx.Hour.Format(time.RFC3339))
	}
	return idx, nil
}

// EncodeHourIndex validates idx, sorts its fragments by key (in place) and
// writes it to w as JSON, in version HourIndexVersion.
func EncodeHourIndex(w io.Writer, idx HourIndex) error {
	idx.Hour = idx.Hour.UTC()
	slices.SortFunc(idx.Fragments, compareFragments)
	if err := idx.validate(); err != nil {
		return err
	}
	b, err := json.Marshal(toColumns(idx))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	_, err = w.Write(b)
	return err
}

// hourIndexJSON decodes either version in one pass.
type hourIndexJSON struct {
	hourColumns
	Fragments []fragment.Metadata `json:"fragments"`
}

// DecodeHourIndex decodes and validates a manifest: version 1 or 2, a valid
// stream, an hour on the hour, fragments of that stream whose keys are
// fragment keys of that hour, sorted, each key once. Anything else is an
// error wrapping ErrInvalidManifest.
func DecodeHourIndex(r io.Reader) (HourIndex, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxHourIndexSize+1))
	if err != nil {
		return HourIndex{}, err
	}
	if len(b) > MaxHourIndexSize {
		return HourIndex{}, fmt.Errorf("%w: larger than %d bytes", ErrInvalidManifest, MaxHourIndexSize)
	}
	var j hourIndexJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return HourIndex{}, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	var idx HourIndex
	switch j.Version {
	case 1:
		if j.Fragments == nil {
			return HourIndex{}, fmt.Errorf("%w: version 1 without fragments", ErrInvalidManifest)
		}
		idx = HourIndex{Version: 1, Stream: j.Stream, Hour: j.Hour, Fragments: j.Fragments}
	case 2:
		if j.Fragments != nil {
			return HourIndex{}, fmt.Errorf("%w: version 2 with a fragments array", ErrInvalidManifest)
		}
		if idx, err = fromColumns(j.hourColumns); err != nil {
			return HourIndex{}, err
		}
	default:
		return HourIndex{}, fmt.Errorf("%w: version %d, want 1 or 2", ErrInvalidManifest, j.Version)
	}
	idx.Hour = idx.Hour.UTC()
	if err := idx.validate(); err != nil {
		return HourIndex{}, err
	}
	return idx, nil
}

// maxTimeFromHour bounds how far a fragment's end and server times may be
// from its hour (version 2 stores them as nanoseconds from the hour).
const maxTimeFromHour = 100 * 365 * 24 * time.Hour

func (idx *HourIndex) validate() error {
	if err := fragment.ValidateStreamName(idx.Stream); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if !idx.Hour.Equal(idx.Hour.Truncate(time.Hour)) || idx.Hour.Before(time.UnixMilli(0)) || idx.Hour.After(time.UnixMilli(MaxStartMs)) {
		return fmt.Errorf("%w: hour %s is not the start of an hour between 1970 and 2286", ErrInvalidManifest, idx.Hour.Format(time.RFC3339Nano))
	}
	wantHour := hourPath(idx.Hour)
	for i, m := range idx.Fragments {
		stream, startMs, number, container, err := ParseFragmentKey(m.Key)
		if err != nil {
			return fmt.Errorf("%w: fragment %d: %w", ErrInvalidManifest, i, err)
		}
		if m.ProducerStart.UnixMilli() != startMs {
			return fmt.Errorf("%w: fragment %d: producer start %s is not the key's %d ms", ErrInvalidManifest, i, m.ProducerStart.Format(time.RFC3339Nano), startMs)
		}
		for _, t := range []time.Time{m.ProducerEnd, m.ServerTime} {
			if !t.IsZero() && (t.Before(idx.Hour.Add(-maxTimeFromHour)) || t.After(idx.Hour.Add(maxTimeFromHour))) {
				return fmt.Errorf("%w: fragment %d: time %s is more than %v from its hour", ErrInvalidManifest, i, t.Format(time.RFC3339Nano), maxTimeFromHour)
			}
		}
		if stream != idx.Stream || m.Stream != idx.Stream || number != m.Number || container != m.Container {
			return fmt.Errorf("%w: fragment %d: key %q does not match its metadata or the manifest's stream", ErrInvalidManifest, i, m.Key)
		}
		if hourPath(time.UnixMilli(startMs)) != wantHour {
			return fmt.Errorf("%w: fragment %d: key %q is not in hour %s", ErrInvalidManifest, i, m.Key, idx.Hour.Format(time.RFC3339))
		}
		if i > 0 && compareFragments(idx.Fragments[i-1], m) >= 0 {
			return fmt.Errorf("%w: fragment %d: not sorted, or listed twice", ErrInvalidManifest, i)
		}
	}
	return nil
}

// compareFragments orders fragments by key name: producer start in
// milliseconds, then number (keys of one hour of one stream differ only in
// their name).
func compareFragments(a, b fragment.Metadata) int {
	return cmp.Or(cmp.Compare(fragmentName(a.Key), fragmentName(b.Key)), cmp.Compare(a.Key, b.Key))
}

func fragmentName(key string) string {
	return key[strings.LastIndexByte(key, '/')+1:]
}

// fragmentMetadata returns the metadata of a fragment object from o's
// Metadata, or from a Stat when the List that gave o left it out. It checks
// the metadata against the key.
func fragmentMetadata(ctx context.Context, store Store, o ObjectInfo) (fragment.Metadata, error) {
	md := o.Metadata
	if md == nil {
		info, err := store.Stat(ctx, o.Key)
		if err != nil {
			return fragment.Metadata{}, err
		}
		md = info.Metadata
	}
	m, err := DecodeMetadata(md)
	if err != nil {
		return fragment.Metadata{}, fmt.Errorf("%s: %w", o.Key, err)
	}
	stream, _, number, container, err := ParseFragmentKey(o.Key)
	if err != nil {
		return fragment.Metadata{}, err
	}
	if m.Stream != stream || m.Number != number || m.Container != container {
		return fragment.Metadata{}, fmt.Errorf("%w: %s: metadata says fragment %d of %s in %s", ErrInvalidMetadata, o.Key, m.Number, m.Stream, m.Container)
	}
	m.Key = o.Key
	return m, nil
}
