package inference

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

func TestHookValidate(t *testing.T) {
	ok := func() Hook { return Hook{Model: "m1", Kind: KindSageMaker, URL: "http://127.0.0.1:8080"} }
	cases := []struct {
		name string
		edit func(*Hook)
		key  string // named by the error; "" for a valid hook
	}{
		{"valid", func(*Hook) {}, ""},
		{"no model", func(h *Hook) { h.Model = "" }, "model"},
		{"bad model", func(h *Hook) { h.Model = "../x" }, "model"},
		{"no kind", func(h *Hook) { h.Kind = "" }, "kind"},
		{"unknown kind", func(h *Hook) { h.Kind = "lambda" }, "kind"},
		{"no url", func(h *Hook) { h.URL = "" }, "url"},
		{"bad url", func(h *Hook) { h.URL = "ftp://x/y" }, "url"},
		{"relative url", func(h *Hook) { h.URL = "/invocations" }, "url"},
		{"bad stream", func(h *Hook) { h.Streams = []string{"ok", "a/b"} }, "streams[1]"},
		{"bad payload", func(h *Hook) { h.Payload = "gif" }, "payload"},
		{"webhook keyframe", func(h *Hook) { h.Kind, h.Payload = KindWebhook, PayloadKeyframe }, "payload"},
		{"webhook from the archive", func(h *Hook) { h.Kind, h.Placement = KindWebhook, PlacementArchive }, "placement"},
		{"every negative", func(h *Hook) { h.Every = -2 }, "every"},
		{"every huge", func(h *Hook) { h.Every = 2_000_000 }, "every"},
		{"interval negative", func(h *Hook) { h.MinInterval = -time.Second }, "min_interval"},
		{"timeout tiny", func(h *Hook) { h.Timeout = time.Millisecond }, "timeout"},
		{"retries", func(h *Hook) { h.Retries = 101 }, "retries"},
		{"concurrency", func(h *Hook) { h.Concurrency = -1 }, "concurrency"},
		{"max result", func(h *Hook) { h.MaxResult = 1 << 30 }, "max_result"},
		{"header injection", func(h *Hook) { h.Headers = map[string]string{"X-A": "b\r\nX-Evil: 1"} }, "headers"},
		{"attributes newline", func(h *Hook) { h.CustomAttributes = "a\nb" }, "custom_attributes"},
		{"sigv4 no region", func(h *Hook) { h.URL = "https://runtime.example/endpoints/e/invocations"; h.SigV4 = &SigV4Config{} }, "sigv4.region"},
		{"sigv4 over http", func(h *Hook) { h.SigV4 = &SigV4Config{Region: "eu-west-1"} }, "url"},
		{"sigv4 webhook", func(h *Hook) { h.Kind = KindWebhook; h.SigV4 = &SigV4Config{Region: "eu-west-1"} }, "sigv4"},
	}
	for _, c := range cases {
		h := ok()
		c.edit(&h)
		err := h.Validate("inference.hooks[3]")
		switch {
		case c.key == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.key != "" && (err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "inference.hooks[3]."+c.key+":")):
			t.Errorf("%s: error %v does not name %s", c.name, err, c.key)
		}
	}
	h := ok()
	if err := h.Validate("h"); err != nil || h.Payload != PayloadFragment || h.Every != 1 || h.Timeout != DefaultTimeout ||
		h.Retries != DefaultRetries || h.Concurrency != DefaultConcurrency || h.InvokeURL() != "http://127.0.0.1:8080/invocations" {
		t.Fatalf("defaults: %+v, %v", h, err)
	}
	h.URL = "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/cams/invocations"
	if h.InvokeURL() != h.URL {
		t.Errorf("full URL rewritten: %s", h.InvokeURL())
	}
}

func TestSamples(t *testing.T) {
	base := time.Unix(1_700_000_000, 0) // a multiple of 10 s
	cases := []struct {
		name     string
		every    int
		interval time.Duration
		want     string // x: taken, for fragments 0… of 2 s each from base
	}{
		{"all", 1, 0, "xxxxxxxx"},
		{"every 3rd", 3, 0, "x..x..x."},
		{"one per 5s", 1, 5 * time.Second, "x.x..x.x"},
		{"one per 10s", 1, 10 * time.Second, "x....x.."},
		{"both", 2, 10 * time.Second, "x.........x"},
	}
	for _, c := range cases {
		h := Hook{Every: c.every, MinInterval: c.interval}
		var got strings.Builder
		for i := range len(c.want) {
			m := fragment.Metadata{Number: uint64(i), ProducerStart: base.Add(time.Duration(i) * 2 * time.Second)}
			m.ProducerEnd = m.ProducerStart.Add(2 * time.Second)
			if h.Samples(&m) {
				got.WriteByte('x')
			} else {
				got.WriteByte('.')
			}
		}
		if got.String() != c.want {
			t.Errorf("%s: %s, want %s", c.name, got.String(), c.want)
		}
	}
}

// TestSigV4 checks the signer against AWS's published test suite.
func TestSigV4(t *testing.T) {
	s := &signer{region: "us-east-1", service: "service", accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, c := range []struct{ url, sig string }{
		{"https://example.amazonaws.com/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"https://example.amazonaws.com/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	} {
		u, _ := url.Parse(c.url)
		req := &http.Request{Method: "GET", URL: u, Host: u.Host, Header: http.Header{}}
		s.sign(req, empty, now)
		want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + c.sig
		if got := req.Header.Get("Authorization"); got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.url, got, want)
		}
	}
}
