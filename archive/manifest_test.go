package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// countingStore wraps a Store, counts calls and can behave like S3 by
// leaving Metadata out of List results.
type countingStore struct {
	Store
	stripListMetadata bool

	mu     sync.Mutex
	afters []string // after of every List call
	gets   []string
	stats  int
}

func (c *countingStore) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	c.mu.Lock()
	c.afters = append(c.afters, after)
	c.mu.Unlock()
	objs, err := c.Store.List(ctx, prefix, after, limit)
	if c.stripListMetadata {
		for i := range objs {
			objs[i].Metadata, objs[i].ContentType = nil, ""
		}
	}
	return objs, err
}

func (c *countingStore) Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, ObjectInfo, error) {
	c.mu.Lock()
	c.gets = append(c.gets, key)
	c.mu.Unlock()
	return c.Store.Get(ctx, key, rng)
}

func (c *countingStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	c.mu.Lock()
	c.stats++
	c.mu.Unlock()
	return c.Store.Stat(ctx, key)
}

func (c *countingStore) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.afters, c.gets, c.stats = nil, nil, 0
}

// putFragment stores an empty fragment object with m as its user metadata
// and returns m with its Key.
func putFragment(t testing.TB, s Store, layout Layout, m fragment.Metadata) fragment.Metadata {
	t.Helper()
	key, err := layout.FragmentKey(m)
	if err != nil {
		t.Fatal(err)
	}
	md, err := EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), key, bytes.NewReader(nil), 0, PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	m.Key = key
	return m
}

func TestHourIndexWriteRead(t *testing.T) {
	ctx := context.Background()
	local := &Local{Root: t.TempDir(), noSync: true}
	layout := Layout{Prefix: "site"}
	hour := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	var want []fragment.Metadata
	// Stored out of order; two fragments in the same millisecond.
	for _, off := range []time.Duration{50 * time.Minute, 0, 10 * time.Second, 10 * time.Second, 59*time.Minute + 59*time.Second} {
		m := testMeta("cam1", uint64(len(want)), hour.Add(off), 2*time.Second)
		m.Tags = map[string]string{"n": string(rune('a' + len(want)))}
		want = append(want, putFragment(t, local, layout, m))
	}
	want = []fragment.Metadata{want[1], want[2], want[3], want[0], want[4]}
	putFragment(t, local, layout, testMeta("cam1", 99, hour.Add(-time.Second), time.Second)) // hour before
	putFragment(t, local, layout, testMeta("cam1", 98, hour.Add(time.Hour), time.Second))    // hour after
	putFragment(t, local, layout, testMeta("cam2", 97, hour, time.Second))                   // other stream
	hp, _ := layout.HourPrefix("cam1", hour)
	put(t, local, hp+"notes.txt", "not a fragment", PutOptions{})

	for _, strip := range []bool{false, true} {
		s := &countingStore{Store: local, stripListMetadata: strip}
		if err := WriteHourIndex(ctx, s, layout, "cam1", hour.Add(17*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: len(want)}[strip]; s.stats != want {
			t.Errorf("strip=%v: %d Stat calls, want %d", strip, s.stats, want)
		}
		idx, err := ReadHourIndex(ctx, s, layout, "cam1", hour)
		if err != nil {
			t.Fatal(err)
		}
		if idx.Version != HourIndexVersion || idx.Stream != "cam1" || !idx.Hour.Equal(hour) || len(idx.Fragments) != len(want) {
			t.Fatalf("index = %+v", idx)
		}
		for i := range want {
			if !sameMeta(idx.Fragments[i], want[i]) {
				t.Errorf("fragment %d\n got %+v\nwant %+v", i, idx.Fragments[i], want[i])
			}
		}
	}
	// The stored JSON is version 2: a column per field.
	key, _ := layout.HourIndexKey("cam1", hour)
	body, _ := readAll(t, local, key, nil)
	if !strings.HasPrefix(body, `{"version":2,"stream":"cam1","hour":"2026-11-27T03:00:00Z","count":5,"dir":"site/streams/cam1/f/2026/11/27/03/","name":["`) {
		t.Errorf("index.json = %.120s…", body)
	}
	if _, err := ReadHourIndex(ctx, local, layout, "cam1", hour.Add(-time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing index: %v", err)
	}
	// An empty hour gets an empty manifest.
	empty := hour.Add(5 * time.Hour)
	if err := WriteHourIndex(ctx, local, layout, "cam1", empty); err != nil {
		t.Fatal(err)
	}
	if idx, err := ReadHourIndex(ctx, local, layout, "cam1", empty); err != nil || len(idx.Fragments) != 0 {
		t.Errorf("empty hour: %+v, %v", idx, err)
	}
	// A manifest stored under the wrong hour is refused.
	other, _ := layout.HourIndexKey("cam1", hour.Add(time.Hour))
	put(t, local, other, body, PutOptions{})
	if _, err := ReadHourIndex(ctx, local, layout, "cam1", hour.Add(time.Hour)); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("misplaced manifest: %v", err)
	}
	if err := WriteHourIndex(ctx, local, layout, "../x", hour); !errors.Is(err, fragment.ErrInvalidStreamName) {
		t.Errorf("bad stream: %v", err)
	}
}

const goodIndex = `{"version":1,"stream":"cam1","hour":"2026-11-27T03:00:00Z","fragments":[` +
	`{"stream":"cam1","number":1,"producer_start":"2026-11-27T03:00:00Z","producer_end":"2026-11-27T03:00:02Z","server_timestamp":"2026-11-27T03:00:02.3Z","duration_ms":2000,"size":5,"container":"fmp4","tracks":[{"id":1,"kind":"video","codec":"H264"}],"keyframes":1,"samples":60,"discontinuity":false,"sha256":"","key":"streams/cam1/f/2026/11/27/03/1795748400000-00000000000000000001.m4s"},` +
	`{"stream":"cam1","number":2,"producer_start":"2026-11-27T03:00:02Z","producer_end":"2026-11-27T03:00:04Z","server_timestamp":"2026-11-27T03:00:04.3Z","duration_ms":2000,"size":5,"container":"mkv","tracks":null,"keyframes":1,"samples":60,"discontinuity":true,"sha256":"","key":"streams/cam1/f/2026/11/27/03/1795748402000-00000000000000000002.mkv"}]}`

const goodIndexV2 = `{"version":2,"stream":"cam1","hour":"2026-11-27T03:00:00Z","count":2,` +
	`"dir":"streams/cam1/f/2026/11/27/03/","name":["1795748400000-00000000000000000001.m4s","1795748402000-00000000000000000002.mkv"],` +
	`"number":[1,2],"producer_start_ns":[0,2000000000],"producer_end_ns":[2000000000,4000000000],` +
	`"server_timestamp_ns":[2300000000,-9223372036854775808],"duration_ns":[2000000000,2000000000],"size":[5,5],"keyframes":[1,1],` +
	`"samples":[60,60],"sha256":["",""],"inits":["abc"],"init_ix":[0,0],"track_sets":[[{"id":1,"kind":"video","codec":"H264"}]],"track_ix":[0,0],` +
	`"clocks":["rtcp"],"clock_ix":[0,0],"discontinuous":[1],"tags":{"0":{"a":"b"}}}`

// hourIndexCases seed FuzzDecodeHourIndex.
var hourIndexCases = []struct {
	name, in string
	ok       bool
}{
	{"good", goodIndex, true},
	{"empty hour", `{"version":1,"stream":"cam1","hour":"2026-11-27T03:00:00Z","fragments":[]}`, true},
	{"version 2 with objects", strings.Replace(goodIndex, `"version":1`, `"version":2`, 1), false},
	{"version 3", strings.Replace(goodIndex, `"version":1`, `"version":3`, 1), false},
	{"v2 good", goodIndexV2, true},
	{"v2 empty hour", `{"version":2,"stream":"cam1","hour":"2026-11-27T03:00:00Z","count":0,"dir":"","name":[],"number":[],"producer_start_ns":[],"producer_end_ns":[],"server_timestamp_ns":[],"duration_ns":[],"size":[],"keyframes":[],"samples":[],"sha256":[],"inits":[],"init_ix":[],"track_sets":[],"track_ix":[],"clocks":[],"clock_ix":[]}`, true},
	{"v2 short column", strings.Replace(goodIndexV2, `"size":[5,5]`, `"size":[5]`, 1), false},
	{"v2 init out of range", strings.Replace(goodIndexV2, `"init_ix":[0,0]`, `"init_ix":[0,1]`, 1), false},
	{"v2 negative clock", strings.Replace(goodIndexV2, `"clock_ix":[0,0]`, `"clock_ix":[0,-1]`, 1), false},
	{"v2 discontinuous out of range", strings.Replace(goodIndexV2, `"discontinuous":[1]`, `"discontinuous":[2]`, 1), false},
	{"v2 tags of a missing fragment", strings.Replace(goodIndexV2, `"tags":{"0"`, `"tags":{"7"`, 1), false},
	{"v2 tags key not canonical", strings.Replace(goodIndexV2, `"tags":{"0"`, `"tags":{"00"`, 1), false},
	{"v2 number differs from key", strings.Replace(goodIndexV2, `"number":[1,2]`, `"number":[1,3]`, 1), false},
	{"v2 whole keys", strings.Replace(strings.Replace(goodIndexV2, `"dir":"streams/cam1/f/2026/11/27/03/","name":["`, `"dir":"","name":["streams/cam1/f/2026/11/27/03/`, 1), `","1795748402000`, `","streams/cam1/f/2026/11/27/03/1795748402000`, 1), true},
	{"v2 dir of another hour", strings.Replace(goodIndexV2, `"dir":"streams/cam1/f/2026/11/27/03/"`, `"dir":"streams/cam1/f/2026/11/27/04/"`, 1), false},
	{"v2 start not the key's", strings.Replace(goodIndexV2, `"producer_start_ns":[0,`, `"producer_start_ns":[1000000,`, 1), false},
	{"v2 end a century away", strings.Replace(goodIndexV2, `"producer_end_ns":[2000000000,`, `"producer_end_ns":[9000000000000000000,`, 1), false},
	{"start not the key's", strings.Replace(goodIndex, `"producer_start":"2026-11-27T03:00:02Z"`, `"producer_start":"2026-11-27T03:00:03Z"`, 1), false},
	{"v2 huge count", strings.Replace(goodIndexV2, `"count":2`, `"count":99999999999`, 1), false},
	{"bad stream", strings.Replace(goodIndex, `"stream":"cam1","hour"`, `"stream":"../x","hour"`, 1), false},
	{"not on the hour", strings.Replace(goodIndex, `03:00:00Z","fragments"`, `03:00:01Z","fragments"`, 1), false},
	{"other hour", strings.Replace(goodIndex, `"hour":"2026-11-27T03`, `"hour":"2026-11-27T04`, 1), false},
	{"number differs from key", strings.Replace(goodIndex, `"number":2`, `"number":3`, 1), false},
	{"other stream", strings.Replace(goodIndex, `{"stream":"cam1","number":2`, `{"stream":"cam2","number":2`, 1), false},
	{"unsorted", strings.Replace(strings.Replace(goodIndex, "1795748402000-", "1795748399000-", 1), "/03/1795748399000", "/02/1795748399000", 1), false},
	{"duplicate", strings.Replace(goodIndex, "1795748402000-00000000000000000002.mkv", "1795748400000-00000000000000000001.m4s", 1), false},
	{"not a fragment key", strings.Replace(goodIndex, "1795748402000-00000000000000000002.mkv", "index.json", 1), false},
	{"not JSON", `{"version":1,`, false},
	{"empty", ``, false},
	{"null", `null`, false},
}

func TestDecodeHourIndex(t *testing.T) {
	for _, tc := range hourIndexCases {
		idx, err := DecodeHourIndex(strings.NewReader(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: DecodeHourIndex = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Errorf("%s: %v does not wrap ErrInvalidManifest", tc.name, err)
			}
			continue
		}
		var b bytes.Buffer
		if err := EncodeHourIndex(&b, idx); err != nil {
			t.Errorf("%s: re-encode: %v", tc.name, err)
		}
		if _, err := DecodeHourIndex(&b); err != nil {
			t.Errorf("%s: decode of re-encoding: %v", tc.name, err)
		}
	}
}

// FuzzDecodeHourIndex: hostile manifests give an error, never a panic, and
// a manifest that decodes re-encodes stably.
func FuzzDecodeHourIndex(f *testing.F) {
	for _, tc := range hourIndexCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		idx, err := DecodeHourIndex(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("error %v does not wrap ErrInvalidManifest", err)
			}
			return
		}
		var b1, b2 bytes.Buffer
		if err := EncodeHourIndex(&b1, idx); err != nil {
			t.Fatalf("a decoded manifest does not encode: %v", err)
		}
		idx2, err := DecodeHourIndex(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v\n%s", err, b1.Bytes())
		}
		if err := EncodeHourIndex(&b2, idx2); err != nil || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("unstable encoding:\n%s\n%s", b1.Bytes(), b2.Bytes())
		}
	})
}
