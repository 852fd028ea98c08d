package edgeagent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/ingest"
)

// metrics exposes every stream's counters. The counters are atomics bumped
// where the events happen; the collector reads them at scrape time.
type metrics struct {
	agent *Agent
}

var (
	descCounter = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("tributary_"+name, help, []string{"stream"}, nil)
	}
	mPackets       = descCounter("packets_received_total", "RTP packets received.")
	mBytes         = descCounter("bytes_received_total", "Payload bytes received.")
	mSamples       = descCounter("samples_total", "Access units delivered to the cutter.")
	mFragments     = descCounter("fragments_total", "Fragments stored in the archive.")
	mFragmentBytes = descCounter("fragment_bytes_total", "Bytes of fragments stored.")
	mLost          = descCounter("packets_lost_total", "RTP packets lost upstream (sequence gaps).")
	mDecode        = descCounter("decode_errors_total", "Packets or access units that could not be decoded and were dropped.")
	mQueueFull     = descCounter("dropped_queue_full_total", "Access units dropped because the pipeline could not keep up.")
	mNoParams      = descCounter("dropped_no_params_total", "Access units dropped while waiting for parameter sets.")
	mGOPs          = descCounter("dropped_gops_total", "GOPs dropped for exceeding the fragment duration or size cap.")
	mFragLost      = descCounter("fragments_lost_total", "Fragments that could not be stored.")
	mStoreErrors   = descCounter("store_errors_total", "Failed archive writes.")
	mReconnects    = descCounter("reconnects_total", "Sessions started after the first.")
	mUp            = prometheus.NewDesc("tributary_stream_up", "1 when the stream is streaming.", []string{"stream"}, nil)
	mState         = prometheus.NewDesc("tributary_stream_state", "The stream's state (1 for the current one).", []string{"stream", "state"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mPackets, mBytes, mSamples, mFragments, mFragmentBytes, mLost, mDecode,
		mQueueFull, mNoParams, mGOPs, mFragLost, mStoreErrors, mReconnects, mUp, mState} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, p := range m.agent.pipelines {
		s := p.snapshot()
		c := s.Counters
		n := s.Name
		for _, v := range []struct {
			d *prometheus.Desc
			v uint64
		}{
			{mPackets, c.Packets}, {mBytes, c.Bytes}, {mSamples, c.Samples}, {mFragments, c.Fragments},
			{mFragmentBytes, c.FragmentBytes}, {mLost, c.PacketsLost}, {mDecode, c.DecodeErrors},
			{mQueueFull, c.DroppedQueueFull}, {mNoParams, c.DroppedNoParams}, {mGOPs, c.DroppedGOPs},
			{mFragLost, c.FragmentsLost}, {mStoreErrors, c.StoreErrors}, {mReconnects, c.Reconnects},
		} {
			ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.v), n)
		}
		up := 0.0
		if s.State == ingest.StateStreaming {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(mUp, prometheus.GaugeValue, up, n)
		for _, st := range []string{ingest.StateConnecting, ingest.StateStreaming, ingest.StateBackoff, ingest.StateFailed, ingest.StateStopped} {
			v := 0.0
			if st == s.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(mState, prometheus.GaugeValue, v, n, st)
		}
	}
}
