//go:build unix

package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLocalPut1MB stores 1 MB fragments (2 s at 4 Mbit/s) with their
// fragment metadata under fresh keys, as the edge agent does, with fsync on,
// in the benchmark's temporary directory (set TMPDIR to try another
// filesystem). cpu-us/op is the process's user+system CPU time per Put,
// from getrusage; the objects are removed every 128 Puts, outside the
// measured time (the agent's retention deletes as many as it writes).
func BenchmarkLocalPut1MB(b *testing.B) {
	ctx := context.Background()
	body := make([]byte, 1_000_000)
	rand.Read(body)
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	m := testMeta("cam1", 1, start, 2*time.Second)
	m.Size = int64(len(body))
	md, err := EncodeMetadata(m)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(body)
	given := PutOptions{ContentType: "video/mp4", Metadata: md, ContentSHA256: hex.EncodeToString(sum[:])}
	for _, bc := range []struct {
		name              string
		opts              PutOptions
		noXattr, noDirect bool
	}{
		// the edge agent's case: it has the fragment's SHA-256 already
		{name: "sha256-given", opts: given},
		{name: "hashed", opts: PutOptions{ContentType: "video/mp4", Metadata: md}},
		// what each choice saves: the record in a sidecar; buffered writes
		{name: "sha256-given-sidecar", opts: given, noXattr: true},
		{name: "sha256-given-buffered", opts: given, noDirect: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := &Local{Root: b.TempDir(), noXattr: bc.noXattr}
			s.noDirect.Store(bc.noDirect)
			b.SetBytes(int64(len(body)))
			var cpu time.Duration
			i := 0
			c0 := cpuTime(b)
			for b.Loop() {
				key := fmt.Sprintf("streams/cam1/f/2026/11/27/10/%013d-%020d.m4s", start.UnixMilli()+int64(i)*2000, i)
				if _, err := s.Put(ctx, key, bytes.NewReader(body), int64(len(body)), bc.opts); err != nil {
					b.Fatal(err)
				}
				i++
				if i%128 == 0 {
					b.StopTimer()
					cpu += cpuTime(b) - c0
					if err := os.RemoveAll(filepath.Join(s.Root, "streams")); err != nil {
						b.Fatal(err)
					}
					os.RemoveAll(filepath.Join(s.Root, LocalMetaDir))
					c0 = cpuTime(b)
					b.StartTimer()
				}
			}
			cpu += cpuTime(b) - c0
			b.ReportMetric(float64(cpu.Microseconds())/float64(i), "cpu-us/op")
		})
	}
}
