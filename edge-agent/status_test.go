package edgeagent

import (
	"testing"
	"time"
)

func TestLatencyRing(t *testing.T) {
	var r latencyRing
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	if got := r.since(t0); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := range LatencySamples + 10 {
		r.add(t0.Add(time.Duration(i)*2*time.Second), time.Duration(i)*time.Millisecond)
	}
	all := r.since(time.Time{})
	if len(all) != LatencySamples {
		t.Fatalf("%d samples, want the latest %d", len(all), LatencySamples)
	}
	if all[0].MS != 10 || all[len(all)-1].MS != float64(LatencySamples+9) {
		t.Errorf("oldest %v, newest %v", all[0], all[len(all)-1])
	}
	recent := r.since(t0.Add(time.Duration(LatencySamples+5) * 2 * time.Second))
	if len(recent) != 5 || !recent[0].Closed.Equal(t0.Add(time.Duration(LatencySamples+5)*2*time.Second)) {
		t.Errorf("since: %v", recent)
	}
}
