package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

var (
	day24Once sync.Once
	day24Dir  string
	day24Err  error
)

// day24 builds (once per process) a local archive holding 24 hours of one
// stream's 2 s fragments, 43,200 of them, with hour manifests.
func day24(b *testing.B) (*Local, time.Time) {
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	day24Once.Do(func() {
		day24Dir, day24Err = os.MkdirTemp("", "tributary-day24-")
		if day24Err != nil {
			return
		}
		ctx := context.Background()
		store := &Local{Root: day24Dir, noSync: true}
		layout := Layout{}
		for h := 0; h < 24; h++ {
			idx := HourIndex{Version: HourIndexVersion, Stream: "cam", Hour: t0.Add(time.Duration(h) * time.Hour)}
			for i := 0; i < 1800; i++ {
				n := uint64(h*1800 + i + 1)
				start := t0.Add(time.Duration(n-1) * 2 * time.Second)
				m := fragment.Metadata{Stream: "cam", Number: n, ProducerStart: start, ProducerEnd: start.Add(2 * time.Second),
					ServerTime: start.Add(2100 * time.Millisecond), Duration: 2 * time.Second, Size: 3, Container: fragment.ContainerFMP4,
					Tracks: []fragment.TrackRef{{ID: 1, Kind: fragment.KindVideo, Codec: fragment.CodecH264}}, Keyframes: 2,
					InitHash: "0123456789abcdef", SHA256: fmt.Sprintf("%064x", n)}
				key, err := layout.FragmentKey(m)
				if err != nil {
					day24Err = err
					return
				}
				m.Key = key
				md, err := EncodeMetadata(m)
				if err != nil {
					day24Err = err
					return
				}
				if _, err := store.Put(ctx, key, bytes.NewReader([]byte("abc")), 3, PutOptions{Metadata: md}); err != nil {
					day24Err = err
					return
				}
				idx.Fragments = append(idx.Fragments, m)
			}
			var buf bytes.Buffer
			if day24Err = EncodeHourIndex(&buf, idx); day24Err != nil {
				return
			}
			key, _ := layout.HourIndexKey("cam", idx.Hour)
			if _, day24Err = store.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), PutOptions{}); day24Err != nil {
				return
			}
		}
	})
	if day24Err != nil {
		b.Fatal(day24Err)
	}
	return &Local{Root: day24Dir, noSync: true}, t0
}

// BenchmarkListFragments24h lists 24 hours of 2 s fragments (43,200) with
// hour manifests: a first page of 1,000, and every page of the whole day.
func BenchmarkListFragments24h(b *testing.B) {
	store, t0 := day24(b)
	ctx := context.Background()
	req := ListRequest{Stream: "cam", Start: t0, End: t0.Add(24 * time.Hour), Limit: 1000}
	b.Run("first-page", func(b *testing.B) {
		for b.Loop() {
			res, err := ListFragments(ctx, store, Layout{}, req)
			if err != nil || len(res.Fragments) != 1000 {
				b.Fatal(len(res.Fragments), err)
			}
		}
	})
	b.Run("whole-day", func(b *testing.B) {
		for b.Loop() {
			n := 0
			r := req
			for {
				res, err := ListFragments(ctx, store, Layout{}, r)
				if err != nil {
					b.Fatal(err)
				}
				n += len(res.Fragments)
				if res.NextToken == "" {
					break
				}
				r.Token = res.NextToken
			}
			if n != 43200 {
				b.Fatalf("listed %d", n)
			}
		}
	})
	b.Run("last-hour-server-selector", func(b *testing.B) {
		r := ListRequest{Stream: "cam", Selector: SelectorServer, Start: t0.Add(23 * time.Hour), End: t0.Add(24 * time.Hour), Limit: 1000}
		for b.Loop() {
			if _, err := ListFragments(ctx, store, Layout{}, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	if day24Dir != "" {
		os.RemoveAll(filepath.Clean(day24Dir))
	}
	os.Exit(code)
}
