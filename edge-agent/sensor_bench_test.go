package edgeagent_test

import (
	"bytes"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/ingest/sensor"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSensorPush pushes readings over HTTP (NDJSON batches of 5000)
// into an agent with a local archive and reports readings per second of
// CPU (user + system of the whole process, the HTTP client included): the
// readings a core takes into archived, fsynced fragments.
func BenchmarkSensorPush(b *testing.B) {
	a, _ := startPushAgent(b, func(c *edgeagent.Config) {
		c.Log.Level = "error"
	}, edgeagent.StreamConfig{Name: "bench", Sensor: &edgeagent.SensorConfig{
		Timestamp: sensor.Timestamp{Field: "ts", Format: sensor.FormatMillis}, MaxRate: 1_000_000,
		Period: edgeagent.Duration(time.Second), Window: edgeagent.Duration(time.Second),
	}})
	url := "http://" + a.Addr() + "/v1/streams/bench/samples"
	const batch = 5000
	var body bytes.Buffer
	base := time.Now()
	b.ResetTimer()
	cpu0, wall0 := cpuTime(), time.Now()
	for sent := 0; sent < b.N; sent += batch {
		body.Reset()
		for i := sent; i < min(sent+batch, b.N); i++ {
			// 100 readings per ms of producer time, recent enough to be in order
			fmt.Fprintf(&body, `{"ts":%d,"sensor":"line-%d","celsius":%.2f,"motion":%t}`+"\n", base.Add(time.Duration(i)*10*time.Microsecond).UnixMilli(), i%8, 20+float64(i%300)/100, i%7 == 0)
		}
		req, _ := http.NewRequest(http.MethodPost, url, &body)
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+pushToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("push: %v %v", res.Status, err)
		}
		res.Body.Close()
	}
	a.Close() // closes and stores every fragment
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	b.StopTimer()
	st := streamStatus(a, "bench")
	if st.Sensor.Readings != uint64(b.N) {
		b.Fatalf("%d of %d readings taken", st.Sensor.Readings, b.N)
	}
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "readings/cpu-s")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "readings/s")
}
