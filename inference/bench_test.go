package inference

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
)

// BenchmarkDispatch measures what a hook adds to each fragment beyond the
// endpoint's own time: building the payload (init segment + a 1 MB
// fragment), the HTTP round trip on loopback, and storing the result
// durably in a local archive (written and fsynced). The endpoint answers
// at once; its handler time is subtracted.
func BenchmarkDispatch(b *testing.B) {
	var handler atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"activity":0.1}`))
		handler.Add(int64(time.Since(t0)))
	}))
	defer srv.Close()
	h := Hook{Model: "bench", Kind: KindSageMaker, URL: srv.URL}
	if err := h.Validate("h"); err != nil {
		b.Fatal(err)
	}
	rs := &Records{Store: &archive.Local{Root: filepath.Join(b.TempDir(), "a")}}
	iv := &Invoker{Hook: h, Records: rs, Logger: quiet}
	sizes := []int{150_000}
	for range 59 {
		sizes = append(sizes, 14_000)
	}
	base := time.Unix(1_700_000_000, 0)
	ins := make([]*Input, 16)
	for i := range ins {
		ins[i] = syntheticInput(b, "cam", uint64(i), base.Add(time.Duration(i)*2*time.Second), sizes...)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		in := *ins[i%len(ins)]
		in.Meta.Number = uint64(i)
		t0 := time.Now()
		before := handler.Load()
		if _, err := iv.Process(context.Background(), &in, PlacementEdge); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0)-time.Duration(handler.Load()-before))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkConsumer100Streams: one consumer over 100 streams of 2 s
// fragments, against an endpoint that takes 50 ms, with 8 streams at a
// time. It reports how many fragments a second it processes; keeping up
// takes 50 (100 streams / 2 s).
func BenchmarkConsumer100Streams(b *testing.B) {
	st := &archive.Local{Root: filepath.Join(b.TempDir(), "a")}
	var streams []string
	for i := range 100 {
		streams = append(streams, fmt.Sprintf("cam%03d", i))
	}
	const perStream = 10
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, s := range streams {
		for i := range perStream {
			storeInput(b, st, syntheticInput(b, s, uint64(i+1), base.Add(time.Duration(i)*2*time.Second), 20000, 4000, 4000))
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(50 * time.Millisecond)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	for b.Loop() {
		group := fmt.Sprintf("g%d", time.Now().UnixNano())
		rs := &Records{Store: st}
		h := Hook{Model: group, Kind: KindSageMaker, URL: srv.URL, Concurrency: 8}
		if err := h.Validate("h"); err != nil {
			b.Fatal(err)
		}
		c := &Consumer{Store: st, Group: group, Invokers: []*Invoker{{Hook: h, Records: rs, Logger: quiet}}, Local: true,
			Poll: 50 * time.Millisecond, Workers: 8, Logger: quiet}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		t0 := time.Now()
		go func() { c.Run(ctx); close(done) }()
		for c.Stats().Processed < uint64(len(streams)*perStream) {
			time.Sleep(10 * time.Millisecond)
		}
		elapsed := time.Since(t0)
		cancel()
		<-done
		rate := float64(len(streams)*perStream) / elapsed.Seconds()
		b.ReportMetric(rate, "fragments/s")
		b.ReportMetric(rate/50, "x-realtime")
	}
}
