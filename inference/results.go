package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// Placements of a hook.
const (
	PlacementEdge    = "edge"    // in the agent, as fragments close
	PlacementArchive = "archive" // in a consumer, from the archive
)

// Record is what a hook leaves about one fragment: a Result (the
// endpoint's answer) or a dead letter (its last failure).
type Record struct {
	Stream         string    `json:"stream"`
	Model          string    `json:"model"`
	FragmentNumber uint64    `json:"fragment_number"`
	ProducerStart  time.Time `json:"producer_start"`
	ProducerEnd    time.Time `json:"producer_end"`
	// ServerTime is when the agent closed the fragment.
	ServerTime time.Time `json:"server_time"`
	// Stored is when the record was written.
	Stored time.Time `json:"stored"`
	// LatencyMs is the last request's time to the endpoint's answer.
	LatencyMs float64 `json:"latency_ms"`
	// Attempts made, the first included.
	Attempts       int    `json:"attempts"`
	IdempotencyKey string `json:"idempotency_key"`
	Placement      string `json:"placement"`
	Payload        string `json:"payload"`
	// Status is the HTTP status of the last answer (0 if none came).
	Status int `json:"status"`
	// ContentType of the answer.
	ContentType string `json:"content_type,omitempty"`
	// Output is the answer when it is JSON; OutputText when it is other
	// text; OutputBase64 otherwise.
	Output       json.RawMessage `json:"output,omitempty"`
	OutputText   string          `json:"output_text,omitempty"`
	OutputBase64 []byte          `json:"output_base64,omitempty"`
	// Error says why a dead letter failed.
	Error string `json:"error,omitempty"`
}

// setOutput keeps an answer in the field its content suits.
func (r *Record) setOutput(body []byte) {
	switch {
	case len(body) == 0:
	case json.Valid(body):
		r.Output = json.RawMessage(bytes.Clone(body))
	case isText(body):
		r.OutputText = string(body)
	default:
		r.OutputBase64 = bytes.Clone(body)
	}
}

func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

// Records writes and reads inference records in an archive.
type Records struct {
	Store  archive.Store
	Layout archive.Layout
}

// Put stores a record as a result or a dead letter (kind is
// archive.RecordResult or archive.RecordDeadLetter). Its key is
// deterministic: a repeat overwrites, never duplicates.
func (rs *Records) Put(ctx context.Context, kind string, r *Record) error {
	key, err := rs.Layout.RecordKey(r.Stream, kind, r.Model, r.ProducerStart, r.FragmentNumber)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = rs.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), archive.PutOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// MaxListRange is the longest time range List reads.
const MaxListRange = 7 * 24 * time.Hour

// ErrRange is returned for a time range List cannot read.
var ErrRange = errors.New("bad time range")

// List returns the records of a stream's fragments that started in
// [start, end), for one model or (model empty) every model: hour by hour,
// and within an hour model by model in time order; at most limit (≤ 0:
// 1000).
func (rs *Records) List(ctx context.Context, kind, stream, model string, start, end time.Time, limit int) ([]Record, error) {
	if limit <= 0 {
		limit = 1000
	}
	if !end.After(start) || end.Sub(start) > MaxListRange {
		return nil, fmt.Errorf("%w: start must be before end, at most %v apart", ErrRange, MaxListRange)
	}
	models := []string{model}
	if model == "" {
		var err error
		if models, err = rs.Models(ctx, kind, stream); err != nil {
			return nil, err
		}
	}
	var out []Record
	for h := start.UTC().Truncate(time.Hour); h.Before(end) && len(out) < limit; h = h.Add(time.Hour) {
		for _, m := range models {
			p, err := rs.Layout.RecordHourPrefix(stream, kind, m, h)
			if err != nil {
				return nil, err
			}
			after := ""
			for len(out) < limit {
				objs, err := rs.Store.List(ctx, p, after, 1000)
				if err != nil {
					return nil, err
				}
				for _, o := range objs {
					_, ms, _, err := archive.ParseRecordKey(o.Key)
					if err != nil || ms < start.UnixMilli() || ms >= end.UnixMilli() {
						continue
					}
					r, err := rs.get(ctx, o.Key)
					if err != nil {
						return nil, err
					}
					out = append(out, r)
					if len(out) == limit {
						break
					}
				}
				if len(objs) < 1000 {
					break
				}
				after = objs[len(objs)-1].Key
			}
		}
	}
	return out, nil
}

// Numbers adds to have the fragment numbers of a model's records of a
// stream's fragments that started in [start, end), from their keys alone.
func (rs *Records) Numbers(ctx context.Context, kind, stream, model string, start, end time.Time, have map[uint64]bool) error {
	for h := start.UTC().Truncate(time.Hour); h.Before(end); h = h.Add(time.Hour) {
		p, err := rs.Layout.RecordHourPrefix(stream, kind, model, h)
		if err != nil {
			return err
		}
		for after := ""; ; {
			objs, err := rs.Store.List(ctx, p, after, 1000)
			if err != nil {
				return err
			}
			for _, o := range objs {
				if _, ms, n, err := archive.ParseRecordKey(o.Key); err == nil && ms >= start.UnixMilli() && ms < end.UnixMilli() {
					have[n] = true
				}
			}
			if len(objs) < 1000 {
				break
			}
			after = objs[len(objs)-1].Key
		}
	}
	return nil
}

// Models lists the models with records of a stream.
func (rs *Records) Models(ctx context.Context, kind, stream string) ([]string, error) {
	p, err := rs.Layout.RecordsPrefix(stream, kind, "")
	if err != nil {
		return nil, err
	}
	var models []string
	after := ""
	for {
		objs, err := rs.Store.List(ctx, p, after, 1)
		if err != nil || len(objs) == 0 {
			return models, err
		}
		m, _, _, err := archive.ParseRecordKey(objs[0].Key)
		if err != nil {
			return models, nil
		}
		models = append(models, m)
		after = p + m + "0" // past every key of this model: '0' sorts after '/', and no model character lies between
	}
}

// Get reads the record of one fragment, or archive.ErrNotFound.
func (rs *Records) Get(ctx context.Context, kind string, m fragment.Metadata, model string) (Record, error) {
	key, err := rs.Layout.RecordKey(m.Stream, kind, model, m.ProducerStart, m.Number)
	if err != nil {
		return Record{}, err
	}
	return rs.get(ctx, key)
}

func (rs *Records) get(ctx context.Context, key string) (Record, error) {
	rc, _, err := rs.Store.Get(ctx, key, nil)
	if err != nil {
		return Record{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 96<<20))
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("record %s: %w", key, err)
	}
	return r, nil
}
