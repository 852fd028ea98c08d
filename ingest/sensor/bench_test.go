package sensor

import (
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// BenchmarkIngest measures a reading's whole way in the agent but the
// transport and the disk: decoding and checking its JSON, its timestamp,
// the fragmenter (order, duplicates) and the MKV encoding of its fragment.
// readings/s is per core (the benchmark runs on one goroutine).
func BenchmarkIngest(b *testing.B) {
	msgs := make([][]byte, 1000)
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, `{"ts":%d,"sensor":"line-%d","celsius":%.2f,"motion":%t}`, base.Add(time.Duration(i)*time.Millisecond).UnixMilli(), i%8, 20+float64(i%300)/100, i%7 == 0)
	}
	ts := Timestamp{Field: "ts", Format: FormatMillis}
	var w fragment.MKVWriter
	var out []byte
	fr := &Fragmenter{Period: time.Second, Window: time.Second}
	fr.Emit = func(f *fragment.Fragment) {
		var err error
		out, err = w.Append(out[:0], f)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		loop, k := i/len(msgs), i%len(msgs)
		recv := base.Add(time.Duration(i) * time.Millisecond)
		r, err := Decode(msgs[k], ts, recv, 1<<16)
		if err != nil {
			b.Fatal(err)
		}
		r.Time = r.Time.Add(time.Duration(loop) * time.Second) // a new second each loop
		fr.Add(r, recv)
		if k == len(msgs)-1 {
			fr.Tick(recv)
		}
	}
	fr.Flush()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "readings/s")
}
