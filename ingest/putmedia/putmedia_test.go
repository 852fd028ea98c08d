package putmedia

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTarget records what a session feeds it.
type fakeTarget struct {
	mu       sync.Mutex
	sessions int
	samples  int
	ended    []error
	done     chan struct{}
	acks     func(Ack)
}

func (f *fakeTarget) StartSession(ingest.Session) { f.mu.Lock(); f.sessions++; f.mu.Unlock() }
func (f *fakeTarget) WriteSample(int, fragment.Sample) {
	f.mu.Lock()
	f.samples++
	f.mu.Unlock()
}
func (f *fakeTarget) UpdateTracks([]fragment.Track)                    {}
func (f *fakeTarget) ClockChanged(string, string, time.Duration, bool) {}
func (f *fakeTarget) EndSession(err error) {
	f.mu.Lock()
	f.ended = append(f.ended, err)
	f.mu.Unlock()
}
func (f *fakeTarget) CutAtNextKeyframe()    {}
func (f *fakeTarget) SetAcks(a func(Ack))   { f.mu.Lock(); f.acks = a; f.mu.Unlock() }
func (f *fakeTarget) Release()              {}
func (f *fakeTarget) Done() <-chan struct{} { return f.done }

type fakeTargets struct {
	t   *fakeTarget
	err error
}

func (f fakeTargets) Acquire(context.Context, string) (Target, error) { return f.t, f.err }

func serve(t testing.TB, h *Handler, body []byte, header map[string]string) (int, []Ack) {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/streams/{stream}/putmedia", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/streams/cam/putmedia", bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var acks []Ack
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var a Ack
		if json.Unmarshal(sc.Bytes(), &a) == nil {
			acks = append(acks, a)
		}
	}
	return res.StatusCode, acks
}

// mkvOf writes n one-second fragments of an Opus track as one MKV stream.
func mkvOf(t testing.TB, n int, start time.Time) []byte {
	tr := []fragment.Track{{ID: 1, Kind: fragment.KindAudio, Codec: fragment.CodecOpus, TimeScale: 48000, SampleRate: 48000, Channels: 1}}
	var out []byte
	var w fragment.MKVWriter
	for i := 0; i < n; i++ {
		f := &fragment.Fragment{TrackConfigs: tr, Samples: [][]fragment.Sample{nil}}
		for j := 0; j < 50; j++ {
			f.Samples[0] = append(f.Samples[0], fragment.Sample{DTS: int64(i*50+j) * 960, Duration: 960, Keyframe: true, Payload: []byte{0xfc, 1, 2}})
		}
		f.Number = uint64(i + 1)
		f.ProducerStart = start.Add(time.Duration(i) * time.Second)
		f.InitHash = fragment.ConfigHash(tr)
		b, err := w.Append(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func TestHandler(t *testing.T) {
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		body    []byte
		header  map[string]string
		targets Targets
		status  int
		want    string // an ack event or error code expected
	}{
		{"good", mkvOf(t, 3, start), nil, nil, 200, EventBuffering},
		{"garbage", []byte("garbage garbage"), nil, nil, 200, CodeInvalidMKV.Name},
		{"truncated", mkvOf(t, 1, start)[:300], nil, nil, 200, CodeStreamRead.Name},
		{"busy", nil, nil, fakeTargets{err: ErrBusy}, 409, ""},
		{"not pushable", nil, nil, fakeTargets{err: ErrNotPushable}, 409, ""},
		{"unknown", nil, nil, fakeTargets{err: ErrUnknownStream}, 404, ""},
		{"bad timecode type", nil, map[string]string{"X-Amzn-Fragment-Timecode-Type": "x"}, nil, 400, ""},
		{"bad producer time", nil, map[string]string{"X-Amzn-Producer-Start-Timestamp": "yesterday"}, nil, 400, ""},
		{"negative producer time", nil, map[string]string{"X-Amzn-Producer-Start-Timestamp": "-5"}, nil, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTarget{done: make(chan struct{})}
			targets := tc.targets
			if targets == nil {
				targets = fakeTargets{t: ft}
			}
			h := &Handler{Targets: targets, IdleInterval: 50 * time.Millisecond, PersistWait: 10 * time.Millisecond}
			status, acks := serve(t, h, tc.body, tc.header)
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if tc.want == "" {
				return
			}
			found := false
			for _, a := range acks {
				found = found || a.EventType == tc.want || a.ErrorCode == tc.want
			}
			if !found {
				t.Errorf("acks %+v, want %s", acks, tc.want)
			}
			if tc.name == "good" && (ft.samples != 150 || ft.sessions != 1) {
				t.Errorf("target got %d samples in %d sessions", ft.samples, ft.sessions)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	ft := &fakeTarget{done: make(chan struct{})}
	h := &Handler{Targets: fakeTargets{t: ft}, Authorize: func(r *http.Request, s string) error {
		if r.Header.Get("Authorization") != "Bearer ok" {
			return ErrUnauthorized
		}
		return nil
	}, PersistWait: time.Millisecond}
	if status, _ := serve(t, h, nil, nil); status != 401 {
		t.Errorf("no token: %d", status)
	}
	if status, _ := serve(t, h, mkvOf(t, 1, time.Unix(1e9, 0)), map[string]string{"Authorization": "Bearer ok"}); status != 200 {
		t.Errorf("token: %d", status)
	}
}

func TestRateReader(t *testing.T) {
	var total atomicCounter
	r := &rateReader{r: bytes.NewReader(make([]byte, 1<<20)), limit: 100 << 10, burst: time.Second, total: &total.v}
	_, err := io.Copy(io.Discard, r)
	if !errors.Is(err, errRate) {
		t.Errorf("1 MiB at once under a 100 KiB/s limit: %v", err)
	}
	r = &rateReader{r: bytes.NewReader(make([]byte, 50<<10)), limit: 100 << 10, burst: time.Second, total: &total.v}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Errorf("50 KiB within the burst: %v", err)
	}
}

func TestAckJSON(t *testing.T) {
	m := fragment.Metadata{Number: 42, ProducerStart: time.UnixMilli(1795748400123)}
	b, _ := json.Marshal(FragmentAck(EventPersisted, m))
	if string(b) != `{"EventType":"PERSISTED","FragmentTimecode":1795748400123,"FragmentNumber":"42"}` {
		t.Errorf("%s", b)
	}
	b, _ = json.Marshal(ErrorAck(CodeTimecodeLower, 5, "back in time"))
	if !strings.Contains(string(b), `"ErrorId":4004,"ErrorCode":"FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"`) {
		t.Errorf("%s", b)
	}
}

// FuzzHandler pushes arbitrary bodies and header values: a clear answer,
// never a panic or a hang.
func FuzzHandler(f *testing.F) {
	f.Add(mkvOf(f, 2, time.Unix(1e9, 0)), "ABSOLUTE", "1700000000.5")
	f.Add([]byte("garbage"), "RELATIVE", "0")
	f.Add(mkvOf(f, 1, time.Unix(0, 0))[:100], "", "")
	f.Fuzz(func(t *testing.T, body []byte, tcType, producer string) {
		ft := &fakeTarget{done: make(chan struct{})}
		h := &Handler{Targets: fakeTargets{t: ft}, IdleInterval: time.Second, PersistWait: time.Millisecond}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/streams/cam/putmedia", bytes.NewReader(body))
		req.SetPathValue("stream", "cam")
		if tcType != "" && !strings.ContainsAny(tcType, "\r\n") {
			req.Header.Set("X-Amzn-Fragment-Timecode-Type", tcType)
		}
		if producer != "" && !strings.ContainsAny(producer, "\r\n") {
			req.Header.Set("X-Amzn-Producer-Start-Timestamp", producer)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

type atomicCounter struct{ v atomic.Uint64 }
