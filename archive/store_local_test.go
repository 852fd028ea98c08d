package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

func TestLocalContract(t *testing.T) {
	testStoreContract(t, func(t *testing.T) Store {
		// with fsync on: a Delete whose directory a concurrent Delete
		// pruned before the sync must not fail (DeleteRace)
		return &Local{Root: t.TempDir()}
	})
}

// TestLocalFiles checks what Local keeps on disk: plain files a person can
// browse, a sidecar per object; and that List fills ContentType and
// Metadata from the sidecars.
func TestLocalFiles(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	key := "streams/cam1/stream.json"
	body := `{"name":"cam1"}`
	put(t, s, key, body, PutOptions{ContentType: "application/json", Metadata: map[string]string{"Camera-Id": "front door"}})
	if b, err := os.ReadFile(filepath.Join(s.Root, "streams", "cam1", "stream.json")); err != nil || string(b) != body {
		t.Errorf("object file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, LocalMetaDir, "streams", "cam1", "stream.json.json")); err != nil {
		t.Errorf("sidecar: %v", err)
	}
	objs, err := s.List(ctx, "", "", 0)
	if err != nil || len(objs) != 1 {
		t.Fatalf("List = %v, %v", objs, err)
	}
	if o := objs[0]; o.ContentType != "application/json" || o.Metadata["camera-id"] != "front door" {
		t.Errorf("List entry %+v: ContentType and Metadata not filled", o)
	}
	if objs, err := (&Local{Root: filepath.Join(s.Root, "nope")}).List(ctx, "", "", 0); err != nil || len(objs) != 0 {
		t.Errorf("List of a missing root = %v, %v", objs, err)
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

// TestLocalSizeMismatch checks that failed Puts leave no temporary file.
func TestLocalSizeMismatch(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	put(t, s, "k", "old", PutOptions{})
	for _, body := range []string{"abc", "abcde", ""} {
		if _, err := s.Put(ctx, "k", strings.NewReader(body), 4, PutOptions{}); !errors.Is(err, ErrSizeMismatch) {
			t.Errorf("Put(%d bytes, size 4) = %v, want ErrSizeMismatch", len(body), err)
		}
	}
	if tmp := tempFiles(t, s.Root); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestLocalBadKeys checks the keys only Local refuses (the generic ones are
// in the contract).
func TestLocalBadKeys(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	bad := []string{".meta/x", ".meta", "a/.tmp-x", ".tmp-1", strings.Repeat("s", 256) + "/x", "x/" + strings.Repeat("n", 251)}
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
	if _, err := (&Local{}).Stat(ctx, "k"); err == nil {
		t.Error("Local without Root: no error")
	}
}

// TestLocalDelete checks that Delete prunes the directories it empties.
func TestLocalDelete(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	put(t, s, "x/y/z", "1", PutOptions{Metadata: map[string]string{"a": "b"}})
	put(t, s, "x/keep", "2", PutOptions{})
	if err := s.Delete(ctx, "x/y/z"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x/y", LocalMetaDir + "/x/y"} {
		if _, err := os.Stat(filepath.Join(s.Root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("empty directory %s left behind: %v", p, err)
		}
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
