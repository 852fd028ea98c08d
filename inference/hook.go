package inference

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Hook kinds.
const (
	// KindSageMaker POSTs the payload to a SageMaker-compatible endpoint.
	KindSageMaker = "sagemaker"
	// KindWebhook POSTs a JSON notice with the fragment's metadata and a
	// signed URL to fetch it.
	KindWebhook = "webhook"
)

// Payloads.
const (
	// PayloadFragment is the fragment as stored: fMP4 (init segment +
	// fragment, video/mp4) or MKV (video/x-matroska).
	PayloadFragment = "fragment"
	// PayloadKeyframe is the fragment's first keyframe as an Annex-B
	// access unit with its parameter sets (video/h264, video/h265).
	PayloadKeyframe = "keyframe"
	// PayloadJPEG is the fragment's first keyframe decoded to a JPEG by
	// ffmpeg (image/jpeg).
	PayloadJPEG = "jpeg"
)

// MaxPayload is SageMaker's limit on a real-time invocation's body:
// 6 MiB. Larger payloads fail with ErrPayloadTooLarge, without a request.
const MaxPayload = 6 << 20

// Defaults of Hook's fields.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultRetries     = 4
	DefaultConcurrency = 4
	DefaultMaxResult   = 1 << 20
)

// ErrConfig is wrapped by every configuration error; the message names the
// key.
var ErrConfig = errors.New("invalid hook")

// Hook sends fragments of some streams to one model endpoint.
type Hook struct {
	// Model names the model; results are stored under it. Required, a
	// stream-name-like identifier.
	Model string `yaml:"model" json:"model"`
	// Kind is "sagemaker" or "webhook". Required.
	Kind string `yaml:"kind" json:"kind"`
	// Placement is "edge" (default: the agent runs the hook as fragments
	// close) or "archive" (`tributary consume` runs it from the archive,
	// in order, with checkpoints).
	Placement string `yaml:"placement" json:"placement,omitempty"`
	// URL of the endpoint. For sagemaker: a base URL ("/invocations" is
	// appended, as a SageMaker container serves it) or a full URL ending in
	// "/invocations" (a SageMaker runtime InvokeEndpoint URL). For webhook:
	// the URL that receives the notice. Required.
	URL string `yaml:"url" json:"url"`
	// Streams the hook applies to; empty means every stream.
	Streams []string `yaml:"streams" json:"streams,omitempty"`
	// Readings names sensor streams whose readings of the fragment's time
	// range go with it, or ["linked"]: the sensor streams linked to the
	// fragment's stream. A webhook's notice carries them ("readings":
	// {stream: [reading…]}); a SageMaker-style request carries, in the
	// X-Tributary-Readings header, a signed URL of each stream's readings
	// (stream=URL, comma-separated), valid for an hour. Edge placement only.
	Readings []string `yaml:"readings" json:"readings,omitempty"`
	// Payload is "fragment" (default), "keyframe" or "jpeg". Webhooks
	// send a notice with signed URLs of the fragment (fMP4) and its init
	// segment instead, and take only "fragment".
	Payload string `yaml:"payload" json:"payload,omitempty"`
	// Accept is sent as the Accept header. Default "application/json".
	Accept string `yaml:"accept" json:"accept,omitempty"`
	// CustomAttributes is sent as X-Amzn-SageMaker-Custom-Attributes.
	CustomAttributes string `yaml:"custom_attributes" json:"custom_attributes,omitempty"`
	// Headers are added to every request (a bearer token, say).
	Headers map[string]string `yaml:"headers" json:"-"`
	// SigV4 signs requests for a real SageMaker runtime endpoint.
	SigV4 *SigV4Config `yaml:"sigv4" json:"-"`
	// Every sends one fragment in Every (1 = all). Default 1.
	Every int `yaml:"every" json:"every,omitempty"`
	// MinInterval sends at most one fragment per interval of producer time
	// per stream (with Every, both must allow it). Default 0: no limit.
	MinInterval time.Duration `yaml:"min_interval" json:"min_interval,omitempty"`
	// Timeout of one request. Default 60 s, as SageMaker's.
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Retries after the first attempt, on 5xx, 429, timeouts and network
	// errors, before a dead letter. Default 4.
	Retries int `yaml:"retries" json:"retries,omitempty"`
	// Concurrency is the number of requests in flight. Default 4.
	Concurrency int `yaml:"concurrency" json:"concurrency,omitempty"`
	// MaxResult bounds the stored response, in bytes; a larger answer is a
	// dead letter. Default 1 MiB.
	MaxResult int `yaml:"max_result" json:"max_result,omitempty"`
}

// SigV4Config holds the AWS credentials of a signed endpoint.
type SigV4Config struct {
	// Region of the endpoint, e.g. "eu-west-1". Required.
	Region string `yaml:"region"`
	// Service is the signing name. Default "sagemaker".
	Service string `yaml:"service"`
	// AccessKey, SecretKey and SessionToken; when empty they come from
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	SessionToken string `yaml:"session_token"`
}

// Validate fills the defaults and checks the hook. path prefixes the keys
// its errors name ("inference.hooks[0]").
func (h *Hook) Validate(path string) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrConfig, path, key, fmt.Sprintf(format, args...))
	}
	if h.Model == "" {
		return bad("model", "required")
	}
	if err := fragment.ValidateStreamName(h.Model); err != nil {
		return bad("model", "%q must match %s", h.Model, fragment.StreamNamePattern)
	}
	switch h.Kind {
	case KindSageMaker, KindWebhook:
	case "":
		return bad("kind", "required: sagemaker or webhook")
	default:
		return bad("kind", "%q is not sagemaker or webhook", h.Kind)
	}
	switch h.Placement {
	case "":
		h.Placement = PlacementEdge
	case PlacementEdge, PlacementArchive:
	default:
		return bad("placement", "%q is not edge or archive", h.Placement)
	}
	if h.URL == "" {
		return bad("url", "required")
	}
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("url", "%q is not an http or https URL", redactURL(h.URL))
	}
	for i, s := range h.Streams {
		if err := fragment.ValidateStreamName(s); err != nil {
			return bad(fmt.Sprintf("streams[%d]", i), "%q is not a stream name", s)
		}
	}
	switch h.Payload {
	case "":
		h.Payload = PayloadFragment
	case PayloadFragment, PayloadKeyframe, PayloadJPEG:
	default:
		return bad("payload", "%q is not fragment, keyframe or jpeg", h.Payload)
	}
	if h.Kind == KindWebhook && h.Placement == PlacementArchive {
		return bad("placement", "a webhook runs at the edge: its fragment URLs are the agent's")
	}
	if h.Kind == KindWebhook && h.Payload != PayloadFragment {
		return bad("payload", "a webhook gets a notice with the fragment's URL: only fragment applies")
	}
	if len(h.Readings) > 0 && h.Placement == PlacementArchive {
		return bad("readings", "sensor readings go with fragments at the edge (placement: edge)")
	}
	for i, s := range h.Readings {
		if err := fragment.ValidateStreamName(s); err != nil {
			return bad(fmt.Sprintf("readings[%d]", i), "%q is not a stream name (or linked)", s)
		}
	}
	if h.Accept == "" {
		h.Accept = "application/json"
	}
	if strings.ContainsAny(h.CustomAttributes, "\r\n") || len(h.CustomAttributes) > 1024 {
		return bad("custom_attributes", "at most 1024 characters on one line")
	}
	for k, v := range h.Headers {
		if k == "" || strings.ContainsAny(k+v, "\r\n") || strings.ContainsAny(k, " :") {
			return bad("headers", "%q is not a valid header", k)
		}
	}
	if h.SigV4 != nil {
		if h.Kind != KindSageMaker {
			return bad("sigv4", "only for sagemaker hooks")
		}
		if h.SigV4.Region == "" {
			return bad("sigv4.region", "required")
		}
		if h.SigV4.Service == "" {
			h.SigV4.Service = "sagemaker"
		}
		if u.Scheme != "https" {
			return bad("url", "a signed endpoint must be https")
		}
	}
	switch {
	case h.Every == 0:
		h.Every = 1
	case h.Every < 0 || h.Every > 1_000_000:
		return bad("every", "%d is out of range (1 to 1000000)", h.Every)
	}
	if h.MinInterval < 0 || h.MinInterval > 24*time.Hour {
		return bad("min_interval", "%v is out of range (0 to 24h)", h.MinInterval)
	}
	switch {
	case h.Timeout == 0:
		h.Timeout = DefaultTimeout
	case h.Timeout < 10*time.Millisecond || h.Timeout > time.Hour:
		return bad("timeout", "%v is out of range (10ms to 1h)", h.Timeout)
	}
	switch {
	case h.Retries == 0:
		h.Retries = DefaultRetries
	case h.Retries < 0:
		h.Retries = 0 // -1: no retries
	case h.Retries > 100:
		return bad("retries", "%d is out of range (-1 to 100)", h.Retries)
	}
	switch {
	case h.Concurrency == 0:
		h.Concurrency = DefaultConcurrency
	case h.Concurrency < 0 || h.Concurrency > 1024:
		return bad("concurrency", "%d is out of range (1 to 1024)", h.Concurrency)
	}
	switch {
	case h.MaxResult == 0:
		h.MaxResult = DefaultMaxResult
	case h.MaxResult < 0 || h.MaxResult > 64<<20:
		return bad("max_result", "%d is out of range (1 to 64 MiB)", h.MaxResult)
	}
	return nil
}

// InvokeURL is the URL requests go to: URL itself when it ends in
// /invocations, else URL + "/invocations" (sagemaker), or URL (webhook).
func (h *Hook) InvokeURL() string {
	if h.Kind == KindWebhook || strings.HasSuffix(strings.TrimRight(h.URL, "/"), "/invocations") {
		return h.URL
	}
	return strings.TrimRight(h.URL, "/") + "/invocations"
}

// Applies reports whether the hook takes the stream's fragments.
func (h *Hook) Applies(stream string) bool {
	if len(h.Streams) == 0 {
		return true
	}
	for _, s := range h.Streams {
		if s == stream {
			return true
		}
	}
	return false
}

// Samples reports whether the hook takes a fragment. The choice depends
// on the fragment alone, so the agent, a consumer and a consumer restarted
// after a crash all pick the same fragments: with Every, those whose
// number is a multiple of it; with MinInterval, those that contain a
// multiple of the interval in producer time (one per interval for
// fragments shorter than it).
func (h *Hook) Samples(m *fragment.Metadata) bool {
	if h.Every > 1 && m.Number%uint64(h.Every) != 0 {
		return false
	}
	if iv := h.MinInterval; iv > 0 {
		start, end := m.ProducerStart.UnixNano(), m.ProducerEnd.UnixNano()
		if end <= start {
			end = start + 1
		}
		n := int64(iv)
		// a multiple of the interval in [start, end)
		first := (start + n - 1) / n * n
		if start < 0 {
			first = start / n * n
		}
		return first < end
	}
	return true
}

// redactURL drops credentials from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	u.RawQuery = ""
	return u.String()
}
