package sensor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// ReadFragment returns the readings of a stored sensor fragment (MKV), in
// its order.
func ReadFragment(mkv []byte) ([]Reading, error) {
	var out []Reading
	err := eachLine(mkv, func(line []byte) error {
		rd, err := ParseLine(line)
		if err != nil {
			return fmt.Errorf("reading at %d: %w", len(out), err)
		}
		out = append(out, rd)
		return nil
	})
	return out, err
}

// NDJSON returns the readings of a stored sensor fragment (MKV) as NDJSON:
// each its stored line ({"time","recv","topic","late","value"}), in its
// order. The archive keeps it beside the fragment (archive.ReadingsKey).
func NDJSON(mkv []byte) ([]byte, error) {
	// the blocks are the stored lines (compact JSON): joined, not parsed
	out := make([]byte, 0, len(mkv))
	err := eachLine(mkv, func(line []byte) error {
		if len(line) == 0 || line[0] != '{' || bytes.IndexByte(line, '\n') >= 0 {
			return fmt.Errorf("a block is not a stored line: %.40q", line)
		}
		out = append(append(out, line...), '\n')
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFragment, err)
	}
	return out, nil
}

// eachLine calls fn with each block of a sensor fragment's data track (a
// stored line, valid during the call), in order.
func eachLine(mkv []byte, fn func(line []byte) error) error {
	r := fragment.NewMKVReader(bytes.NewReader(mkv))
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		data := uint64(0)
		for _, t := range c.Tracks {
			if t.CodecID == "S_TEXT/UTF8" {
				data = t.Number
			}
		}
		for _, f := range c.Frames {
			if f.Track != data {
				continue
			}
			if err := fn(f.Data); err != nil {
				return err
			}
		}
	}
}

// AppendNDJSON appends readings as NDJSON: each its stored line.
func AppendNDJSON(dst []byte, rs []Reading) []byte {
	for i := range rs {
		dst = AppendLine(dst, &rs[i])
		dst = append(dst, '\n')
	}
	return dst
}

// HasReadings reports whether a fragment is a sensor fragment: one JSON
// data track and nothing else (a video fragment with a text track is not).
func HasReadings(m *fragment.Metadata) bool {
	return len(m.Tracks) == 1 && m.Tracks[0].Codec == fragment.CodecJSON
}

// MaxFragmentRead bounds a stored sensor fragment Each reads.
const MaxFragmentRead = 64 << 20

// Each calls fn, in listing order (start, then number), with each stored
// fragment of stream overlapping [start, end) and its readings, all of
// them (fn filters by time), or the error of reading it. A listing error,
// or fn's, ends it. get, when set, reads a fragment instead of the store
// (a cache).
func Each(ctx context.Context, store archive.Store, layout archive.Layout, stream string, start, end time.Time,
	get func(key string) ([]Reading, bool), fn func(m *fragment.Metadata, rs []Reading, err error) error) error {
	req := archive.ListRequest{Stream: stream, Start: start, End: end, Limit: archive.MaxListFragmentsLimit}
	for {
		res, err := archive.ListFragments(ctx, store, layout, req)
		if err != nil {
			return err
		}
		for i := range res.Fragments {
			m := &res.Fragments[i]
			if !HasReadings(m) {
				continue
			}
			rs, ok := []Reading(nil), false
			if get != nil {
				rs, ok = get(m.Key)
			}
			var err error
			if !ok {
				rs, err = readStored(ctx, store, m.Key)
			}
			if err := fn(m, rs, err); err != nil {
				return err
			}
		}
		if res.NextToken == "" {
			return nil
		}
		req.Token = res.NextToken
	}
}

func readStored(ctx context.Context, store archive.Store, key string) ([]Reading, error) {
	rc, info, err := store.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > MaxFragmentRead {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", key, info.Size, MaxFragmentRead)
	}
	data, err := io.ReadAll(io.LimitReader(rc, MaxFragmentRead+1))
	if err != nil {
		return nil, err
	}
	rs, err := ReadFragment(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFragment, key, err)
	}
	return rs, nil
}

// ErrBadFragment is a stored fragment whose readings cannot be read.
var ErrBadFragment = errors.New("unreadable sensor fragment")
