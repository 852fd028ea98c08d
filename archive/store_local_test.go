package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newLocal(t testing.TB) *Local {
	t.Helper()
	return &Local{Root: t.TempDir()}
}

func put(t testing.TB, s Store, key, body string, opts PutOptions) ObjectInfo {
	t.Helper()
	info, err := s.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func etagOf(body string) string {
	sum := md5.Sum([]byte(body))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func readAll(t testing.TB, s Store, key string, rng *Range) (string, ObjectInfo) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key, rng)
	if err != nil {
		t.Fatalf("Get(%q, %v): %v", key, rng, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return string(b), info
}

func TestLocalPutGetStat(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	key := "streams/cam1/stream.json"
	body := `{"name":"cam1"}`
	info := put(t, s, key, body, PutOptions{ContentType: "application/json", Metadata: map[string]string{"Camera-Id": "front door"}})
	want := ObjectInfo{Key: key, Size: int64(len(body)), ETag: etagOf(body), ContentType: "application/json",
		Metadata: map[string]string{"camera-id": "front door"}}
	check := func(what string, got ObjectInfo) {
		t.Helper()
		lm := got.LastModified
		got.LastModified = time.Time{}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %+v, want %+v", what, got, want)
		}
		if time.Since(lm) > time.Minute || lm.Location() != time.UTC {
			t.Errorf("%s: LastModified %v", what, lm)
		}
	}
	check("Put", info)
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	check("Stat", st)
	got, gi := readAll(t, s, key, nil)
	if got != body {
		t.Errorf("Get = %q, want %q", got, body)
	}
	check("Get", gi)
	objs, err := s.List(ctx, "", "", 0)
	if err != nil || len(objs) != 1 {
		t.Fatalf("List = %v, %v", objs, err)
	}
	check("List", objs[0])

	// Plain files a person can browse, and a sidecar.
	if b, err := os.ReadFile(filepath.Join(s.Root, "streams", "cam1", "stream.json")); err != nil || string(b) != body {
		t.Errorf("object file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, LocalMetaDir, "streams", "cam1", "stream.json.json")); err != nil {
		t.Errorf("sidecar: %v", err)
	}

	// Overwrite: new content, new ETag, metadata replaced.
	info = put(t, s, key, "v2", PutOptions{})
	if info.ETag != etagOf("v2") || info.ContentType != DefaultContentType || info.Metadata != nil {
		t.Errorf("overwrite: %+v", info)
	}
	if got, _ := readAll(t, s, key, nil); got != "v2" {
		t.Errorf("after overwrite Get = %q", got)
	}
	// Empty object.
	if info := put(t, s, "empty", "", PutOptions{}); info.Size != 0 || info.ETag != etagOf("") {
		t.Errorf("empty: %+v", info)
	}
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(missing) = %v", err)
	}
	if _, _, err := s.Get(ctx, "missing/deeper", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v", err)
	}
	if _, err := s.Stat(ctx, "streams"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(directory) = %v, want ErrNotFound", err)
	}
}

func TestLocalGetRange(t *testing.T) {
	s := newLocal(t)
	body := "0123456789"
	put(t, s, "r", body, PutOptions{})
	for _, tc := range []struct {
		r    Range
		want string
		err  bool
	}{
		{Range{0, -1}, body, false},
		{Range{2, 4}, "234", false},
		{Range{9, 9}, "9", false},
		{Range{7, 100}, "789", false},
		{Range{10, -1}, "", true},
		{Range{4, 2}, "", true},
		{Range{-3, -1}, "", true},
	} {
		rc, info, err := s.Get(context.Background(), "r", &tc.r)
		if tc.err {
			if !errors.Is(err, ErrInvalidRange) {
				t.Errorf("Get(%v) = %v, want ErrInvalidRange", tc.r, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Get(%v): %v", tc.r, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != tc.want || info.Size != int64(len(body)) {
			t.Errorf("Get(%v) = %q (size %d), want %q (size %d)", tc.r, b, info.Size, tc.want, len(body))
		}
	}
}

// tempFiles returns the temporary files left anywhere under root.
func tempFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), LocalTempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestLocalSizeMismatch(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
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
		_, err := s.Put(ctx, tc.key, strings.NewReader(tc.body), tc.size, PutOptions{})
		if !errors.Is(err, ErrSizeMismatch) {
			t.Errorf("Put(%q, %d bytes, size %d) = %v, want ErrSizeMismatch", tc.key, len(tc.body), tc.size, err)
		}
	}
	if _, err := s.Stat(ctx, "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed Put stored something: %v", err)
	}
	if got, info := readAll(t, s, "k", nil); got != "old" || info.ETag != etagOf("old") {
		t.Errorf("a failed overwrite changed the object: %q %+v", got, info)
	}
	if tmp := tempFiles(t, s.Root); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestLocalBadKeys(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	bad := []string{".meta/x", ".meta", "a/.tmp-x", ".tmp-1", strings.Repeat("s", 256) + "/x", "x/" + strings.Repeat("n", 251)}
	for _, tc := range keyCases {
		if !tc.ok {
			bad = append(bad, tc.key)
		}
	}
	for _, key := range bad {
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
	// The longest names that fit.
	put(t, s, strings.Repeat("s", 255)+"/"+strings.Repeat("n", 250), "x", PutOptions{})

	// Tree conflicts, which S3 would allow.
	put(t, s, "a/b", "x", PutOptions{})
	if _, err := s.Put(ctx, "a", strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Put(a) over directory a/ = %v, want ErrInvalidKey", err)
	}
	if _, err := s.Put(ctx, "a/b/c", strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Put(a/b/c) under object a/b = %v, want ErrInvalidKey", err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete(a), a directory: %v", err)
	}
	if got, _ := readAll(t, s, "a/b", nil); got != "x" {
		t.Errorf("a/b = %q after the conflicts", got)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{Metadata: map[string]string{"bad key": "v"}}); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("Put with bad metadata = %v, want ErrInvalidMetadata", err)
	}
	if _, err := (&Local{}).Stat(ctx, "k"); err == nil {
		t.Error("Local without Root: no error")
	}
}

func TestLocalConditional(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	try := func(body string, opts PutOptions) error {
		_, err := s.Put(ctx, "lease", strings.NewReader(body), int64(len(body)), opts)
		return err
	}
	steps := []struct {
		body string
		opts PutOptions
		ok   bool
	}{
		{"a", PutOptions{IfMatch: etagOf("a")}, false}, // absent
		{"a", PutOptions{IfMatch: "*"}, false},         // absent
		{"a", PutOptions{IfNoneMatch: true}, true},
		{"b", PutOptions{IfNoneMatch: true}, false},
		{"b", PutOptions{IfMatch: etagOf("x")}, false},
		{"b", PutOptions{IfMatch: etagOf("a")}, true},
		{"c", PutOptions{IfMatch: strings.Trim(etagOf("b"), `"`)}, true}, // unquoted
		{"d", PutOptions{IfMatch: "*"}, true},
		{"e", PutOptions{IfMatch: etagOf("c")}, false},
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

func TestLocalConditionalRace(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
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

func TestLocalDelete(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
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
	for _, p := range []string{"x/y", LocalMetaDir + "/x/y"} {
		if _, err := os.Stat(filepath.Join(s.Root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("empty directory %s left behind: %v", p, err)
		}
	}
	if got, _ := readAll(t, s, "x/keep", nil); got != "2" {
		t.Errorf("x/keep = %q", got)
	}
	// A re-Put of a deleted key has fresh metadata.
	if info := put(t, s, "x/y/z", "3", PutOptions{}); info.Metadata != nil {
		t.Errorf("metadata survived Delete: %v", info.Metadata)
	}
}

// TestLocalDeleteRace puts and deletes keys that share directories
// concurrently: pruning empty directories must not fail a Put.
func TestLocalDeleteRace(t *testing.T) {
	ctx := context.Background()
	s := &Local{Root: t.TempDir(), noSync: true}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
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

func TestLocalList(t *testing.T) {
	ctx := context.Background()
	s := &Local{Root: t.TempDir(), noSync: true}
	// Names that sort differently as keys than as directory entries:
	// '-' and '.' come before '/', '0' after it.
	keys := []string{"a", "a-b", "a.b", "a0", "b/a", "b-/x", "b./x", "b/a-", "b/a/x", "b/a0", "ab/c", "c/d/e/f", "c/d/e-f", "c/d-e/f", "z"}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "b/a" }) // b/a is a directory
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
		if o.Size != int64(len(o.Key)) || o.ETag != etagOf(o.Key) {
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
	if objs, err := (&Local{Root: filepath.Join(s.Root, "nope")}).List(ctx, "", "", 0); err != nil || len(objs) != 0 {
		t.Errorf("List of a missing root = %v, %v", objs, err)
	}
}

func TestLocalListRandom(t *testing.T) {
	ctx := context.Background()
	s := &Local{Root: t.TempDir(), noSync: true}
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
	for range 300 {
		k := seg()
		for r.IntN(2) == 0 {
			k += "/" + seg()
		}
		if _, err := s.Put(ctx, k, strings.NewReader("x"), 1, PutOptions{}); err != nil {
			if !errors.Is(err, ErrInvalidKey) { // tree conflicts
				t.Fatal(err)
			}
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for range 300 {
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

func TestLocalCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	put(t, s, "d/obj", "hello", PutOptions{ContentType: "text/plain", Metadata: map[string]string{"k": "v"}})
	// A crash mid-write leaves temporary files beside objects and sidecars,
	// and possibly a sidecar without its object.
	for _, p := range []string{"d/.tmp-123", LocalMetaDir + "/d/.tmp-456", ".tmp-789"} {
		if err := os.WriteFile(filepath.Join(s.Root, p), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Root, LocalMetaDir, "d", "orphan.json"), []byte(`{"version":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file put there by hand has no sidecar.
	if err := os.WriteFile(filepath.Join(s.Root, "d", "manual"), []byte("by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []string{"d/manual", "d/obj"}) {
		t.Errorf("List = %q, want only d/manual and d/obj", keys)
	}
	if _, err := s.Stat(ctx, "d/orphan"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(orphan sidecar) = %v", err)
	}
	if m := objs[0]; m.ETag != etagOf("by hand") || m.ContentType != DefaultContentType || m.Metadata != nil {
		t.Errorf("file without sidecar: %+v", m)
	}
	if m := objs[1]; m.ETag != etagOf("hello") || m.ContentType != "text/plain" || m.Metadata["k"] != "v" {
		t.Errorf("object: %+v", m)
	}

	// A crash between the sidecar's rename and the object's: the old bytes
	// sit beside the new sidecar. The ETag must describe the bytes.
	old := put(t, s, "d/lease", "old", PutOptions{Metadata: map[string]string{"holder": "a"}})
	objPath, metaPath, _ := s.paths("d/lease")
	newer := &Local{Root: t.TempDir()}
	put(t, newer, "d/lease", "newer", PutOptions{Metadata: map[string]string{"holder": "b"}})
	_, newerMeta, _ := newer.paths("d/lease")
	b, _ := os.ReadFile(newerMeta)
	os.WriteFile(metaPath, b, 0o644)
	st, err := s.Stat(ctx, "d/lease")
	if err != nil || st.ETag != old.ETag || st.Metadata != nil || st.Size != 3 {
		t.Errorf("Stat with a stale sidecar = %+v, %v; want ETag %s and no metadata", st, err, old.ETag)
	}
	if _, err := s.Put(ctx, "d/lease", strings.NewReader("x"), 1, PutOptions{IfMatch: etagOf("newer")}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("CAS against the stale sidecar's ETag = %v, want ErrPreconditionFailed", err)
	}
	// Same bytes rewritten (a retried upload): the sidecar still holds.
	os.WriteFile(objPath, []byte("newer"), 0o644)
	if st, err := s.Stat(ctx, "d/lease"); err != nil || st.ETag != etagOf("newer") || st.Metadata["holder"] != "b" {
		t.Errorf("Stat with a sidecar of equal bytes = %+v, %v", st, err)
	}

	n, err := s.CleanTemp(ctx, 0)
	if err != nil || n != 3 {
		t.Errorf("CleanTemp = %d, %v; want 3", n, err)
	}
	if tmp := tempFiles(t, s.Root); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if n, err := s.CleanTemp(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("CleanTemp(1h) = %d, %v", n, err)
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

func TestLocalContext(t *testing.T) {
	s := newLocal(t)
	ctx, cancel := context.WithCancel(context.Background())
	body := strings.Repeat("x", 100)
	_, err := s.Put(ctx, "k", &cancelReader{strings.NewReader(body), cancel}, int64(len(body)), PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a context canceled mid-body = %v", err)
	}
	if _, err := s.Stat(context.Background(), "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a canceled Put stored something: %v", err)
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

// BenchmarkLocalList lists the last hour of an archive of 10,000 fragments
// (2 s each, about 5.6 hours): List with after skips the earlier hour
// directories without reading them. The "all" case lists everything for
// comparison.
func BenchmarkLocalList(b *testing.B) {
	ctx := context.Background()
	s := &Local{Root: b.TempDir(), noSync: true}
	layout := Layout{}
	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	const n = 10_000
	var lastKey string
	for i := range n {
		m := testMeta("cam1", uint64(i), start.Add(time.Duration(i)*2*time.Second), 2*time.Second)
		key, err := layout.FragmentKey(m)
		if err != nil {
			b.Fatal(err)
		}
		md, err := EncodeMetadata(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Put(ctx, key, bytes.NewReader(nil), 0, PutOptions{Metadata: md}); err != nil {
			b.Fatal(err)
		}
		lastKey = key
	}
	prefix, _ := layout.FragmentsPrefix("cam1")
	end := start.Add(n * 2 * time.Second)
	from := end.Add(-time.Hour).UnixMilli()
	after := prefix + hourPath(time.UnixMilli(from)) + fmt.Sprintf("%013d", from)
	listAll := func(b *testing.B, after string) int {
		count := 0
		for {
			objs, err := s.List(ctx, prefix, after, 0)
			if err != nil {
				b.Fatal(err)
			}
			count += len(objs)
			if len(objs) < DefaultListLimit {
				return count
			}
			after = objs[len(objs)-1].Key
		}
	}
	b.Run("last-hour", func(b *testing.B) {
		for b.Loop() {
			if got := listAll(b, after); got != 1800 {
				b.Fatalf("listed %d fragments, want 1800 (last %s)", got, lastKey)
			}
		}
	})
	b.Run("last-hour-first-10", func(b *testing.B) {
		for b.Loop() {
			if objs, err := s.List(ctx, prefix, after, 10); err != nil || len(objs) != 10 {
				b.Fatalf("List = %d objects, %v", len(objs), err)
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if got := listAll(b, ""); got != n {
				b.Fatalf("listed %d fragments, want %d", got, n)
			}
		}
	})
}
