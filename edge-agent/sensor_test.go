package edgeagent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest/sensor"
	"github.com/tributary-io/tributary/internal/testenv"
)

// sensorReadings reads every archived reading of a sensor stream, in
// fragment order, checking each fragment holds readings of its own time
// range in order (late fragments are flagged) and that ffmpeg reads it.
func sensorReadings(t *testing.T, store archive.Store, stream string) (inOrder, late []sensor.Reading, frags []fragment.Metadata) {
	t.Helper()
	res, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{Stream: stream, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, m := range res.Fragments {
		data := readObject(t, store, m.Key)
		rs, err := sensor.ReadFragment(data)
		if err != nil {
			t.Fatalf("fragment %d: %v", m.Number, err)
		}
		if len(rs) != m.SampleCount || m.Container != fragment.ContainerMKV {
			t.Errorf("fragment %d: %d readings, metadata says %d, container %s", m.Number, len(rs), m.SampleCount, m.Container)
		}
		// beside it, the same readings as NDJSON, which any tool reads
		nk, err := archive.ReadingsKey(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(readObject(t, store, nk)), "\n"), "\n")
		if len(lines) != len(rs) {
			t.Errorf("fragment %d: %d NDJSON lines beside %d readings", m.Number, len(lines), len(rs))
		}
		for i := range min(len(lines), len(rs)) {
			var v map[string]any
			if json.Unmarshal([]byte(lines[i]), &v) != nil || lines[i] != string(sensor.AppendLine(nil, &rs[i])) {
				t.Errorf("fragment %d: NDJSON line %d is %q", m.Number, i, lines[i])
				break
			}
		}
		if m.Tags[sensor.TagLate] == "true" {
			late = append(late, rs...)
			continue
		}
		for i, r := range rs {
			if r.Time.Before(m.ProducerStart) || !r.Time.Before(m.ProducerEnd) || (i > 0 && r.Time.Before(rs[i-1].Time)) {
				t.Errorf("fragment %d [%v, %v): reading %d at %v out of place", m.Number, m.ProducerStart, m.ProducerEnd, i, r.Time)
			}
		}
		if checked < 3 {
			// ffmpeg reads the data track: one text event per reading, the
			// reading's stored line
			texts, err := testenv.SubtitleTexts(context.Background(), data)
			if err != nil || len(texts) != len(rs) {
				t.Errorf("ffmpeg on fragment %d: %d texts for %d readings, %v", m.Number, len(texts), len(rs), err)
			} else if r, err := sensor.ParseLine([]byte(texts[0])); err != nil || !r.Time.Equal(rs[0].Time) {
				t.Errorf("ffmpeg's first text of fragment %d: %q", m.Number, texts[0])
			}
			checked++
		}
		inOrder = append(inOrder, rs...)
	}
	return inOrder, late, res.Fragments
}

func postSamples(t *testing.T, url, ctype, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+pushToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestSensorPush: readings pushed over HTTP, out of order within the
// window and late beyond it, land in grid-aligned fragments exactly once,
// the late ones flagged; bad readings get a clear 4xx and take nothing
// else down.
func TestSensorPush(t *testing.T) {
	testenv.RequireFFmpeg(t)
	a, store := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
		Timestamp: sensor.Timestamp{Field: "ts", Format: sensor.FormatMillis},
		Period:    edgeagent.Duration(time.Second), Window: edgeagent.Duration(3 * time.Second),
		MaxReadingSize: 1024,
	}})
	url := "http://" + a.Addr() + "/v1/streams/env/samples"
	start := time.Now().Truncate(time.Second)
	var body bytes.Buffer
	n := 0
	for i := 0; i < 2000; i++ {
		// 2000 readings over the last 2 s, each pair swapped
		j := i ^ 1
		ts := start.Add(-2*time.Second + time.Duration(j)*time.Millisecond)
		fmt.Fprintf(&body, `{"ts":%d,"n":%d,"temp":%.1f}`+"\n", ts.UnixMilli(), j, 20+float64(j%50)/10)
		n++
	}
	if code, res := postSamples(t, url, "application/x-ndjson", body.String()); code != http.StatusOK || !strings.Contains(strings.Join(strings.Fields(res), ""), `"accepted":2000`) {
		t.Fatalf("NDJSON: %d %s", code, res)
	}
	// a JSON array with late readings (a minute old) and bad ones
	old := start.Add(-time.Minute)
	arr := fmt.Sprintf(`[{"ts":%d,"n":-1},{"n":-2},{"ts":"soon","n":-3},{"ts":%d,"n":-4,"pad":"%s"},{"ts":%d,"n":-5}]`,
		old.UnixMilli(), start.UnixMilli(), strings.Repeat("x", 2000), old.Add(time.Millisecond).UnixMilli())
	code, res := postSamples(t, url, "application/json", arr)
	var ans struct {
		Accepted, Rejected int
		Errors             []struct {
			Index int
			Error string
		}
	}
	json.Unmarshal([]byte(res), &ans)
	if code != http.StatusBadRequest || ans.Accepted != 2 || ans.Rejected != 3 || len(ans.Errors) != 3 ||
		!strings.Contains(ans.Errors[0].Error, "no timestamp field") || !strings.Contains(ans.Errors[1].Error, "bad timestamp") ||
		!strings.Contains(ans.Errors[2].Error, "too large") {
		t.Errorf("array with bad readings: %d %s", code, res)
	}
	for _, c := range []struct{ name, ctype, body, want string }{
		{"malformed line", "application/x-ndjson", `{"ts":1795780800000,"n":`, "not JSON"},
		{"not an array", "application/json", `{"ts":1}`, "array of readings"},
		{"empty", "application/x-ndjson", "\n\n", "no readings"},
		{"wrong type", "image/png", "x", "Content-Type"},
	} {
		if code, res := postSamples(t, url, c.ctype, c.body); code/100 != 4 || !strings.Contains(res, c.want) {
			t.Errorf("%s: %d %s", c.name, code, res)
		}
	}
	if code, _ := postSamples(t, "http://"+a.Addr()+"/v1/streams/nosuch/samples", "application/x-ndjson", "{}"); code != http.StatusNotFound {
		t.Errorf("unknown stream: %d", code)
	}
	time.Sleep(3500 * time.Millisecond) // the window passes; fragments close
	st := streamStatus(a, "env")
	// the counters are metrics too
	if _, metrics := get(t, "http://"+a.Addr()+"/metrics"); !strings.Contains(metrics, `tributary_sensor_readings_total{outcome="rejected",stream="env"} 4`) ||
		!strings.Contains(metrics, `tributary_sensor_readings_total{outcome="late",stream="env"} 2`) {
		t.Errorf("sensor metrics missing: %s", grepLines(metrics, "tributary_sensor"))
	}
	// GET samples: the readings of a time range, in pages of 300
	got, pages := getSamples(t, a, "env", start.Add(-1500*time.Millisecond), start.Add(-500*time.Millisecond), 300)
	if len(got) != 1000 || pages != 4 {
		t.Errorf("GET samples: %d readings in %d pages, want 1000 in 4", len(got), pages)
	}
	for i := range got {
		if got[i].Time.Before(start.Add(-1500*time.Millisecond)) || !got[i].Time.Before(start.Add(-500*time.Millisecond)) ||
			(i > 0 && got[i].Time.Before(got[i-1].Time)) {
			t.Fatalf("GET samples: reading %d at %v", i, got[i].Time)
		}
	}
	all, _ := getSamples(t, a, "env", start.Add(-2*time.Minute), start.Add(time.Minute), 100000)
	if len(all) != 2002 {
		t.Errorf("GET samples of everything: %d readings, want 2002 (late ones included)", len(all))
	}
	a.Close()
	inOrder, late, frags := sensorReadings(t, store, "env")
	if len(inOrder) != 2000 || len(late) != 2 {
		t.Fatalf("%d readings in order, %d late, in %d fragments; status %+v", len(inOrder), len(late), len(frags), st.Sensor)
	}
	for i, r := range inOrder {
		var v struct{ N int }
		json.Unmarshal(r.Value, &v)
		if v.N != i {
			t.Fatalf("reading %d is n=%d", i, v.N)
		}
	}
	if !late[0].Late || late[0].Time.UnixMilli() != old.UnixMilli() {
		t.Errorf("late readings %+v", late)
	}
	if st.Sensor == nil || st.Sensor.Rejected != 4 || st.Sensor.Late != 2 || st.Sensor.ClockSkewMS == nil {
		t.Errorf("sensor status %+v", st.Sensor)
	}
	t.Logf("%d fragments; status %+v", len(frags), *st.Sensor)
}

// TestSensorMQTT: a publisher sends readings at 1 kHz (QoS 1) through
// mosquitto for 30 s (5 s with -short); the broker restarts in the middle.
// Every reading is archived exactly once, in order, in the fragment of its
// time: the agent resubscribes, and QoS 1 loses nothing.
func TestSensorMQTT(t *testing.T) {
	testenv.RequireFFmpeg(t)
	broker := testenv.StartMosquitto(t)
	run := 30 * time.Second
	if testing.Short() {
		run = 5 * time.Second
	}
	// an old retained value: the broker sends it on every subscription; it
	// is no reading of now and must not be stored
	ret := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("retainer"))
	if tok := ret.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("retainer: %v", tok.Error())
	}
	if tok := ret.Publish("plant/config/reading", 1, true, fmt.Sprintf(`{"ts":%d,"seq":-1}`, time.Now().UnixNano())); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("retained: %v", tok.Error())
	}
	ret.Disconnect(100)
	// two filters that overlap: each message is still taken once
	a, store := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "plant", Sensor: &edgeagent.SensorConfig{
		MQTT:      &edgeagent.MQTTConfig{Broker: broker.URL, Topics: []string{"plant/+/reading", "plant/#"}},
		Timestamp: sensor.Timestamp{Field: "ts"},
		Period:    edgeagent.Duration(time.Second), Window: edgeagent.Duration(5 * time.Second),
	}})
	deadline := time.Now().Add(10 * time.Second)
	for st := streamStatus(a, "plant"); st.Sensor == nil || st.Sensor.MQTTConnected == nil || !*st.Sensor.MQTTConnected; st = streamStatus(a, "plant") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not connect to the broker: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // its subscription

	o := mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("publisher").SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(time.Second)
	pub := mqtt.NewClient(o)
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	n := int(run / time.Millisecond)
	start := time.Now()
	type sent struct {
		topic, msg string
		tok        mqtt.Token
	}
	var backlog []sent
	resent := 0
	// flush sends what is kept, in order, while the broker takes it
	flush := func() {
		for len(backlog) > 0 && pub.IsConnectionOpen() {
			b := backlog[0]
			tok := pub.Publish(b.topic, 1, false, b.msg)
			if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
				resent++
				return // kept: sent again later
			}
			backlog = backlog[1:]
		}
	}
	restarted := false
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * time.Millisecond)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if !restarted && i >= n/2 {
			restarted = true
			broker.Stop()
			go func() { time.Sleep(500 * time.Millisecond); broker.Start() }()
		}
		msg := fmt.Sprintf(`{"ts":%d,"seq":%d,"celsius":%.2f}`, at.UnixNano(), i, 20+float64(i%1000)/100)
		topic := fmt.Sprintf("plant/line%d/reading", i%4)
		// each publish waits for the broker's acknowledgement; one that
		// fails (the broker went away under it), and those made while it is
		// away, are kept and sent again once it is back, as a device
		// would: the agent drops what arrives twice
		backlog = append(backlog, sent{topic: topic, msg: msg})
		flush()
	}
	for deadline := time.Now().Add(30 * time.Second); len(backlog) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d readings could not be published", len(backlog))
		}
		time.Sleep(50 * time.Millisecond)
		flush()
	}
	// the window passes; the last fragments close
	deadline = time.Now().Add(20 * time.Second)
	for st := streamStatus(a, "plant"); st.Sensor.Readings < uint64(n); st = streamStatus(a, "plant") {
		if time.Now().After(deadline) {
			t.Errorf("the agent took %d of %d readings: %+v", st.Sensor.Readings, n, *st.Sensor)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(6 * time.Second)
	st := streamStatus(a, "plant")
	a.Close()
	inOrder, late, frags := sensorReadings(t, store, "plant")
	seen := make([]int, n)
	for i, r := range inOrder {
		var v struct{ Seq int }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.Seq < 0 || v.Seq >= n {
			t.Fatalf("reading %d: %s", i, r.Value)
		}
		seen[v.Seq]++
		if !strings.HasPrefix(r.Topic, "plant/line") {
			t.Fatalf("topic %q", r.Topic)
		}
	}
	missing, twice := 0, 0
	var gaps []int
	for i, c := range seen {
		switch {
		case c == 0:
			if missing < 10 {
				gaps = append(gaps, i)
			}
			missing++
		case c > 1:
			twice++
		}
	}
	t.Logf("%d readings in %d fragments, %d late, %d sent again; status %+v", len(inOrder), len(frags), len(late), resent, *st.Sensor)
	if missing != 0 || twice != 0 || len(late) != 0 {
		t.Errorf("%d missing (the first: %v; the broker restarted at %d), %d stored twice, %d late", missing, gaps, n/2, twice, len(late))
	}
	// duplicates: the broker sends again what it had sent but not seen
	// acknowledged at its restart (a few, dropped); two deliveries per
	// message for the two filters would make thousands
	if st.Sensor.MQTTReconnects < 1 || st.Sensor.Retained < 1 || st.Sensor.Duplicates > 100 {
		t.Errorf("reconnects %d (want ≥ 1), retained skipped %d (want ≥ 1), duplicates %d (want a few at most: one delivery for two filters)",
			st.Sensor.MQTTReconnects, st.Sensor.Retained, st.Sensor.Duplicates)
	}
}

// getSamples pages through GET /v1/streams/{s}/samples.
func getSamples(t *testing.T, a *edgeagent.Agent, stream string, start, end time.Time, limit int) ([]sensor.Reading, int) {
	t.Helper()
	next := fmt.Sprintf("/v1/streams/%s/samples?start=%s&end=%s&limit=%d", stream, start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano), limit)
	var out []sensor.Reading
	pages := 0
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, "http://"+a.Addr()+next, nil)
		req.Header.Set("Authorization", "Bearer "+a.APIToken())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("GET samples: %d %s", res.StatusCode, b)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			r, err := sensor.ParseLine([]byte(l))
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			out = append(out, r)
		}
		pages++
		next = ""
		if link := res.Header.Get("Link"); link != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(link, ";")[0], "<"), ">")
		}
	}
	return out, pages
}

// TestSensorViewerChart: the viewer, showing a camera, charts the readings
// of the sensor stream linked to it under the timeline (headless
// Chromium; the page is read through the DevTools protocol).
func TestSensorViewerChart(t *testing.T) {
	testenv.RequireChromium(t)
	sim := oneCamera(t, "cam", "h264")
	a, _ := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "cam", URL: sim.URL("cam"), Transport: "tcp"},
		edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
			Timestamp: sensor.Timestamp{Field: "ts"}, Period: edgeagent.Duration(time.Second), Link: "cam",
		}})
	now := time.Now()
	var body strings.Builder
	for i := 0; i < 300; i++ {
		at := now.Add(-30*time.Second + time.Duration(i)*100*time.Millisecond)
		fmt.Fprintf(&body, `{"ts":%d,"celsius":%.2f,"motion":%t}`+"\n", at.UnixMilli(), 20+float64(i%50)/10, i%60 < 20)
	}
	if code, res := postSamples(t, "http://"+a.Addr()+"/v1/streams/env/samples", "application/x-ndjson", body.String()); code != http.StatusOK {
		t.Fatalf("push: %d %s", code, res)
	}
	deadline := time.Now().Add(20 * time.Second)
	for streamStatus(a, "cam").Counters.Fragments < 1 || streamStatus(a, "env").Counters.Fragments < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no fragments: cam %+v, env %+v", streamStatus(a, "cam").Counters, streamStatus(a, "env").Counters)
		}
		time.Sleep(100 * time.Millisecond)
	}
	done := make(chan struct{})
	close(done) // the page is left once the script saw the chart
	check := `(() => {
		const m = document.getElementById('sensor-msg');
		const c = document.getElementById('sensor-chart');
		if (!m || !/env: celsius, motion · \d+ points/.test(m.textContent) || c.clientWidth === 0) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
		return n > 500;
	})()`
	testenv.OpenPageAndRun(t, nil, "http://"+a.Addr()+"/#token="+a.APIToken()+"&stream=cam", 40*time.Second, done, check)
}

// TestGetMediaSensors: GetMedia of a camera with sensors=linked carries
// the linked sensor's readings as a data track, each in the fragment of
// its time, on the fragment's timeline; ffmpeg reads the stream.
func TestGetMediaSensors(t *testing.T) {
	testenv.RequireFFmpeg(t)
	sim := oneCamera(t, "cam", "h264")
	a, store := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "cam", URL: sim.URL("cam"), Transport: "tcp"},
		edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
			Timestamp: sensor.Timestamp{Field: "ts"}, Period: edgeagent.Duration(time.Second), Window: edgeagent.Duration(100 * time.Millisecond), Link: "cam",
		}},
		edgeagent.StreamConfig{Name: "vault", Sensor: &edgeagent.SensorConfig{}}) // linked to nothing
	// a push to a stream without a token is refused before anything is said of the stream
	req0, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/v1/streams/nosuch/samples", strings.NewReader("{}"))
	if res, err := http.DefaultClient.Do(req0); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("push without a token to an unknown stream: %v %v", res.Status, err)
	} else {
		res.Body.Close()
	}
	if code, _ := postSamples(t, "http://"+a.Addr()+"/v1/streams/vault/samples", "application/x-ndjson", `{"secret":"vault-only-value"}`); code != http.StatusOK {
		t.Fatalf("vault push: %d", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for streamStatus(a, "cam").Counters.Fragments < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("camera: %+v", streamStatus(a, "cam"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	first := streamStatus(a, "cam").LastFragment
	if first == nil {
		t.Fatal("no last fragment")
	}
	// readings every 50 ms over the camera's recorded time
	from, to := first.ProducerStart.Add(-4*time.Second), first.ProducerEnd
	var body strings.Builder
	n := 0
	for at := from; at.Before(to); at = at.Add(50 * time.Millisecond) {
		fmt.Fprintf(&body, `{"ts":%d,"n":%d}`+"\n", at.UnixMilli(), n)
		n++
	}
	if code, res := postSamples(t, "http://"+a.Addr()+"/v1/streams/env/samples", "application/x-ndjson", body.String()); code != http.StatusOK {
		t.Fatalf("push: %d %s", code, res)
	}
	// they are late (their window closed): they go out in late fragments,
	// at most one batch a period
	waitFor(t, 10*time.Second, "the readings archived", func() bool {
		got := 0
		_ = sensor.Each(context.Background(), store, archive.Layout{}, "env", from, to, nil, func(_ *fragment.Metadata, rs []sensor.Reading, _ error) error {
			got += len(rs)
			return nil
		})
		return got >= n
	})
	url := fmt.Sprintf("http://%s/v1/streams/cam/media?start=earliest&end=%s&sensors=linked", a.Addr(), to.UTC().Format(time.RFC3339Nano))
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+a.APIToken())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GetMedia: %d %s", res.StatusCode, stream)
	}
	r := fragment.NewMKVReader(bytes.NewReader(stream))
	readings, clusters := 0, 0
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		clusters++
		var data uint64
		for _, tr := range c.Tracks {
			if tr.CodecID == "S_TEXT/UTF8" && tr.Name == "env" { // named after its sensor stream
				data = tr.Number
			}
		}
		if data == 0 {
			t.Fatalf("cluster %d has no data track named env: %+v", clusters, c.Tracks)
		}
		// GetMedia keeps the stream's time monotonic, which may move a
		// fragment by a few ms: the readings move with its video
		ps, _ := strconv.ParseFloat(c.Tags[fragment.TagProducerTimestamp], 64)
		var shift time.Duration
		for _, f := range c.Frames {
			if f.Track != data {
				shift = time.Unix(0, f.Time).Sub(time.UnixMilli(int64(math.Round(ps * 1000))))
				break
			}
		}
		for _, f := range c.Frames {
			if f.Track != data {
				continue
			}
			rd, err := sensor.ParseLine(f.Data)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			// on the fragment's timeline: the block's time is the reading's
			if d := time.Unix(0, f.Time).Add(-shift).Sub(rd.Time); d > time.Millisecond || d < -time.Millisecond {
				t.Errorf("reading at %v carried at %v", rd.Time, time.Unix(0, f.Time))
			}
			readings++
		}
	}
	if clusters < 3 || readings < 40 {
		t.Errorf("%d fragments carried %d readings", clusters, readings)
	}
	if err := testenv.CheckMedia(context.Background(), stream); err != nil {
		t.Errorf("ffmpeg on GetMedia with a data track: %v", err)
	}
	// a session signed for cam reads the sensors linked to cam, not others
	sreq, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/v1/streams/cam/session", nil)
	sreq.Header.Set("Authorization", "Bearer "+a.APIToken())
	sres, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	var sess struct{ Query string }
	json.NewDecoder(sres.Body).Decode(&sess)
	sres.Body.Close()
	for _, c := range []struct {
		sensors string
		code    int
	}{{"env", http.StatusOK}, {"vault", http.StatusForbidden}, {"env,vault", http.StatusForbidden}} {
		u := fmt.Sprintf("http://%s/v1/streams/cam/media?start=earliest&end=%s&sensors=%s&%s", a.Addr(), first.ProducerEnd.UTC().Format(time.RFC3339Nano), c.sensors, sess.Query)
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.code || (c.code == http.StatusOK && bytes.Contains(b, []byte("vault-only-value"))) {
			t.Errorf("signed session, sensors=%s: %d (want %d)", c.sensors, res.StatusCode, c.code)
		}
	}
	t.Logf("%d fragments, %d readings of %d pushed", clusters, readings, n)
}

// TestWebhookReadings: a webhook with readings: [linked] gets, in each
// notice, the readings of the camera's linked sensor in the fragment's
// time range, once they are archived.
func TestWebhookReadings(t *testing.T) {
	sim := oneCamera(t, "cam", "h264")
	notices := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case notices <- b:
		default:
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer hook.Close()
	// a SageMaker-style model gets a signed URL of the readings and fetches them
	fetched := make(chan int, 16)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		env, ok := strings.CutPrefix(r.Header.Get(inference.HeaderReadings), "env=")
		if !ok {
			fetched <- -1
			w.Write([]byte(`{}`))
			return
		}
		res, err := http.Get(env)
		if err != nil || res.StatusCode != http.StatusOK {
			fetched <- -2
			w.Write([]byte(`{}`))
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		select {
		case fetched <- strings.Count(string(b), "\n"):
		default:
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer model.Close()
	a, _ := startPushAgent(t, func(c *edgeagent.Config) {
		c.Inference.Hooks = []inference.Hook{
			{Model: "notify", Kind: inference.KindWebhook, URL: hook.URL, Readings: []string{"linked"}, Streams: []string{"cam"}},
			{Model: "sm", Kind: inference.KindSageMaker, URL: model.URL, Readings: []string{"linked"}, Streams: []string{"cam"}},
		}
	}, edgeagent.StreamConfig{Name: "cam", URL: sim.URL("cam"), Transport: "tcp"},
		edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
			Timestamp: sensor.Timestamp{Field: "ts"}, Period: edgeagent.Duration(time.Second), Window: edgeagent.Duration(500 * time.Millisecond), Link: "cam",
		}})
	// a sensor at 20 Hz, pushed every 100 ms
	ctx, cancel := context.WithCancel(context.Background())
	pushed := pushReadings(ctx, a, "env", `{"ts":%d,"lux":1}`)
	defer func() { cancel(); <-pushed }()
	got := 0
	timeout := time.After(40 * time.Second)
	for got < 3 {
		select {
		case b := <-notices:
			var n struct {
				Fragment fragment.Metadata
				Readings map[string][]sensor.Reading
			}
			if err := json.Unmarshal(b, &n); err != nil {
				t.Fatalf("notice: %v: %s", err, b)
			}
			rs := n.Readings["env"]
			if n.Fragment.Stream != "cam" {
				t.Fatalf("notice for %s", n.Fragment.Stream)
			}
			d := n.Fragment.ProducerEnd.Sub(n.Fragment.ProducerStart)
			want := int(d / (50 * time.Millisecond))
			if n.Fragment.Number == 1 || n.Fragment.ProducerStart.Before(time.Now().Add(-time.Minute)) {
				continue // the first fragment began before the sensor
			}
			for _, r := range rs {
				if r.Time.Before(n.Fragment.ProducerStart) || !r.Time.Before(n.Fragment.ProducerEnd) {
					t.Errorf("fragment %d [%v, %v): reading at %v", n.Fragment.Number, n.Fragment.ProducerStart, n.Fragment.ProducerEnd, r.Time)
				}
			}
			if len(rs) < want-2 || len(rs) > want+2 {
				t.Errorf("fragment %d (%v): %d readings, want about %d", n.Fragment.Number, d, len(rs), want)
			}
			t.Logf("fragment %d (%v): %d readings", n.Fragment.Number, d.Round(time.Millisecond), len(rs))
			got++
		case <-timeout:
			t.Fatalf("%d notices with readings", got)
		}
	}
	// the SageMaker-style model read about 40 readings per 2 s fragment
	// through its signed URL (the first fragment began before the sensor)
	full := 0
	for full < 2 {
		select {
		case n := <-fetched:
			if n < 0 {
				t.Fatalf("the model got no readings URL (%d)", n)
			}
			if n >= 38 {
				full++
			}
		case <-timeout:
			t.Fatalf("the model fetched %d full fragments of readings", full)
		}
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSensorAlignedToCamera: a sensor stream with align_to: cam is cut
// where the camera's fragments end.
func TestSensorAlignedToCamera(t *testing.T) {
	sim := oneCamera(t, "cam", "h264")
	a, store := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "cam", URL: sim.URL("cam"), Transport: "tcp"},
		edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
			Timestamp: sensor.Timestamp{Field: "ts"}, Window: edgeagent.Duration(500 * time.Millisecond), AlignTo: "cam",
		}})
	stop := time.Now().Add(9 * time.Second)
	next := time.Now()
	for time.Now().Before(stop) {
		time.Sleep(100 * time.Millisecond)
		var body strings.Builder
		for ; next.Before(time.Now()); next = next.Add(50 * time.Millisecond) {
			fmt.Fprintf(&body, `{"ts":%d,"v":1}`+"\n", next.UnixMilli())
		}
		if code, res := postSamples(t, "http://"+a.Addr()+"/v1/streams/env/samples", "application/x-ndjson", body.String()); code != http.StatusOK {
			t.Fatalf("push: %d %s", code, res)
		}
	}
	time.Sleep(time.Second)
	a.Close()
	_, _, sensorFrags := sensorReadings(t, store, "env")
	camFrags, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{Stream: "cam", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int64]bool{}
	for _, m := range camFrags.Fragments {
		ends[m.ProducerEnd.UnixNano()] = true
	}
	aligned := 0
	for i, m := range sensorFrags {
		if ends[m.ProducerEnd.UnixNano()] {
			aligned++
		} else if i < len(sensorFrags)-1 { // the last is cut at the stop
			t.Errorf("sensor fragment %d ends at %v, not at a camera fragment's end", m.Number, m.ProducerEnd)
		}
	}
	if aligned < 3 {
		t.Errorf("%d sensor fragments aligned to %d camera fragments", aligned, len(camFrags.Fragments))
	}
	t.Logf("%d of %d sensor fragments end where a camera fragment does", aligned, len(sensorFrags))
}

// TestGetMediaSensorsLive: tailing GetMedia with sensors=linked, each
// fragment carries its sensor readings although they are archived a
// window after the fragment lands: GetMedia waits for them.
func TestGetMediaSensorsLive(t *testing.T) {
	sim := oneCamera(t, "cam", "h264")
	a, _ := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "cam", URL: sim.URL("cam"), Transport: "tcp"},
		edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
			Timestamp: sensor.Timestamp{Field: "ts"}, Period: edgeagent.Duration(time.Second), Window: edgeagent.Duration(time.Second), Link: "cam",
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pushed := pushReadings(ctx, a, "env", `{"ts":%d,"v":2}`)
	defer func() { cancel(); <-pushed }()
	time.Sleep(2 * time.Second) // the sensor has begun
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Addr()+"/v1/streams/cam/media?start=now&sensors=linked", nil)
	req.Header.Set("Authorization", "Bearer "+a.APIToken())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := fragment.NewMKVReader(res.Body)
	for got := 0; got < 3; {
		c, err := r.Next()
		if err != nil {
			t.Fatalf("after %d fragments: %v", got, err)
		}
		var data uint64
		for _, tr := range c.Tracks {
			if tr.CodecID == "S_TEXT/UTF8" {
				data = tr.Number
			}
		}
		n := 0
		var first, last int64
		for _, f := range c.Frames {
			if f.Track == data {
				n++
			} else {
				if first == 0 {
					first = f.Time
				}
				last = f.Time
			}
		}
		want := int(time.Duration(last-first) / (50 * time.Millisecond))
		t.Logf("fragment %s: %d readings for %v of video", c.Tags[fragment.TagFragmentNumber], n, time.Duration(last-first))
		if n < want-2 {
			t.Errorf("fragment %s: %d readings, want about %d", c.Tags[fragment.TagFragmentNumber], n, want)
		}
		got++
	}
}

// pushReadings pushes a reading every 50 ms (format gets its time in Unix
// ms), in a POST every 100 ms, until ctx ends; the channel closes then.
func pushReadings(ctx context.Context, a *edgeagent.Agent, stream, format string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := time.Now()
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			var body strings.Builder
			for ; next.Before(time.Now()); next = next.Add(50 * time.Millisecond) {
				fmt.Fprintf(&body, format+"\n", next.UnixMilli())
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.Addr()+"/v1/streams/"+stream+"/samples", strings.NewReader(body.String()))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Authorization", "Bearer "+pushToken)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
	}()
	return done
}

// TestSensorMQTTTLS: the broker wants TLS (a CA of the test's) and a user
// and password; the agent connects with ca_file and credentials and takes
// every reading. With a wrong password it stays disconnected and says so.
func TestSensorMQTTTLS(t *testing.T) {
	broker := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true, User: "sensor", Password: "s3cret-pw"})
	cfg := func(pw string) *edgeagent.SensorConfig {
		return &edgeagent.SensorConfig{
			MQTT:      &edgeagent.MQTTConfig{Broker: broker.URL, Topics: []string{"lab/#"}, CAFile: broker.CAFile, Username: "sensor", Password: pw},
			Timestamp: sensor.Timestamp{Field: "ts"}, Period: edgeagent.Duration(time.Second), Window: edgeagent.Duration(500 * time.Millisecond),
		}
	}
	a, store := startPushAgent(t, nil, edgeagent.StreamConfig{Name: "lab", Sensor: cfg("s3cret-pw")},
		edgeagent.StreamConfig{Name: "wrong", Sensor: cfg("not-it")})
	deadline := time.Now().Add(10 * time.Second)
	for st := streamStatus(a, "lab"); st.Sensor == nil || st.Sensor.MQTTConnected == nil || !*st.Sensor.MQTTConnected; st = streamStatus(a, "lab") {
		if time.Now().After(deadline) {
			t.Fatalf("no TLS connection: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	tc := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	ca, _ := os.ReadFile(broker.CAFile)
	tc.RootCAs.AppendCertsFromPEM(ca)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("tls-pub").SetTLSConfig(tc).SetUsername("sensor").SetPassword("s3cret-pw"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	for i := 0; i < 100; i++ {
		tok := pub.Publish("lab/bench", 1, false, fmt.Sprintf(`{"ts":%d,"i":%d}`, time.Now().UnixNano(), i))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	time.Sleep(2500 * time.Millisecond)
	wrong := streamStatus(a, "wrong")
	a.Close()
	inOrder, _, _ := sensorReadings(t, store, "lab")
	if len(inOrder) != 100 {
		t.Errorf("%d of 100 readings over TLS", len(inOrder))
	}
	if wrong.Sensor == nil || wrong.Sensor.MQTTConnected == nil || *wrong.Sensor.MQTTConnected {
		t.Errorf("a wrong password connected: %+v", wrong.Sensor)
	}
}
