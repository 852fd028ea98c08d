package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testStoreContract runs the behaviour every Store must have against the
// stores newStore makes: a new, empty store for each subtest.
func testStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"PutGetStat", contractPutGetStat},
		{"GetRange", contractGetRange},
		{"SizeMismatch", contractSizeMismatch},
		{"BadKeys", contractBadKeys},
		{"Conditional", contractConditional},
		{"ConditionalRace", contractConditionalRace},
		{"Delete", contractDelete},
		{"DeleteRace", contractDeleteRace},
		{"List", contractList},
		{"ListRandom", contractListRandom},
		{"Context", contractContext},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// checkInfo compares an ObjectInfo with want, ignoring LastModified (which
// must be recent and UTC). List results may leave ContentType and Metadata
// empty.
func checkInfo(t testing.TB, what string, got, want ObjectInfo) {
	t.Helper()
	lm := got.LastModified
	got.LastModified = time.Time{}
	if strings.HasPrefix(what, "List") && got.ContentType == "" && got.Metadata == nil {
		want.ContentType, want.Metadata = "", nil
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	if time.Since(lm) > time.Minute || time.Until(lm) > 5*time.Second || lm.Location() != time.UTC {
		t.Errorf("%s: LastModified %v", what, lm)
	}
}

func contractPutGetStat(t *testing.T, s Store) {
	ctx := context.Background()
	key := "streams/cam1/stream.json"
	body := `{"name":"cam1"}`
	info := put(t, s, key, body, PutOptions{ContentType: "application/json", Metadata: map[string]string{"Camera-Id": "front door", "x-amz-z": "v"}})
	want := ObjectInfo{Key: key, Size: int64(len(body)), ETag: etagOf(s, body), ContentType: "application/json",
		Metadata: map[string]string{"camera-id": "front door", "x-amz-z": "v"}}
	checkInfo(t, "Put", info, want)
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "Stat", st, want)
	got, gi := readAll(t, s, key, nil)
	if got != body {
		t.Errorf("Get = %q, want %q", got, body)
	}
	checkInfo(t, "Get", gi, want)
	objs, err := s.List(ctx, "", "", 0)
	if err != nil || len(objs) != 1 {
		t.Fatalf("List = %v, %v", objs, err)
	}
	checkInfo(t, "List", objs[0], want)

	// Overwrite: new content, new ETag, metadata replaced.
	info = put(t, s, key, "v2", PutOptions{})
	if info.ETag != etagOf(s, "v2") || info.ContentType != DefaultContentType || info.Metadata != nil {
		t.Errorf("overwrite: %+v", info)
	}
	if got, gi := readAll(t, s, key, nil); got != "v2" || gi.Metadata != nil || gi.ContentType != DefaultContentType {
		t.Errorf("after overwrite Get = %q, %+v", got, gi)
	}
	// Empty object.
	if info := put(t, s, "empty", "", PutOptions{}); info.Size != 0 || info.ETag != etagOf(s, "") {
		t.Errorf("empty: %+v", info)
	}
	if got, gi := readAll(t, s, "empty", nil); got != "" || gi.Size != 0 || gi.ETag != etagOf(s, "") {
		t.Errorf("empty: Get = %q, %+v", got, gi)
	}
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(missing) = %v", err)
	}
	if _, _, err := s.Get(ctx, "missing/deeper", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v", err)
	}
	if _, err := s.Stat(ctx, "streams"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(a prefix of other keys) = %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{Metadata: map[string]string{"bad key": "v"}}); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("Put with bad metadata = %v, want ErrInvalidMetadata", err)
	}
	// The caller's SHA-256 of the body changes nothing one can see.
	sum := sha256.Sum256([]byte(body))
	if info := put(t, s, "hashed", body, PutOptions{ContentSHA256: hex.EncodeToString(sum[:])}); info.ETag != etagOf(s, body) {
		t.Errorf("Put with ContentSHA256: ETag %s, want %s", info.ETag, etagOf(s, body))
	}
	if st, err := s.Stat(ctx, "hashed"); err != nil || st.ETag != etagOf(s, body) || st.Size != int64(len(body)) {
		t.Errorf("Stat after a Put with ContentSHA256 = %+v, %v", st, err)
	}
}

func contractGetRange(t *testing.T, s Store) {
	body := "0123456789"
	put(t, s, "r", body, PutOptions{})
	put(t, s, "empty", "", PutOptions{})
	for _, tc := range []struct {
		key  string
		r    Range
		want string
		err  bool
	}{
		{"r", Range{0, -1}, body, false},
		{"r", Range{2, 4}, "234", false},
		{"r", Range{9, 9}, "9", false},
		{"r", Range{7, 100}, "789", false},
		{"r", Range{0, 0}, "0", false},
		{"r", Range{10, -1}, "", true},
		{"r", Range{10, 12}, "", true},
		{"r", Range{4, 2}, "", true},
		{"r", Range{-3, -1}, "", true},
		{"empty", Range{0, -1}, "", true},
	} {
		rc, info, err := s.Get(context.Background(), tc.key, &tc.r)
		if tc.err {
			if !errors.Is(err, ErrInvalidRange) {
				t.Errorf("Get(%s, %v) = %v, want ErrInvalidRange", tc.key, tc.r, err)
			}
			if err == nil {
				rc.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("Get(%s, %v): %v", tc.key, tc.r, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != tc.want || info.Size != int64(len(body)) || info.ETag != etagOf(s, body) {
			t.Errorf("Get(%v) = %q (%+v), want %q (size %d)", tc.r, b, info, tc.want, len(body))
		}
	}
	if _, _, err := s.Get(context.Background(), "missing", &Range{0, 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing, range) = %v, want ErrNotFound", err)
	}
}

func contractSizeMismatch(t *testing.T, s Store) {
	ctx := context.Background()
	put(t, s, "k", "old", PutOptions{})
	for _, tc := range []struct {
		key, body string
		size      int64
	}{
		{"new", "abc", 4},
		{"new", "abcde", 4},
		{"new", "", 1},
		{"new", "x", -1},
		{"k", "abc", 4},
		{"k", "abcde", 4},
	} {
		for _, r := range []io.Reader{strings.NewReader(tc.body), io.MultiReader(strings.NewReader(tc.body))} {
			_, err := s.Put(ctx, tc.key, r, tc.size, PutOptions{})
			if !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("Put(%q, %d bytes, size %d, %T) = %v, want ErrSizeMismatch", tc.key, len(tc.body), tc.size, r, err)
			}
		}
	}
	if _, err := s.Stat(ctx, "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed Put stored something: %v", err)
	}
	if got, info := readAll(t, s, "k", nil); got != "old" || info.ETag != etagOf(s, "old") {
		t.Errorf("a failed overwrite changed the object: %q %+v", got, info)
	}
	// A reader not at its start: the bytes from its offset are the body.
	r := strings.NewReader("skip-body")
	r.Seek(5, io.SeekStart)
	if _, err := s.Put(ctx, "offset", r, 4, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, s, "offset", nil); got != "body" {
		t.Errorf("Put from an offset stored %q, want body", got)
	}
}

func contractBadKeys(t *testing.T, s Store) {
	ctx := context.Background()
	for _, tc := range keyCases {
		if tc.ok {
			continue
		}
		key := tc.key
		if _, err := s.Put(ctx, key, strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Get(ctx, key, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	// Keys every backend takes, unusual ones included.
	for _, key := range []string{"ünïcode/ключ", "a b/c+d=e&f?g#h%20", "x/" + strings.Repeat("n", 200)} {
		put(t, s, key, "ok", PutOptions{})
		if got, _ := readAll(t, s, key, nil); got != "ok" {
			t.Errorf("Get(%q) = %q", key, got)
		}
		if objs, err := s.List(ctx, key, "", 0); err != nil || len(objs) != 1 || objs[0].Key != key {
			t.Errorf("List(%q) = %v, %v", key, objs, err)
		}
	}
}

func contractConditional(t *testing.T, s Store) {
	ctx := context.Background()
	try := func(body string, opts PutOptions) error {
		_, err := s.Put(ctx, "lease", strings.NewReader(body), int64(len(body)), opts)
		return err
	}
	steps := []struct {
		body string
		opts PutOptions
		ok   bool
	}{
		{"a", PutOptions{IfMatch: etagOf(s, "a")}, false}, // absent
		{"a", PutOptions{IfMatch: "*"}, false},            // absent
		{"a", PutOptions{IfNoneMatch: true}, true},
		{"b", PutOptions{IfNoneMatch: true}, false},
		{"b", PutOptions{IfMatch: etagOf(s, "x")}, false},
		{"b", PutOptions{IfMatch: etagOf(s, "a")}, true},
		{"c", PutOptions{IfMatch: strings.Trim(etagOf(s, "b"), `"`)}, true}, // unquoted
		{"d", PutOptions{IfMatch: "*"}, true},
		{"e", PutOptions{IfMatch: etagOf(s, "c")}, false},
	}
	for i, st := range steps {
		err := try(st.body, st.opts)
		if st.ok && err != nil || !st.ok && !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("step %d: Put(%q, %+v) = %v, want ok=%v", i, st.body, st.opts, err, st.ok)
		}
	}
	if got, _ := readAll(t, s, "lease", nil); got != "d" {
		t.Errorf("lease = %q, want d", got)
	}
}

func contractConditionalRace(t *testing.T, s Store) {
	ctx := context.Background()
	const workers = 8

	// Create-if-absent: exactly one winner.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range workers {
		wg.Go(func() {
			body := fmt.Sprint(i)
			_, err := s.Put(ctx, "leases/shard-0", strings.NewReader(body), int64(len(body)), PutOptions{IfNoneMatch: true})
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, ErrPreconditionFailed):
				t.Errorf("worker %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d create-if-absent winners, want 1", wins)
	}

	// Compare-and-swap: a counter incremented by every worker loses nothing.
	put(t, s, "counter", "0", PutOptions{})
	const each = 10
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				body, info := readAll(t, s, "counter", nil)
				var n int
				fmt.Sscan(body, &n)
				next := fmt.Sprint(n + 1)
				_, err := s.Put(ctx, "counter", strings.NewReader(next), int64(len(next)), PutOptions{IfMatch: info.ETag})
				switch {
				case err == nil:
					done++
				case !errors.Is(err, ErrPreconditionFailed):
					t.Errorf("CAS: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, _ := readAll(t, s, "counter", nil); got != fmt.Sprint(workers*each) {
		t.Errorf("counter = %s, want %d", got, workers*each)
	}
}

func contractDelete(t *testing.T, s Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
	put(t, s, "x/y/z", "1", PutOptions{Metadata: map[string]string{"a": "b"}})
	put(t, s, "x/keep", "2", PutOptions{})
	if err := s.Delete(ctx, "x/y/z"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "x/y/z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete = %v", err)
	}
	if err := s.Delete(ctx, "x/y/z"); err != nil {
		t.Errorf("second Delete = %v", err)
	}
	if got, _ := readAll(t, s, "x/keep", nil); got != "2" {
		t.Errorf("x/keep = %q", got)
	}
	if objs, err := s.List(ctx, "x/", "", 0); err != nil || len(objs) != 1 || objs[0].Key != "x/keep" {
		t.Errorf("List after Delete = %v, %v", objs, err)
	}
	// A re-Put of a deleted key has fresh metadata.
	if info := put(t, s, "x/y/z", "3", PutOptions{}); info.Metadata != nil {
		t.Errorf("metadata survived Delete: %v", info.Metadata)
	}
	if st, err := s.Stat(ctx, "x/y/z"); err != nil || st.Metadata != nil {
		t.Errorf("metadata survived Delete: %+v, %v", st, err)
	}
}

// contractDeleteRace puts and deletes keys that share prefixes
// concurrently: neither may fail.
func contractDeleteRace(t *testing.T, s Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				key := fmt.Sprintf("d/%d/e/%d-%d", i%3, w, i)
				if _, err := s.Put(ctx, key, strings.NewReader("x"), 1, PutOptions{}); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					t.Errorf("Delete: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if objs, err := s.List(ctx, "", "", 0); err != nil || len(objs) != 0 {
		t.Errorf("List after all deletes = %v, %v", objs, err)
	}
}

func contractList(t *testing.T, s Store) {
	ctx := context.Background()
	// Keys that sort differently as keys than as directory entries: '-'
	// and '.' come before '/', '0' after it.
	keys := []string{"a", "a-b", "a.b", "a0", "b-/x", "b./x", "b/a-", "b/a/x", "b/a0", "ab/c", "c/d/e/f", "c/d/e-f", "c/d-e/f", "z"}
	for _, k := range keys {
		put(t, s, k, k, PutOptions{})
	}
	slices.Sort(keys)
	all, err := s.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range all {
		got = append(got, o.Key)
		if o.Size != int64(len(o.Key)) || o.ETag != etagOf(s, o.Key) {
			t.Errorf("List entry %+v", o)
		}
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("List = %q\nwant   %q", got, keys)
	}
	// Every prefix, after and limit against a brute-force listing.
	probes := []string{"", "a", "a-", "a/", "b", "b/", "b/a", "b/a/", "b/a-", "c/d", "c/d/", "c/d-", "c/d/e", "zz", "0"}
	probes = append(probes, keys...)
	for _, prefix := range probes {
		for _, after := range probes {
			for _, limit := range []int{0, 1, 2, 5} {
				var want []string
				for _, k := range keys {
					if strings.HasPrefix(k, prefix) && k > after && (limit == 0 || len(want) < limit) {
						want = append(want, k)
					}
				}
				objs, err := s.List(ctx, prefix, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, o := range objs {
					got = append(got, o.Key)
				}
				if !slices.Equal(got, want) {
					t.Errorf("List(%q, %q, %d) = %q, want %q", prefix, after, limit, got, want)
				}
			}
		}
	}
}

func contractListRandom(t *testing.T, s Store) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "-", ".", "0", "_"}
	seg := func() string {
		n := 1 + r.IntN(3)
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		if b.String() == "." || b.String() == ".." {
			return "x"
		}
		return b.String()
	}
	var keys []string
	for range 200 {
		k := seg()
		for r.IntN(2) == 0 {
			k += "/" + seg()
		}
		if _, err := s.Put(ctx, k, strings.NewReader("x"), 1, PutOptions{}); err != nil {
			if !errors.Is(err, ErrInvalidKey) { // tree conflicts of file-backed stores
				t.Fatal(err)
			}
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for range 200 {
		prefix, after := "", ""
		if r.IntN(2) == 0 {
			k := keys[r.IntN(len(keys))]
			prefix = k[:r.IntN(len(k)+1)]
		}
		if r.IntN(4) > 0 {
			k := keys[r.IntN(len(keys))]
			after = k[:r.IntN(len(k)+1)]
		}
		limit := r.IntN(20)
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) && k > after && (limit == 0 || len(want) < limit) {
				want = append(want, k)
			}
		}
		objs, err := s.List(ctx, prefix, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List(%q, %q, %d) = %q, want %q", prefix, after, limit, got, want)
		}
	}
}

// cancelReader cancels its context after the first read.
type cancelReader struct {
	r      io.Reader
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 4)])
	c.cancel()
	return n, err
}

func contractContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	body := strings.Repeat("x", 100)
	_, err := s.Put(ctx, "k", &cancelReader{strings.NewReader(body), cancel}, int64(len(body)), PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a context canceled mid-body = %v", err)
	}
	if _, err := s.Stat(context.Background(), "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a canceled Put stored something: %v", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put = %v", err)
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat = %v", err)
	}
	if _, err := s.List(ctx, "", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("List = %v", err)
	}
	if _, _, err := s.Get(ctx, "k", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Get = %v", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete = %v", err)
	}
}
