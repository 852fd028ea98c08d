package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/tributary-io/tributary/fragment"
)

// ReadFragment returns the readings of a stored sensor fragment (MKV), in
// its order.
func ReadFragment(mkv []byte) ([]Reading, error) {
	r := fragment.NewMKVReader(bytes.NewReader(mkv))
	var out []Reading
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
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
			rd, err := ParseLine(f.Data)
			if err != nil {
				return out, fmt.Errorf("reading at %d: %w", len(out), err)
			}
			out = append(out, rd)
		}
	}
}
