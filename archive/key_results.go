package archive

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Kinds of inference records, each under its own folder of a stream.
const (
	// RecordResult is what a model endpoint answered for a fragment.
	RecordResult = "results"
	// RecordDeadLetter is a fragment a model endpoint failed on for good.
	RecordDeadLetter = "deadletters"
)

// RecordsPrefix returns "{prefix}/streams/{stream}/{kind}/{model}/", the
// prefix of a model's records of one kind (RecordResult or
// RecordDeadLetter); with an empty model, "{prefix}/streams/{stream}/{kind}/".
func (l Layout) RecordsPrefix(stream, kind, model string) (string, error) {
	if kind != RecordResult && kind != RecordDeadLetter {
		return "", fmt.Errorf("%w: record kind %q", ErrInvalidKey, kind)
	}
	p, err := l.StreamPrefix(stream)
	if err != nil {
		return "", err
	}
	if model == "" {
		return p + kind + "/", nil
	}
	if err := fragment.ValidateStreamName(model); err != nil {
		return "", fmt.Errorf("%w: model: %w", ErrInvalidKey, err)
	}
	return p + kind + "/" + model + "/", nil
}

// RecordKey returns the key of a model's record about fragment number of
// stream, which started at start (producer clock):
// "…/{kind}/{model}/YYYY/MM/DD/HH/{startMs:013}-{number:020}.json". Keys
// sort by time like the fragments', and a time range is listed without
// reading the records.
func (l Layout) RecordKey(stream, kind, model string, start time.Time, number uint64) (string, error) {
	if model == "" {
		return "", fmt.Errorf("%w: no model", ErrInvalidKey)
	}
	p, err := l.RecordsPrefix(stream, kind, model)
	if err != nil {
		return "", err
	}
	ms := start.UnixMilli()
	if ms < 0 || ms > MaxStartMs {
		return "", fmt.Errorf("%w: producer start %s outside the key layout (1970 to 2286)", ErrInvalidKey, start.UTC().Format(time.RFC3339Nano))
	}
	return p + hourPath(time.UnixMilli(ms)) + fmt.Sprintf("%013d-%020d.json", ms, number), nil
}

// RecordHourPrefix returns the prefix of a model's records of the UTC hour
// that contains t.
func (l Layout) RecordHourPrefix(stream, kind, model string, t time.Time) (string, error) {
	p, err := l.RecordsPrefix(stream, kind, model)
	if err != nil {
		return "", err
	}
	if model == "" {
		return "", fmt.Errorf("%w: no model", ErrInvalidKey)
	}
	return p + hourPath(t), nil
}

// ParseRecordKey returns the model, producer start (Unix ms) and fragment
// number of a record key from RecordKey.
func ParseRecordKey(key string) (model string, startMs int64, number uint64, err error) {
	bad := func(why string) (string, int64, uint64, error) {
		return "", 0, 0, fmt.Errorf("%w: %q is not a record key: %s", ErrInvalidKey, key, why)
	}
	segs := strings.Split(key, "/")
	if len(segs) < 7 {
		return bad("too few segments")
	}
	name := segs[len(segs)-1]
	model = segs[len(segs)-6]
	if err := fragment.ValidateStreamName(model); err != nil {
		return bad("bad model")
	}
	if !strings.HasSuffix(name, ".json") {
		return bad("not .json")
	}
	name = strings.TrimSuffix(name, ".json")
	if len(name) != 13+1+20 || name[13] != '-' || !allDigits(name[:13]) || !allDigits(name[14:]) {
		return bad("want {startMs:013}-{number:020}.json")
	}
	startMs, _ = strconv.ParseInt(name[:13], 10, 64)
	number, err = strconv.ParseUint(name[14:], 10, 64)
	if err != nil {
		return bad("number out of range")
	}
	if hourPath(time.UnixMilli(startMs)) != strings.Join(segs[len(segs)-5:len(segs)-1], "/")+"/" {
		return bad("hour folder does not match the start")
	}
	return model, startMs, number, nil
}

// SystemKey returns "{prefix}/_system/{parts joined by /}", where shard
// maps, leases and checkpoints live. Each part must be a stream-name-like
// identifier, optionally ending in ".json".
func (l Layout) SystemKey(parts ...string) (string, error) {
	p := strings.Trim(l.Prefix, "/")
	if p != "" {
		if err := ValidateKey(p); err != nil {
			return "", fmt.Errorf("layout prefix: %w", err)
		}
		p += "/"
	}
	key := p + "_system"
	for _, part := range parts {
		if err := fragment.ValidateStreamName(strings.TrimSuffix(part, ".json")); err != nil {
			return "", fmt.Errorf("%w: system key part %q", ErrInvalidKey, part)
		}
		key += "/" + part
	}
	return key, nil
}
