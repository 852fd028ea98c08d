package edgeagent

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/internal/testenv"
)

func benchS3(b *testing.B) *archive.S3 {
	if _, err := testenv.FindVersityGW(); err != nil {
		b.Skip("versitygw is not installed: make peers")
	}
	gw := testenv.StartVersityGW(b)
	s3, err := archive.NewS3(archive.S3Config{Endpoint: gw.Endpoint, Bucket: "bench", AccessKey: gw.AccessKey, SecretKey: gw.SecretKey, CreateBucket: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s3.Check(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s3
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkCloseToBucket measures fragment close → durable in the bucket
// (spool fsync, record commit, upload to versitygw) for 1 MB fragments from
// 10 streams at 4 Mbit/s each, next to a bare S3 PUT of the same bytes.
func BenchmarkCloseToBucket(b *testing.B) {
	s3 := benchS3(b)
	sp, err := openSpool(b.TempDir(), 8<<30, StrategyDeleteOldest, false, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	var mu sync.Mutex
	var lat []time.Duration
	u := &uploader{spool: sp, store: s3, workers: 4, log: quietLog(),
		classify: func(err error) (bool, string) { return archive.Retryable(err), archive.ErrorClass(err) },
		onUploaded: func(m fragment.Metadata, d time.Duration) {
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const streams = 10
	data := bytes.Repeat([]byte{7}, 1<<20)
	t0 := time.Now().Truncate(time.Hour)
	// baseline: bare PUTs of the same bytes, one at a time
	var base []time.Duration
	for i := 0; i < 50; i++ {
		start := time.Now()
		if _, err := s3.Put(ctx, fmt.Sprintf("baseline/%d", i), bytes.NewReader(data), int64(len(data)), archive.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}
	b.ResetTimer()
	// one fragment every 200 ms: 10 streams x one per 2 s
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < b.N; i++ {
		<-tick.C
		stream := fmt.Sprintf("cam%d", i%streams)
		m, frag := testFragment(b, stream, uint64(i/streams+1), len(data), t0.Add(time.Duration(i/streams)*2*time.Second))
		copy(frag, data)
		m.ServerTime = time.Now() // the close
		if err := sp.add(m, frag, spoolTracks); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(lat)
		mu.Unlock()
		if n >= b.N || time.Now().After(deadline) {
			break
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(base, 0.5).Microseconds())/1000, "baseline-put-p50-ms")
	b.ReportMetric(float64(percentile(base, 0.99).Microseconds())/1000, "baseline-put-p99-ms")
}

// BenchmarkBacklogDrain: 10 streams have a 10-minute outage's backlog in
// the spool (300 fragments of 2 s each); the store comes back. It reports
// how many times real time the backlog drains at.
func BenchmarkBacklogDrain(b *testing.B) {
	for _, size := range []int{512 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s3 := benchS3(b)
			const streams, perStream = 10, 300
			data := bytes.Repeat([]byte{9}, size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				sp, err := openSpool(b.TempDir(), 8<<30, StrategyDeleteOldest, false, quietLog())
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
				for n := 1; n <= perStream; n++ {
					for s := 0; s < streams; s++ {
						m, frag := testFragment(b, fmt.Sprintf("cam%d", s), uint64(n), size, t0.Add(time.Duration(n)*2*time.Second))
						copy(frag, data)
						if err := sp.add(m, frag, spoolTracks); err != nil {
							b.Fatal(err)
						}
					}
				}
				u := &uploader{spool: sp, store: s3, workers: 4, log: quietLog(),
					classify: func(err error) (bool, string) { return archive.Retryable(err), archive.ErrorClass(err) }}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				b.StartTimer()
				start := time.Now()
				go func() { u.run(ctx); close(done) }()
				for sp.status().Fragments > 0 {
					time.Sleep(5 * time.Millisecond)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				cancel()
				<-done
				sp.close()
				media := time.Duration(perStream) * 2 * time.Second
				b.ReportMetric(media.Seconds()/elapsed.Seconds(), "x-realtime")
				b.ReportMetric(float64(streams*perStream)/elapsed.Seconds(), "fragments/s")
				b.ReportMetric(float64(streams*perStream*size)/1e6/elapsed.Seconds(), "MB/s")
			}
		})
	}
}
