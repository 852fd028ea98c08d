package archive

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// archiveBase is the producer start of the first synthetic fragment.
var archiveBase = time.Date(2025, 6, 1, 9, 59, 45, 0, time.UTC)

// buildArchive stores a synthetic archive of stream cam1 in s: 361
// fragments of 30 s every 30 s from 09:59:45 to 12:59:45 (hours 09 to 12),
// every 7th one shorter, every 5th in Matroska, server times skewed either
// way on some, and one extra fragment that starts in the same millisecond as
// another. It returns the fragments in key order.
func buildArchive(t testing.TB, s Store, layout Layout) []fragment.Metadata {
	t.Helper()
	var all []fragment.Metadata
	for i := range 361 {
		d := 30 * time.Second
		if i%7 == 3 {
			d = 10 * time.Second
		}
		m := testMeta("cam1", uint64(i), archiveBase.Add(time.Duration(i)*30*time.Second+time.Duration(i%3)*time.Millisecond/3), d)
		if i%5 == 0 {
			m.Container = fragment.ContainerMKV
		}
		switch {
		case i%13 == 0:
			m.ServerTime = m.ServerTime.Add(4 * time.Minute)
		case i%17 == 0:
			m.ServerTime = m.ServerTime.Add(-3 * time.Minute)
		}
		all = append(all, putFragment(t, s, layout, m))
	}
	extra := testMeta("cam1", 10_000, all[200].ProducerStart, 5*time.Second)
	all = append(all, putFragment(t, s, layout, extra))
	putFragment(t, s, layout, testMeta("cam2", 1, archiveBase.Add(time.Hour), time.Second)) // another stream
	slices.SortFunc(all, func(a, b fragment.Metadata) int { return strings.Compare(a.Key, b.Key) })
	return all
}

// expectFragments is the reference ListFragments: a scan of every fragment.
func expectFragments(all []fragment.Metadata, req ListRequest) []fragment.Metadata {
	var out []fragment.Metadata
	for _, m := range all {
		var ok bool
		if req.Selector == SelectorServer {
			ok = !m.ServerTime.Before(req.Start) && (req.End.IsZero() || !m.ServerTime.After(req.End))
		} else {
			ok = (req.End.IsZero() || !m.ProducerStart.After(req.End)) &&
				(!m.ProducerStart.Before(req.Start) || m.ProducerEnd.After(req.Start))
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// listAll pages through ListFragments and returns every fragment and the
// number of pages.
func listAll(t testing.TB, s Store, layout Layout, req ListRequest) ([]fragment.Metadata, int) {
	t.Helper()
	var out []fragment.Metadata
	for pages := 1; ; pages++ {
		res, err := ListFragments(context.Background(), s, layout, req)
		if err != nil {
			t.Fatalf("ListFragments(%+v): %v", req, err)
		}
		if res.NextToken != "" && len(res.Fragments) == 0 {
			t.Fatalf("empty page with a token")
		}
		out = append(out, res.Fragments...)
		if res.NextToken == "" {
			return out, pages
		}
		req.Token = res.NextToken
		if pages > 10_000 {
			t.Fatal("no end to the pages")
		}
	}
}

func checkList(t *testing.T, s Store, layout Layout, all []fragment.Metadata, req ListRequest) {
	t.Helper()
	want := expectFragments(all, req)
	got, pages := listAll(t, s, layout, req)
	keys := func(ms []fragment.Metadata) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Key[strings.LastIndexByte(m.Key, '/')+1:])
		}
		return out
	}
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("ListFragments(%s %v..%v limit %d):\n got %d %q\nwant %d %q", req.Selector, req.Start, req.End, req.Limit,
			len(got), keys(got), len(want), keys(want))
	}
	for i := range got {
		if !sameMeta(got[i], want[i]) {
			t.Fatalf("fragment %s:\n got %+v\nwant %+v", got[i].Key, got[i], want[i])
		}
	}
	limit := cmpOr(req.Limit, DefaultListFragmentsLimit)
	if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
		t.Errorf("%d pages of %d for %d fragments, want %d", pages, limit, len(want), wantPages)
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestListFragments(t *testing.T) {
	local := &Local{Root: t.TempDir(), noSync: true}
	layout := Layout{Prefix: "p"}
	all := buildArchive(t, local, layout)
	at := func(h, m, s int) time.Time { return time.Date(2025, 6, 1, h, m, s, 0, time.UTC) }
	reqs := []ListRequest{
		{},
		{Start: at(10, 0, 20), End: at(10, 5, 0)},                          // starts inside a fragment
		{Start: at(10, 0, 15), End: at(10, 0, 15)},                         // a point on a fragment's start
		{Start: at(10, 59, 50), End: at(11, 0, 10), Limit: 1},              // across an hour
		{Start: at(11, 30, 0), Limit: 7},                                   // no end
		{End: at(10, 30, 0), Limit: 1000},                                  // no start
		{Start: at(13, 0, 0), End: at(14, 0, 0)},                           // past the end
		{Start: at(8, 0, 0), End: at(9, 0, 0)},                             // before the start
		{Selector: SelectorServer, Start: at(10, 0, 0), End: at(11, 0, 0)}, // skewed server times
		{Selector: SelectorServer, Start: at(12, 50, 0), Limit: 3},
		{Selector: SelectorServer},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		start := archiveBase.Add(time.Duration(r.Int64N(int64(3*time.Hour))) - time.Minute)
		req := ListRequest{Start: start, End: start.Add(time.Duration(r.Int64N(int64(time.Hour)))), Limit: 5 + r.IntN(120)}
		if r.IntN(3) == 0 {
			req.Selector = SelectorServer
		}
		reqs = append(reqs, req)
	}
	run := func(t *testing.T, s Store) {
		for _, req := range reqs {
			req.Stream = "cam1"
			checkList(t, s, layout, all, req)
		}
	}
	t.Run("no manifests", func(t *testing.T) { run(t, local) })
	t.Run("no manifests, S3-like", func(t *testing.T) { run(t, &countingStore{Store: local, stripListMetadata: true}) })
	ctx := context.Background()
	for _, h := range []int{9, 10, 11} { // not 12
		if err := WriteHourIndex(ctx, local, layout, "cam1", at(h, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("manifests", func(t *testing.T) { run(t, local) })
	t.Run("manifests, S3-like", func(t *testing.T) {
		s := &countingStore{Store: local, stripListMetadata: true}
		run(t, s)
		// Metadata of hours 09 to 11 comes from their manifests, each read
		// once per call; hour 12 has none (one Get finds that out), so its
		// 120 fragments take a Stat each.
		s.reset()
		got, _ := listAll(t, s, layout, ListRequest{Stream: "cam1", Limit: 1000})
		if s.stats != 120 || len(s.gets) != 4 || len(got) != len(all) {
			t.Errorf("whole listing: %d Stat, %d Get (%q), %d fragments; want 120 Stat (hour 12), 4 Get", s.stats, len(s.gets), s.gets, len(got))
		}
	})
	t.Run("backfill after the manifest, corrupt manifest", func(t *testing.T) {
		late := testMeta("cam1", 20_000, at(10, 10, 1), time.Second)
		late = putFragment(t, local, layout, late)
		defer local.Delete(ctx, late.Key)
		key, _ := layout.HourIndexKey("cam1", at(11, 0, 0))
		put(t, local, key, `{"version":1,"stream":"cam1","hour":"2025-06-01T11:00:00Z","fragments":[{"stream":"cam1"`, PutOptions{})
		defer WriteHourIndex(ctx, local, layout, "cam1", at(11, 0, 0))
		withLate := append(slices.Clone(all), late)
		slices.SortFunc(withLate, func(a, b fragment.Metadata) int { return strings.Compare(a.Key, b.Key) })
		for _, req := range reqs[:14] {
			req.Stream = "cam1"
			checkList(t, &countingStore{Store: local, stripListMetadata: true}, layout, withLate, req)
		}
	})
}

func TestListFragmentsScan(t *testing.T) {
	ctx := context.Background()
	local := &Local{Root: t.TempDir(), noSync: true}
	layout := Layout{}
	all := buildArchive(t, local, layout)
	for _, h := range []int{10, 11} {
		if err := WriteHourIndex(ctx, local, layout, "cam1", archiveBase.Add(time.Duration(h-9)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	s := &countingStore{Store: local, stripListMetadata: true}
	start := time.Date(2025, 6, 1, 11, 20, 20, 0, time.UTC)
	res, err := ListFragments(ctx, s, layout, ListRequest{Stream: "cam1", Start: start, End: start.Add(time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	// One List, starting just before the first candidate (one look-back
	// before Start), and one manifest read.
	prefix, _ := layout.FragmentsPrefix("cam1")
	first := start.Add(-MaxFragmentDuration)
	wantAfter := prefix + "2025/06/01/11/" + fmt.Sprintf("%013d", first.UnixMilli())
	if len(s.afters) != 1 || s.afters[0] != wantAfter {
		t.Errorf("List calls after %q, want one after %q", s.afters, wantAfter)
	}
	if len(s.gets) != 1 || s.stats != 0 {
		t.Errorf("%d Get (%q), %d Stat; want the hour 11 manifest only", len(s.gets), s.gets, s.stats)
	}
	if len(res.Fragments) != 10 || res.NextToken == "" || !res.Fragments[0].ProducerStart.Before(start) {
		t.Errorf("first page: %d fragments from %v, token %q; want 10 from the one overlapping %v", len(res.Fragments), res.Fragments[0].ProducerStart, res.NextToken, start)
	}
	// The token resumes after the last key: the next List starts there.
	s.reset()
	if _, err := ListFragments(ctx, s, layout, ListRequest{Stream: "cam1", Start: start, End: start.Add(time.Hour), Limit: 10, Token: res.NextToken}); err != nil {
		t.Fatal(err)
	}
	if len(s.afters) != 1 || s.afters[0] != res.Fragments[9].Key {
		t.Errorf("next page List after %q, want %q", s.afters, res.Fragments[9].Key)
	}
	// Incomplete hours (the current one) have no manifest to read.
	now := time.Now()
	putFragment(t, local, layout, testMeta("live", 1, now.Add(-time.Second), time.Second))
	s.reset()
	if res, err := ListFragments(ctx, s, layout, ListRequest{Stream: "live", Start: now.Add(-time.Minute)}); err != nil || len(res.Fragments) != 1 {
		t.Errorf("live: %+v, %v", res, err)
	}
	if len(s.gets) != 0 {
		t.Errorf("read manifests of an incomplete hour: %q", s.gets)
	}
	// A stream without fragments: an empty page, not an error.
	if res, err := ListFragments(ctx, local, layout, ListRequest{Stream: "nobody"}); err != nil || len(res.Fragments) != 0 || res.NextToken != "" {
		t.Errorf("unknown stream: %+v, %v", res, err)
	}
	_ = all
}

// tokenCases seed FuzzDecodeToken; prefix is the stream's fragments prefix.
var tokenCases = []struct {
	token string
	ok    bool
}{
	{encodeToken("streams/cam1/f/2025/06/01/11/1748776815000-00000000000000000042.m4s"), true},
	{encodeToken("streams/cam2/f/2025/06/01/11/1748776815000-00000000000000000042.m4s"), false},
	{encodeToken("streams/cam1/f/2025/06/01/11/index.json"), false},
	{encodeToken("streams/cam1/stream.json"), false},
	{"", true}, // no token
	{"!!!", false},
	{"c3RyZWFtcw==", false}, // padded
	{"c3RyZWFtcw", false},   // "streams"
}

func TestListFragmentsErrors(t *testing.T) {
	ctx := context.Background()
	s := &Local{Root: t.TempDir(), noSync: true}
	now := time.Now()
	for _, tc := range []struct {
		req   ListRequest
		field string
		also  error
	}{
		{ListRequest{Stream: "../x"}, "stream", fragment.ErrInvalidStreamName},
		{ListRequest{Stream: ""}, "stream", fragment.ErrInvalidStreamName},
		{ListRequest{Stream: "cam1", Selector: "camera"}, "selector", nil},
		{ListRequest{Stream: "cam1", Start: now, End: now.Add(-time.Second)}, "end", nil},
		{ListRequest{Stream: "cam1", Limit: -1}, "limit", nil},
		{ListRequest{Stream: "cam1", Limit: MaxListFragmentsLimit + 1}, "limit", nil},
	} {
		_, err := ListFragments(ctx, s, Layout{}, tc.req)
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.field) || (tc.also != nil && !errors.Is(err, tc.also)) {
			t.Errorf("ListFragments(%+v) = %v; want ErrInvalidRequest naming %q", tc.req, err, tc.field)
		}
	}
	for _, tc := range tokenCases {
		_, err := ListFragments(ctx, s, Layout{}, ListRequest{Stream: "cam1", Token: tc.token})
		if tc.ok && err != nil || !tc.ok && (!errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "token")) {
			t.Errorf("token %q: %v, want ok=%v", tc.token, err, tc.ok)
		}
	}
}

// FuzzDecodeToken: any token either decodes to a fragment key of the stream
// that re-encodes to the same token, or is ErrInvalidToken.
func FuzzDecodeToken(f *testing.F) {
	for _, tc := range tokenCases {
		f.Add(tc.token)
	}
	prefix, _ := Layout{}.FragmentsPrefix("cam1")
	f.Fuzz(func(t *testing.T, token string) {
		key, err := decodeToken(token, prefix)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		if !strings.HasPrefix(key, prefix) || encodeToken(key) != token {
			t.Fatalf("token %q decodes to %q", token, key)
		}
		if _, _, _, _, err := ParseFragmentKey(key); err != nil {
			t.Fatal(err)
		}
	})
}

func TestListStreams(t *testing.T) {
	ctx := context.Background()
	s := &Local{Root: t.TempDir(), noSync: true}
	layout := Layout{Prefix: "x"}
	if got, err := ListStreams(ctx, s, layout); err != nil || len(got) != 0 {
		t.Errorf("empty archive: %q, %v", got, err)
	}
	names := []string{"a", "a-b", "a.b", "a0", "a_", "cam1", "Z"}
	for _, n := range names {
		for i := range 3 {
			putFragment(t, s, layout, testMeta(n, uint64(i), archiveBase.Add(time.Duration(i)*time.Hour), time.Second))
		}
		key, _ := layout.StreamKey(n)
		put(t, s, key, "{}", PutOptions{})
	}
	put(t, s, "y/streams/other/stream.json", "{}", PutOptions{}) // another prefix
	cs := &countingStore{Store: s}
	got, err := ListStreams(ctx, cs, layout)
	slices.Sort(names)
	if err != nil || !slices.Equal(got, names) {
		t.Errorf("ListStreams = %q, %v; want %q", got, err, names)
	}
	if len(cs.afters) != len(names)+1 {
		t.Errorf("%d List calls for %d streams", len(cs.afters), len(names))
	}
}

// vanishingStore lists objects that Stat no longer finds, as when retention
// deletes fragments during a listing.
type vanishingStore struct {
	Store
	gone map[string]bool
}

func (v *vanishingStore) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	objs, err := v.Store.List(ctx, prefix, after, limit)
	for i := range objs {
		objs[i].Metadata = nil
	}
	return objs, err
}

func (v *vanishingStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if v.gone[key] {
		return ObjectInfo{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return v.Store.Stat(ctx, key)
}

func TestListFragmentsDeletedOrCorrupt(t *testing.T) {
	ctx := context.Background()
	local := &Local{Root: t.TempDir(), noSync: true}
	var all []fragment.Metadata
	for i := range 5 {
		all = append(all, putFragment(t, local, Layout{}, testMeta("cam1", uint64(i), archiveBase.Add(time.Duration(i)*time.Second), time.Second)))
	}
	s := &vanishingStore{Store: local, gone: map[string]bool{all[1].Key: true, all[3].Key: true}}
	res, err := ListFragments(ctx, s, Layout{}, ListRequest{Stream: "cam1"})
	if err != nil || len(res.Fragments) != 3 {
		t.Errorf("with deleted fragments: %d fragments, %v; want 3", len(res.Fragments), err)
	}
	if err := WriteHourIndex(ctx, s, Layout{}, "cam1", archiveBase); err != nil {
		t.Errorf("WriteHourIndex with deleted fragments: %v", err)
	}
	// A fragment object whose metadata is not Tributary's is an error that
	// names it, never a fragment served with made-up metadata (without a
	// manifest, which would hide the object's metadata).
	idxKey, _ := Layout{}.HourIndexKey("cam1", archiveBase)
	if err := local.Delete(ctx, idxKey); err != nil {
		t.Fatal(err)
	}
	put(t, local, all[2].Key, "", PutOptions{Metadata: map[string]string{"stream": "cam1"}})
	_, err = ListFragments(ctx, local, Layout{}, ListRequest{Stream: "cam1"})
	if !errors.Is(err, ErrInvalidMetadata) || !strings.Contains(err.Error(), all[2].Key) {
		t.Errorf("corrupt metadata: %v", err)
	}
	// Metadata of another fragment under this key.
	md, _ := EncodeMetadata(all[0])
	put(t, local, all[2].Key, "", PutOptions{Metadata: md})
	if _, err = ListFragments(ctx, local, Layout{}, ListRequest{Stream: "cam1"}); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("metadata of another fragment: %v", err)
	}
}
