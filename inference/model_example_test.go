package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

func TestExampleModel(t *testing.T) {
	srv := httptest.NewServer(&ExampleModel{})
	defer srv.Close()
	post := func(ctype string, body []byte) (*http.Response, ExampleAnswer) {
		resp, err := http.Post(srv.URL+"/invocations", ctype, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a ExampleAnswer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp, a
	}
	if resp, err := http.Get(srv.URL + "/ping"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("ping: %v %v", resp, err)
	}

	in := syntheticInput(t, "cam", 1, time.Unix(1_700_000_000, 0), 2000, 300, 300, 600)
	body, ctype, err := Payload(context.Background(), PayloadFragment, in)
	if err != nil {
		t.Fatal(err)
	}
	resp, a := post(ctype, body)
	want := (1200.0 / 3) / 2000
	if resp.StatusCode != 200 || a.Frames != 4 || len(a.Keyframes) != 1 || a.Keyframes[0] != 0 ||
		a.FrameBytes[0] != 2000 || math.Abs(a.Activity-want) > 1e-9 {
		t.Fatalf("fMP4: %d %+v, want activity %v", resp.StatusCode, a, want)
	}

	mkv, err := fragment.FMP4ToMKV(in.Init, in.Data, in.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := post("video/x-matroska", mkv); resp.StatusCode != 200 || b.Frames != 4 || b.Activity != a.Activity {
		t.Fatalf("MKV: %d %+v", resp.StatusCode, b)
	}
	kf, ctype, err := Payload(context.Background(), PayloadKeyframe, in)
	if err != nil || ctype != "video/h264" || !bytes.HasPrefix(kf, []byte{0, 0, 0, 1, 0x67}) {
		t.Fatalf("keyframe payload %q %x, %v", ctype, kf[:min(len(kf), 8)], err)
	}
	if resp, b := post(ctype, kf); resp.StatusCode != 200 || b.Frames != 1 {
		t.Fatalf("keyframe: %d %+v", resp.StatusCode, b)
	}
	if resp, _ := post("image/png", []byte{1}); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("png: %d", resp.StatusCode)
	}
	if resp, _ := post("video/mp4", []byte("garbage")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage: %d", resp.StatusCode)
	}
	if resp, err := http.Get(srv.URL + "/invocations"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /invocations: %v %v", resp, err)
	}
}

// TestJPEGPayload decodes a real keyframe with ffmpeg.
func TestJPEGPayload(t *testing.T) {
	in := clipInput(t, "cam", 1, time.Unix(1_700_000_000, 0))
	img, ctype, err := Payload(context.Background(), PayloadJPEG, in)
	if err != nil || ctype != "image/jpeg" || !bytes.HasPrefix(img, []byte{0xff, 0xd8}) {
		t.Fatalf("jpeg: %q %d bytes, %v", ctype, len(img), err)
	}
	a, err := (&ExampleModel{}).Analyze("video/mp4", append(append([]byte{}, in.Init...), in.Data...))
	if err != nil || a.Frames != 10 || len(a.Keyframes) != 1 || a.Activity <= 0 || a.Activity > 1 || a.Kbps <= 0 {
		t.Fatalf("real clip: %+v, %v", a, err)
	}
}
