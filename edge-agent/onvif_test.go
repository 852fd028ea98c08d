package edgeagent_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/testenv"
)

var utcTimeRE = regexp.MustCompile(`<tt:Frame UtcTime="([^"]+)"`)

// TestONVIFMetadata pulls a camera that sends an ONVIF metadata track (an
// analytics frame a second, motion events, each sent 600 ms after the
// video of its time) with onvif_metadata on, and the
// same camera without it. With it, every fragment is MKV with the
// documents as a text track, each in the fragment whose time holds it,
// none lost or repeated; the MKV reader and ffmpeg read them; the video
// passes ffmpeg's strict decode; HLS, the live edge and clips serve the
// audio and video alone, and GetMedia carries the track. Without it, the
// track is named among the ignored and the stream stays fMP4.
func TestONVIFMetadata(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	cam := camsim.Presets(repoTestdata(t))["h264_aac"]
	// its analytics 600 ms behind its video, as cameras' are
	cam.Name, cam.ONVIF, cam.ONVIFLag = "door", true, 600*time.Millisecond
	sim := &camsim.Server{Addr: "127.0.0.1:0", Cameras: []camsim.Camera{cam}, TCPOnly: true, Logger: testLogger(t)}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	a, store := startAgent(t,
		edgeagent.StreamConfig{Name: "door", URL: sim.URL("door"), Transport: "tcp", ONVIFMetadata: true},
		edgeagent.StreamConfig{Name: "plain", URL: sim.URL("door"), Transport: "tcp"})
	base := "http://" + a.Addr()
	waitFor(t, 20*time.Second, "5 fragments", func() bool { return statusOf(a, "door").Counters.Fragments >= 5 })

	st := statusOf(a, "door")
	if !slices.Equal(st.Tracks, []string{"1:H264 640x360", "2:AAC 48000Hz/1ch", "3:ONVIF"}) || len(st.Ignored) != 0 {
		t.Errorf("door: tracks %q, ignored %q", st.Tracks, st.Ignored)
	}
	if st.Counters.DecodeErrors != 0 {
		t.Errorf("door: counters %+v", st.Counters)
	}
	if st := statusOf(a, "plain"); !slices.Equal(st.Ignored, []string{"vnd.onvif.metadata/90000"}) || len(st.Tracks) != 2 {
		t.Errorf("plain: tracks %q, ignored %q", st.Tracks, st.Ignored)
	}

	// the live edge: fMP4 parts of the audio and video
	llInit, llPart := liveEdge(t, a, "door")
	if tracks, err := fragment.ParseInit(llInit); err != nil || len(tracks) != 2 {
		t.Errorf("live edge init: %v %v", tracks, err)
	}
	if err := testenv.CheckMedia(context.Background(), llInit, llPart); err != nil {
		t.Errorf("live edge part: %v", err)
	}

	ctx := context.Background()
	res, err := archive.ListFragments(ctx, store, archive.Layout{}, archive.ListRequest{Stream: "door", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	frags := res.Fragments
	if len(frags) < 5 {
		t.Fatalf("%d fragments", len(frags))
	}
	verifyMKV(t, store, "door", 5)
	var last time.Time
	docs, motion := 0, 0
	var slew time.Duration
	if cc := statusOf(a, "door").ClockChange; cc != nil {
		slew = (time.Duration(cc.DiffMS) * time.Millisecond).Abs()
	}
	for i, m := range frags {
		data := readObject(t, store, m.Key)
		ff := onvifFragments(t, data)
		if len(ff) != 1 {
			t.Fatalf("fragment %d: %d clusters", m.Number, len(ff))
		}
		f := ff[0]
		lead := f.Samples[0][0].DTS
		durTicks := int64(m.Duration / (time.Second / 90000))
		// producer time slews (a switch of clock, sender reports that
		// move under load): by this much within the fragment
		fragSlew := (m.Duration - m.ProducerEnd.Sub(m.ProducerStart)).Abs()
		var firstAt time.Time
		var firstDTS int64
		var texts []string
		for j, s := range f.Samples[2] {
			doc := string(s.Payload)
			texts = append(texts, doc)
			sm := utcTimeRE.FindStringSubmatch(doc)
			if sm == nil {
				t.Fatalf("fragment %d: a document without a frame: %.200s", m.Number, doc)
			}
			at, err := time.Parse(time.RFC3339Nano, sm[1])
			if err != nil {
				t.Fatal(err)
			}
			// it lies in its fragment's time (an instant at the cut may
			// fall either side of it by a tick)
			if off := s.DTS - lead; off < 0 || off > durTicks {
				t.Errorf("fragment %d of %d ticks holds a document at %d", m.Number, durTicks, off)
			}
			// at the camera's time of it, as it stamped the document
			// (RTCP), not 600 ms later, when it came: up to how producer
			// time slewed
			carried := m.ProducerStart.Add(time.Duration(s.DTS-lead) * time.Second / 90000)
			if d := carried.Sub(at).Abs(); d > 20*time.Millisecond+slew+fragSlew {
				t.Errorf("fragment %d: the document of %v is at %v", m.Number, at, carried)
			}
			// and exactly: the documents of a fragment are as far apart as
			// their stamps (arrival would add the reads' 40 ms jitter)
			if j == 0 {
				firstAt, firstDTS = at, s.DTS
			} else if d := time.Duration(s.DTS-firstDTS)*time.Second/90000 - at.Sub(firstAt); d.Abs() > 2*time.Millisecond {
				t.Errorf("fragment %d: documents %v apart are %v apart in the track", m.Number, at.Sub(firstAt), at.Sub(firstAt)+d)
			}
			// one a second, none lost or repeated, across fragments
			if !last.IsZero() && at.Sub(last) != camsim.ONVIFPeriod {
				t.Errorf("fragment %d: a document of %v after one of %v", m.Number, at, last)
			}
			last = at
			docs++
			if strings.Contains(doc, `Name="IsMotion" Value="true"`) {
				motion++
			}
		}
		if i < 2 { // ffmpeg reads the same documents
			got, err := testenv.DataPackets(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, texts) {
				t.Errorf("fragment %d: ffmpeg read %d documents, the MKV reader %d", m.Number, len(got), len(texts))
			}
		}
	}
	span := frags[len(frags)-1].ProducerEnd.Sub(frags[0].ProducerStart)
	t.Logf("%d fragments over %v carried %d documents, %d motion events; clock switch %v", len(frags), span, docs, motion, slew)
	if docs < int(span/time.Second)-1 || motion == 0 {
		t.Errorf("%d documents (%d motion events) over %v", docs, motion, span)
	}

	// HLS: the MKV fragments remuxed to fMP4 of the audio and video, with
	// the init segment the agent stored for them
	start := frags[0].ProducerStart.UTC().Format(time.RFC3339Nano)
	pl := getAuthed(t, a, base+"/v1/streams/door/hls/media.m3u8?mode=on_demand&start="+start)
	mapURI := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(pl)
	segs := regexp.MustCompile(`(?m)^f/[^\n]+$`).FindAllString(pl, -1)
	if mapURI == nil || len(segs) < 4 {
		t.Fatalf("playlist:\n%s", pl)
	}
	init := []byte(getAuthed(t, a, base+"/v1/streams/door/hls/"+mapURI[1]))
	if tracks, err := fragment.ParseInit(init); err != nil || len(tracks) != 2 {
		t.Errorf("HLS init: %v %v", tracks, err)
	}
	parts := [][]byte{init}
	for _, s := range segs[:3] {
		parts = append(parts, []byte(getAuthed(t, a, base+"/v1/streams/door/hls/"+s)))
	}
	if err := testenv.CheckMedia(ctx, parts...); err != nil {
		t.Errorf("HLS segments: %v", err)
	}
	// a clip: MP4 of the audio and video
	end := frags[2].ProducerEnd.UTC().Format(time.RFC3339Nano)
	clip := getAuthed(t, a, base+"/v1/streams/door/clip.mp4?start="+start+"&end="+end)
	if err := testenv.CheckMedia(ctx, []byte(clip)); err != nil {
		t.Errorf("clip: %v", err)
	}
	// GetMedia: one MKV stream with the metadata track
	gm := []byte(getAuthed(t, a, base+"/v1/streams/door/media?start=producer:"+start+"&end="+end))
	gmDocs := 0
	for _, f := range onvifFragments(t, gm) {
		gmDocs += len(f.Samples[2])
	}
	t.Logf("GetMedia carried %d documents", gmDocs)
	if gmDocs < 4 {
		t.Errorf("GetMedia carried %d documents", gmDocs)
	}
	if err := testenv.CheckMedia(ctx, gm); err != nil {
		t.Errorf("GetMedia: %v", err)
	}
	// the stream without the option is fMP4 of audio and video
	if res, err := archive.ListFragments(ctx, store, archive.Layout{}, archive.ListRequest{Stream: "plain", Limit: 10}); err != nil || len(res.Fragments) == 0 ||
		res.Fragments[0].Container != fragment.ContainerFMP4 {
		t.Errorf("plain: %v %+v", err, res)
	}
}

// onvifFragments reads the fragments (clusters) of MKV bytes, each with
// the video, audio and ONVIF metadata tracks of the test's camera.
func onvifFragments(t *testing.T, mkv []byte) []*fragment.Fragment {
	t.Helper()
	var out []*fragment.Fragment
	r := fragment.NewMKVReader(bytes.NewReader(mkv))
	for {
		c, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Fragment()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.TrackConfigs) != 3 || f.TrackConfigs[2].Codec != fragment.CodecONVIF {
			t.Fatalf("cluster %d: tracks %v", len(out), f.TrackConfigs)
		}
		out = append(out, f)
	}
}

// getAuthed GETs a URL of the agent's API with its token and returns the
// body of a 200.
func getAuthed(t *testing.T, a *edgeagent.Agent, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+a.APIToken())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return string(b)
}

// liveEdge reads a stream's low-latency HLS playlist (which starts the
// live edge) and returns its init segment and first part.
func liveEdge(t *testing.T, a *edgeagent.Agent, stream string) (init, part []byte) {
	t.Helper()
	plURL, _ := url.Parse("http://" + a.Addr() + "/v1/streams/" + stream + "/hls/ll.m3u8")
	pl := getAuthed(t, a, plURL.String())
	mapURI := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(pl)
	partURI := regexp.MustCompile(`#EXT-X-PART:[^\n]*URI="([^"]+)"`).FindStringSubmatch(pl)
	if mapURI == nil || partURI == nil {
		t.Fatalf("low-latency playlist:\n%s", pl)
	}
	ref := func(u string) string {
		r, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return plURL.ResolveReference(r).String()
	}
	return []byte(getAuthed(t, a, ref(mapURI[1]))), []byte(getAuthed(t, a, ref(partURI[1])))
}
