package inference

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/tributary-io/tributary/fragment"
)

// ExampleModel is a model endpoint that honours the SageMaker container
// contract (GET /ping, POST /invocations) and does real, if simple, work on
// what it gets: it parses the fragment with the fragment library and
// answers with each video frame's encoded size, the keyframes' positions
// and an activity score.
//
// The activity score is the mean encoded size of the predicted (non-key)
// frames divided by the mean size of the keyframes, capped at 1. An encoder
// spends few bits on predicted frames of a still scene and more as things
// move, so the ratio rises with motion. It is a cheap proxy computed
// without decoding a pixel: lighting changes and encoder settings move it
// too, and it says nothing about what moves.
type ExampleModel struct {
	// Name is reported in answers. Default "activity".
	Name string
}

// ExampleAnswer is what ExampleModel answers.
type ExampleAnswer struct {
	Model     string `json:"model"`
	Input     string `json:"input"`
	Frames    int    `json:"frames"`
	Keyframes []int  `json:"keyframes"`
	// FrameBytes are the encoded sizes of the video frames, in decode
	// order.
	FrameBytes []int   `json:"frame_bytes"`
	DurationMs float64 `json:"duration_ms,omitempty"`
	Kbps       float64 `json:"kbps,omitempty"`
	Activity   float64 `json:"activity"`
	Method     string  `json:"method"`
}

const activityMethod = "mean predicted-frame size / mean keyframe size, capped at 1"

// maxExampleBody bounds what ExampleModel reads: SageMaker's limit.
const maxExampleBody = MaxPayload

// ServeHTTP implements the container contract.
func (m *ExampleModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/ping" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/invocations" && r.Method == http.MethodPost:
		m.invoke(w, r)
	case r.URL.Path == "/ping" || r.URL.Path == "/invocations":
		modelError(w, http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	default:
		modelError(w, http.StatusNotFound, "no %s here: the model serves GET /ping and POST /invocations", r.URL.Path)
	}
}

func (m *ExampleModel) invoke(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxExampleBody+1))
	if err != nil {
		modelError(w, http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	if len(body) > maxExampleBody {
		modelError(w, http.StatusRequestEntityTooLarge, "body over %d bytes", maxExampleBody)
		return
	}
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	ans, err := m.Analyze(ctype, body)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errUnsupportedInput) {
			status = http.StatusUnsupportedMediaType
		}
		modelError(w, status, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ans)
}

var errUnsupportedInput = errors.New("content type not supported: send video/mp4 (init segment + fragment), video/x-matroska, video/h264 or video/h265")

// Analyze works out the answer for a payload of the given content type.
func (m *ExampleModel) Analyze(ctype string, body []byte) (*ExampleAnswer, error) {
	name := m.Name
	if name == "" {
		name = "activity"
	}
	ans := &ExampleAnswer{Model: name, Input: ctype, Keyframes: []int{}, FrameBytes: []int{}, Method: activityMethod}
	switch ctype {
	case "video/h264", "video/h265":
		if len(body) < 4 {
			return nil, errors.New("empty access unit")
		}
		ans.Frames, ans.Keyframes, ans.FrameBytes = 1, []int{0}, []int{len(body)}
		return ans, nil
	case "video/mp4", "video/x-matroska":
	default:
		return nil, errUnsupportedInput
	}
	var init, frag []byte
	if ctype == "video/x-matroska" {
		var err error
		if init, frag, _, err = fragment.MKVToFMP4(body); err != nil {
			return nil, err
		}
	} else {
		off, err := firstMoof(body)
		if err != nil {
			return nil, err
		}
		init, frag = body[:off], body[off:]
	}
	tracks, err := fragment.ParseInit(init)
	if err != nil {
		return nil, fmt.Errorf("init segment: %w", err)
	}
	f, err := fragment.ParseFMP4(frag, tracks)
	if err != nil {
		return nil, fmt.Errorf("fragment: %w", err)
	}
	for i, t := range f.TrackConfigs {
		if t.Kind != fragment.KindVideo {
			continue
		}
		var keyBytes, predBytes, keys, preds, total int
		var dur int64
		for j, s := range f.Samples[i] {
			n := len(s.Payload)
			ans.FrameBytes = append(ans.FrameBytes, n)
			total += n
			dur += int64(s.Duration)
			if s.Keyframe {
				ans.Keyframes = append(ans.Keyframes, j)
				keyBytes += n
				keys++
			} else {
				predBytes += n
				preds++
			}
		}
		ans.Frames = len(f.Samples[i])
		if t.TimeScale > 0 && dur > 0 {
			ans.DurationMs = float64(dur) * 1000 / float64(t.TimeScale)
			ans.Kbps = float64(total) * 8 / ans.DurationMs
		}
		if keys > 0 && preds > 0 && keyBytes > 0 {
			ans.Activity = min(1, (float64(predBytes)/float64(preds))/(float64(keyBytes)/float64(keys)))
		}
		break
	}
	return ans, nil
}

// firstMoof returns the offset of the first top-level moof box: the end of
// the init segment.
func firstMoof(b []byte) (int, error) {
	for off := 0; off+8 <= len(b); {
		size := int(binary.BigEndian.Uint32(b[off:]))
		if string(b[off+4:off+8]) == "moof" {
			return off, nil
		}
		if size < 8 || off+size > len(b) {
			break
		}
		off += size
	}
	return 0, errors.New("video/mp4 body without an init segment followed by a moof box")
}

func modelError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}
