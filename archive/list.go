package archive

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// Selectors of ListRequest: which timestamp a time range applies to.
const (
	// SelectorProducer selects by the producer (camera) clock.
	SelectorProducer = "producer"
	// SelectorServer selects by the agent's clock at fragment close.
	SelectorServer = "server"
)

// listSlack is how many keys beyond the page the first List of
// ListFragments asks for: the fragments of the look-back before Start.
const listSlack = 64

// Limits of ListRequest.Limit.
const (
	DefaultListFragmentsLimit = 100
	MaxListFragmentsLimit     = 1000
)

var (
	// ErrInvalidRequest is returned by ListFragments for a request with a
	// bad field; the message names the field.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidToken is returned by ListFragments for a pagination token it
	// did not issue for that stream.
	ErrInvalidToken = errors.New("invalid pagination token")
)

// MaxFragmentDuration is how far before a range's start ListFragments looks
// for a fragment that started earlier and still overlaps it. A fragment
// longer than this that starts before the range is not found: keep the
// cutter's hard cap (fragment.DefaultMaxDuration, 30 s) at or under it.
var MaxFragmentDuration = 60 * time.Second

// MaxClockSkew is how far the producer clock may be from the server clock
// for the server selector to find a fragment: ListFragments scans producer
// starts from Start-MaxClockSkew to End+MaxClockSkew and then filters by
// server time. A fragment whose camera clock is further off is not found by
// the server selector.
var MaxClockSkew = 10 * time.Minute

// ListRequest asks ListFragments for the fragments of a stream in a range.
type ListRequest struct {
	// Stream is the stream's name.
	Stream string
	// Selector is SelectorProducer (default when empty) or SelectorServer.
	Selector string
	// Start and End bound the range, both inclusive. A zero Start means
	// from the earliest fragment; a zero End means no upper bound (not
	// "now": a camera clock may run ahead).
	Start, End time.Time
	// Limit is the most fragments to return: default
	// DefaultListFragmentsLimit, at most MaxListFragmentsLimit.
	Limit int
	// Token is ListResult.NextToken of the previous page, or empty.
	Token string
}

// ListResult is a page of ListFragments.
type ListResult struct {
	// Fragments in ascending key order: producer start (in milliseconds),
	// then number. Each has Key set.
	Fragments []fragment.Metadata
	// NextToken is set when more fragments match: pass it as
	// ListRequest.Token, with the same other fields, for the next page.
	NextToken string
}

// ListFragments returns the fragments of a stream in a time range, a page at
// a time.
//
// With the producer selector a fragment matches when [ProducerStart,
// ProducerEnd) overlaps [Start, End] (a fragment without duration matches
// when its start is in [Start, End]). With the server selector it matches
// when ServerTime is in [Start, End]; the scan is keyed by producer time,
// widened by MaxClockSkew on both ends. Either way results come in key
// order, producer start then number.
//
// It makes one Store.List call starting just before the first candidate key
// (Start minus MaxFragmentDuration) and stops at the first key past End; it
// reads the metadata of each fragment from its hour's manifest when the
// hour is complete and has one (one Get per hour per call), else from the
// List result or a Stat. A stream without fragments in the range, or
// without any, gives an empty result. Bad requests give an error wrapping
// ErrInvalidRequest (or ErrInvalidToken) that names the field.
func ListFragments(ctx context.Context, store Store, layout Layout, req ListRequest) (ListResult, error) {
	if err := fragment.ValidateStreamName(req.Stream); err != nil {
		return ListResult{}, fmt.Errorf("%w: stream: %w", ErrInvalidRequest, err)
	}
	switch req.Selector {
	case "":
		req.Selector = SelectorProducer
	case SelectorProducer, SelectorServer:
	default:
		return ListResult{}, fmt.Errorf("%w: selector %q: want %q or %q", ErrInvalidRequest, req.Selector, SelectorProducer, SelectorServer)
	}
	if !req.End.IsZero() && req.End.Before(req.Start) {
		return ListResult{}, fmt.Errorf("%w: end %s is before start %s", ErrInvalidRequest, req.End.UTC().Format(time.RFC3339Nano), req.Start.UTC().Format(time.RFC3339Nano))
	}
	switch {
	case req.Limit == 0:
		req.Limit = DefaultListFragmentsLimit
	case req.Limit < 0 || req.Limit > MaxListFragmentsLimit:
		return ListResult{}, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidRequest, req.Limit, MaxListFragmentsLimit)
	}
	prefix, err := layout.FragmentsPrefix(req.Stream)
	if err != nil {
		return ListResult{}, err
	}

	// The scan's range of producer starts, in Unix ms.
	widen := time.Duration(0)
	if req.Selector == SelectorServer {
		widen = MaxClockSkew
	}
	after := ""
	if !req.Start.IsZero() {
		first := req.Start.Add(-widen - MaxFragmentDuration).UnixMilli()
		if first > 0 {
			if first > MaxStartMs {
				return ListResult{}, nil
			}
			// Keys of fragments that start at or after first sort after
			// "…/HH/{first:013}" (they continue with "-…").
			after = prefix + hourPath(time.UnixMilli(first)) + fmt.Sprintf("%013d", first)
		}
	}
	lastMs := int64(-1) // no upper bound
	if !req.End.IsZero() {
		lastMs = req.End.Add(widen).UnixMilli()
		if lastMs < 0 {
			return ListResult{}, nil
		}
	}
	if req.Token != "" {
		key, err := decodeToken(req.Token, prefix)
		if err != nil {
			return ListResult{}, err
		}
		if key > after {
			after = key
		}
	}

	l := fragmentLister{ctx: ctx, store: store, layout: layout, stream: req.Stream, hours: map[string]map[string]fragment.Metadata{}}
	var res ListResult
	// The first List asks for the page, the look-back and the key that
	// tells whether more remain; further ones (a sparse range, the server
	// selector's wide scan) ask for twice as many each time.
	page := min(DefaultListLimit, req.Limit+1+listSlack)
	for {
		objs, err := store.List(ctx, prefix, after, page)
		if err != nil {
			return ListResult{}, fmt.Errorf("list fragments of %s: %w", req.Stream, err)
		}
		for _, o := range objs {
			after = o.Key
			_, startMs, _, _, err := ParseFragmentKey(o.Key)
			if err != nil {
				continue // index.json, or not a fragment
			}
			if lastMs >= 0 && startMs > lastMs {
				return res, nil
			}
			m, err := l.metadata(o)
			if errors.Is(err, ErrNotFound) {
				continue // deleted since the List (retention)
			}
			if err != nil {
				return ListResult{}, fmt.Errorf("list fragments of %s: %w", req.Stream, err)
			}
			if !req.matches(m) {
				continue
			}
			if len(res.Fragments) == req.Limit {
				// One more matches: there is a next page.
				res.NextToken = encodeToken(res.Fragments[len(res.Fragments)-1].Key)
				return res, nil
			}
			res.Fragments = append(res.Fragments, m)
		}
		if len(objs) < page {
			return res, nil
		}
		page = min(DefaultListLimit, 2*page)
	}
}

// matches reports whether m is in the request's range.
func (req *ListRequest) matches(m fragment.Metadata) bool {
	if req.Selector == SelectorServer {
		return !m.ServerTime.Before(req.Start) && (req.End.IsZero() || !m.ServerTime.After(req.End))
	}
	if !req.End.IsZero() && m.ProducerStart.After(req.End) {
		return false
	}
	return !m.ProducerStart.Before(req.Start) || m.ProducerEnd.After(req.Start)
}

// fragmentLister fetches the metadata of the fragments of one
// ListFragments call, reading each complete hour's manifest at most once.
type fragmentLister struct {
	ctx    context.Context
	store  Store
	layout Layout
	stream string
	hours  map[string]map[string]fragment.Metadata // hour prefix → key → metadata; nil map: no usable manifest
}

func (l *fragmentLister) metadata(o ObjectInfo) (fragment.Metadata, error) {
	hourDir := o.Key[:strings.LastIndexByte(o.Key, '/')+1]
	byKey, seen := l.hours[hourDir]
	if !seen {
		byKey = l.readHour(o.Key)
		l.hours[hourDir] = byKey
	}
	if m, ok := byKey[o.Key]; ok {
		return m, nil
	}
	// Not in a manifest (the hour is not complete, or the fragment was
	// backfilled after the manifest was written).
	return fragmentMetadata(l.ctx, l.store, o)
}

// readHour returns the manifest of the hour of the fragment key by key, or
// nil when the hour is not complete or has no usable manifest.
func (l *fragmentLister) readHour(key string) map[string]fragment.Metadata {
	_, startMs, _, _, _ := ParseFragmentKey(key)
	hour := time.UnixMilli(startMs).UTC().Truncate(time.Hour)
	if hour.Add(time.Hour).After(time.Now()) {
		return nil // not complete: no manifest yet
	}
	idx, err := ReadHourIndex(l.ctx, l.store, l.layout, l.stream, hour)
	if err != nil {
		// Missing or unusable (corrupt, unreadable): the objects' own
		// metadata is the fallback, so a bad manifest is never served.
		return nil
	}
	byKey := make(map[string]fragment.Metadata, len(idx.Fragments))
	for _, m := range idx.Fragments {
		byKey[m.Key] = m
	}
	return byKey
}

// encodeToken returns the pagination token that resumes after key.
func encodeToken(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// decodeToken returns the key a token resumes after, checking that it is a
// fragment key under prefix (the stream's fragments).
func decodeToken(token, prefix string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("%w: token: not base64url: %w", ErrInvalidToken, err)
	}
	key := string(b)
	if !strings.HasPrefix(key, prefix) {
		return "", fmt.Errorf("%w: token: not issued for this stream", ErrInvalidToken)
	}
	if _, _, _, _, err := ParseFragmentKey(key); err != nil {
		return "", fmt.Errorf("%w: token: does not name a fragment: %w", ErrInvalidToken, err)
	}
	return key, nil
}

// ListStreams returns the names of the streams that have objects in the
// archive, sorted, with one List call per stream (it skips over each
// stream's objects with StartAfter).
func ListStreams(ctx context.Context, store Store, layout Layout) ([]string, error) {
	root, err := layout.StreamsPrefix()
	if err != nil {
		return nil, err
	}
	var names []string
	after := ""
	for {
		objs, err := store.List(ctx, root, after, 1)
		if err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		if len(objs) == 0 {
			slices.Sort(names)
			return names, nil
		}
		rest := strings.TrimPrefix(objs[0].Key, root)
		name, _, ok := strings.Cut(rest, "/")
		if ok && fragment.ValidateStreamName(name) == nil {
			names = append(names, name)
		}
		// Every key of stream "name" starts with "name/": "name0" sorts
		// after all of them and before the next stream ('0' follows '/',
		// and no character of a stream name lies between them).
		after = root + name + "0"
		if !ok {
			after = objs[0].Key
		}
	}
}
