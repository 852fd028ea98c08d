package edgeagent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/fragment"
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
	mPackets        = descCounter("packets_received_total", "RTP packets received.")
	mBytes          = descCounter("bytes_received_total", "Payload bytes received.")
	mSamples        = descCounter("samples_total", "Access units delivered to the cutter.")
	mFragments      = descCounter("fragments_total", "Fragments stored in the archive.")
	mFragmentBytes  = descCounter("fragment_bytes_total", "Bytes of fragments stored.")
	mLost           = descCounter("packets_lost_total", "RTP packets lost upstream (sequence gaps).")
	mDecode         = descCounter("decode_errors_total", "Packets or access units that could not be decoded and were dropped.")
	mQueueFull      = descCounter("dropped_queue_full_total", "Access units dropped because the pipeline could not keep up.")
	mNoParams       = descCounter("dropped_no_params_total", "Access units dropped while waiting for parameter sets.")
	mGOPs           = descCounter("dropped_gops_total", "GOPs dropped for exceeding the fragment duration or size cap.")
	mFragLost       = descCounter("fragments_lost_total", "Fragments that could not be stored.")
	mStoreErrors    = descCounter("store_errors_total", "Failed archive writes.")
	mReconnects     = descCounter("reconnects_total", "Sessions started after the first.")
	mKeyframeReqs   = descCounter("keyframe_requests_total", "Keyframes asked of the producer (RTCP PLI over WebRTC).")
	mSensorReadings = prometheus.NewDesc("tributary_sensor_readings_total", "Sensor readings, by outcome: taken, late (stored in late fragments), duplicate (dropped), rejected, rate_limited, retained (skipped).", []string{"stream", "outcome"}, nil)
	mSensorSkew     = prometheus.NewDesc("tributary_sensor_clock_skew_seconds", "The agent's clock minus the sensor devices' (transit included).", []string{"stream"}, nil)
	mSensorMQTT     = prometheus.NewDesc("tributary_sensor_mqtt_connected", "1 while the sensor stream's MQTT connection is up.", []string{"stream"}, nil)
	mWHIPSessions   = prometheus.NewDesc("tributary_whip_sessions_total", "WHIP publishers accepted.", nil, nil)
	mWHIPRejected   = prometheus.NewDesc("tributary_whip_rejected_total", "WHIP requests refused (bad offer, auth, limits).", nil, nil)
	mWHIPActive     = prometheus.NewDesc("tributary_whip_active", "WHIP sessions connected now.", nil, nil)
	mBacklog        = descCounter("backlog_fragments", "Fragments in the spool waiting for the archive.")
	mBacklogBytes   = descCounter("backlog_bytes", "Bytes in the spool waiting for the archive.")
	mOldest         = descCounter("oldest_pending_age_seconds", "Age of the oldest fragment not yet in the archive.")
	mUploaded       = descCounter("fragments_uploaded_total", "Fragments uploaded from the spool to the archive.")
	mUploadErrors   = prometheus.NewDesc("tributary_upload_errors_total", "Failed uploads by error class.", []string{"stream", "class"}, nil)
	mLostCause      = prometheus.NewDesc("tributary_fragments_lost_by_cause_total", "Fragments lost, by cause.", []string{"stream", "cause"}, nil)
	mSpoolBytes     = prometheus.NewDesc("tributary_spool_bytes", "Fragment bytes in the spool.", nil, nil)
	mSpoolMax       = prometheus.NewDesc("tributary_spool_max_bytes", "The spool's size cap.", nil, nil)
	mSpoolPaused    = prometheus.NewDesc("tributary_spool_paused", "1 while a full spool refuses new fragments (deny_new).", nil, nil)
	mUp             = prometheus.NewDesc("tributary_stream_up", "1 when the stream is streaming.", []string{"stream"}, nil)
	mState          = prometheus.NewDesc("tributary_stream_state", "The stream's state (1 for the current one).", []string{"stream", "state"}, nil)
	mSampleMemory   = prometheus.NewDesc("tributary_sample_memory_bytes", "Memory of the samples of open fragments and of access units being assembled, all streams: in use, or free and kept for reuse.", []string{"state"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mPackets, mBytes, mSamples, mFragments, mFragmentBytes, mLost, mDecode,
		mQueueFull, mNoParams, mGOPs, mFragLost, mStoreErrors, mReconnects, mKeyframeReqs, mUp, mState,
		mWHIPSessions, mWHIPRejected, mWHIPActive, mSensorReadings, mSensorSkew, mSensorMQTT,
		mBacklog, mBacklogBytes, mOldest, mUploaded, mUploadErrors, mLostCause, mSpoolBytes, mSpoolMax, mSpoolPaused,
		mSampleMemory} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	inUse, free := fragment.SampleMemory()
	ch <- prometheus.MustNewConstMetric(mSampleMemory, prometheus.GaugeValue, float64(inUse), "in_use")
	ch <- prometheus.MustNewConstMetric(mSampleMemory, prometheus.GaugeValue, float64(free), "free")
	if w := m.agent.whip; w != nil {
		ch <- prometheus.MustNewConstMetric(mWHIPSessions, prometheus.CounterValue, float64(w.Sessions.Load()))
		ch <- prometheus.MustNewConstMetric(mWHIPRejected, prometheus.CounterValue, float64(w.Rejected.Load()))
		ch <- prometheus.MustNewConstMetric(mWHIPActive, prometheus.GaugeValue, float64(w.Active()))
	}
	if sp := m.agent.spool; sp != nil {
		st := sp.status()
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(mSpoolBytes, prometheus.GaugeValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(mSpoolMax, prometheus.GaugeValue, float64(st.MaxBytes))
		ch <- prometheus.MustNewConstMetric(mSpoolPaused, prometheus.GaugeValue, paused)
	}
	for _, p := range m.agent.streams() {
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
			{mKeyframeReqs, c.KeyframeRequests},
		} {
			ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.v), n)
		}
		if u := s.Upload; u != nil {
			ch <- prometheus.MustNewConstMetric(mBacklog, prometheus.GaugeValue, float64(u.BacklogFragments), n)
			ch <- prometheus.MustNewConstMetric(mBacklogBytes, prometheus.GaugeValue, float64(u.BacklogBytes), n)
			ch <- prometheus.MustNewConstMetric(mOldest, prometheus.GaugeValue, float64(u.OldestPendingAgeMS)/1000, n)
			ch <- prometheus.MustNewConstMetric(mUploaded, prometheus.CounterValue, float64(u.Uploaded), n)
			for class, v := range u.ErrorsByClass {
				ch <- prometheus.MustNewConstMetric(mUploadErrors, prometheus.CounterValue, float64(v), n, class)
			}
			for cause, v := range u.LostByCause {
				ch <- prometheus.MustNewConstMetric(mLostCause, prometheus.CounterValue, float64(v), n, cause)
			}
		}
		if ss := s.Sensor; ss != nil {
			for _, o := range []struct {
				name string
				v    uint64
			}{{"taken", ss.Readings}, {"late", ss.Late}, {"duplicate", ss.Duplicates}, {"rejected", ss.Rejected},
				{"rate_limited", ss.RateLimited}, {"retained", ss.Retained}} {
				ch <- prometheus.MustNewConstMetric(mSensorReadings, prometheus.CounterValue, float64(o.v), n, o.name)
			}
			if ss.ClockSkewMS != nil {
				ch <- prometheus.MustNewConstMetric(mSensorSkew, prometheus.GaugeValue, *ss.ClockSkewMS/1000, n)
			}
			if ss.MQTTConnected != nil {
				v := 0.0
				if *ss.MQTTConnected {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(mSensorMQTT, prometheus.GaugeValue, v, n)
			}
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
