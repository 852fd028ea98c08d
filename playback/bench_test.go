package playback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/playback"
)

// day24 builds a local archive of 24 h of one stream's 2 s fragments
// (43,200) with hour manifests and a stream.json, once per process.
var (
	dayOnce sync.Once
	dayDir  string
)

func day24(b *testing.B) (string, time.Time) {
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	dayOnce.Do(func() {
		dayDir = b.TempDir()
		ctx := context.Background()
		store := &archive.Local{Root: dayDir}
		layout := archive.Layout{}
		si, _ := json.Marshal(map[string]any{"name": "cam", "container": "fmp4", "init": "0123456789abcdef",
			"tracks": []fragment.Track{{ID: 1, Kind: fragment.KindVideo, Codec: fragment.CodecH264, TimeScale: 90000, SPS: []byte{0x67, 0x64, 0, 0x1e}}}})
		key, _ := layout.StreamKey("cam")
		store.Put(ctx, key, bytes.NewReader(si), int64(len(si)), archive.PutOptions{})
		for h := 0; h < 24; h++ {
			idx := archive.HourIndex{Version: archive.HourIndexVersion, Stream: "cam", Hour: t0.Add(time.Duration(h) * time.Hour)}
			for i := 0; i < 1800; i++ {
				n := uint64(h*1800 + i + 1)
				start := t0.Add(time.Duration(n-1) * 2 * time.Second)
				m := fragment.Metadata{Stream: "cam", Number: n, ProducerStart: start, ProducerEnd: start.Add(2 * time.Second),
					ServerTime: start.Add(2100 * time.Millisecond), Duration: 2 * time.Second, Size: 3, Container: fragment.ContainerFMP4,
					InitHash: "0123456789abcdef", SHA256: fmt.Sprintf("%064x", n)}
				m.Key, _ = layout.FragmentKey(m)
				md, _ := archive.EncodeMetadata(m)
				if _, err := store.Put(ctx, m.Key, bytes.NewReader([]byte("abc")), 3, archive.PutOptions{Metadata: md}); err != nil {
					b.Fatal(err)
				}
				idx.Fragments = append(idx.Fragments, m)
			}
			var buf bytes.Buffer
			archive.EncodeHourIndex(&buf, idx)
			k, _ := layout.HourIndexKey("cam", idx.Hour)
			store.Put(ctx, k, bytes.NewReader(buf.Bytes()), int64(buf.Len()), archive.PutOptions{})
		}
	})
	return dayDir, t0
}

// BenchmarkOnDemandPlaylist24h: an on-demand playlist of 24 h of 2 s
// fragments from a local archive with hour manifests; "cold" reads the
// manifests, "warm" has them cached by ETag (a second viewer).
func BenchmarkOnDemandPlaylist24h(b *testing.B) {
	dir, t0 := day24(b)
	url := "/v1/streams/cam/hls/media.m3u8?mode=on_demand&start=" + t0.Format(time.RFC3339) + "&end=" + t0.Add(24*time.Hour).Format(time.RFC3339)
	get := func(s *playback.Server) int {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
		return strings.Count(rec.Body.String(), "#EXTINF")
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			s := &playback.Server{Store: &archive.Local{Root: dir}, Access: playback.Access{Disabled: true}, Logger: quiet()}
			if n := get(s); n != 43200 {
				b.Fatalf("%d segments", n)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		s := &playback.Server{Store: &archive.Local{Root: dir}, Access: playback.Access{Disabled: true}, Logger: quiet()}
		get(s)
		b.ResetTimer()
		for b.Loop() {
			get(s)
		}
	})
}

// BenchmarkHLSViewers runs 200 HLS viewers of one live stream for 20 s
// against the playback server over a local archive (the agent's), each
// reloading the live playlist every 2 s and fetching every new segment; it
// reports segment time-to-first-byte p50/p99 and the playlist latency.
func BenchmarkHLSViewers(b *testing.B) {
	e := recording(b)
	srv := &playback.Server{Store: &archive.Local{Root: e.dir + "/archive"}, Access: playback.Access{Disabled: true}, Logger: quiet()}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	const viewers = 200
	dur := 20 * time.Second
	var mu sync.Mutex
	var ttfb, plLat []time.Duration
	errs := 0
	tr := &http.Transport{MaxIdleConnsPerHost: viewers, MaxConnsPerHost: 0}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), dur)
		var wg sync.WaitGroup
		for v := 0; v < viewers; v++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen := map[string]bool{}
				time.Sleep(time.Duration(v) * 10 * time.Millisecond) // viewers arrive over 2 s
				for ctx.Err() == nil {
					t0 := time.Now()
					res, err := client.Get(ts.URL + "/v1/streams/door/hls/media.m3u8?mode=live")
					if err != nil {
						break
					}
					pl, _ := io.ReadAll(res.Body)
					res.Body.Close()
					d := time.Since(t0)
					mu.Lock()
					plLat = append(plLat, d)
					mu.Unlock()
					for _, line := range strings.Split(string(pl), "\n") {
						if !strings.HasPrefix(line, "f/") || seen[line] {
							continue
						}
						seen[line] = true
						t1 := time.Now()
						res, err := client.Get(ts.URL + "/v1/streams/door/hls/" + line)
						if err != nil {
							mu.Lock()
							errs++
							mu.Unlock()
							continue
						}
						first := time.Since(t1) // headers arrived
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						mu.Lock()
						if res.StatusCode == 200 {
							ttfb = append(ttfb, first)
						} else {
							errs++
						}
						mu.Unlock()
					}
					select {
					case <-ctx.Done():
					case <-time.After(2 * time.Second):
					}
				}
			}()
		}
		wg.Wait()
		cancel()
	}
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		if len(s) == 0 {
			return 0
		}
		return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(ttfb, 0.5), "seg-ttfb-p50-ms")
	b.ReportMetric(pct(ttfb, 0.99), "seg-ttfb-p99-ms")
	b.ReportMetric(pct(plLat, 0.5), "playlist-p50-ms")
	b.ReportMetric(pct(plLat, 0.99), "playlist-p99-ms")
	b.ReportMetric(float64(len(ttfb)), "segments")
	b.ReportMetric(float64(errs), "errors")
}
