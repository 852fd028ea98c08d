package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
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
	"testing/iotest"
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

// etagOf returns the ETag s reports for an object of body: for Local, the
// first half of its SHA-256; for S3, its MD5.
func etagOf(s Store, body string) string {
	if _, ok := s.(*Local); ok {
		sum := sha256.Sum256([]byte(body))
		return `"` + hex.EncodeToString(sum[:16]) + `"`
	}
	return md5ETag(body)
}

// md5ETag is the ETag S3 gives a single-part object of body, and the one
// older versions of Local recorded.
func md5ETag(body string) string {
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

// TestLocalContractSidecar runs the contract with records in sidecar files,
// as on filesystems without extended attributes.
func TestLocalContractSidecar(t *testing.T) {
	testStoreContract(t, func(t *testing.T) Store {
		return &Local{Root: t.TempDir(), noXattr: true}
	})
}

// recordIn reports where the record of key is: "xattr", "sidecar" or "".
func recordIn(t testing.TB, l *Local, key string) string {
	t.Helper()
	objPath, metaPath, err := l.paths(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getxattr(nil, objPath, localXattr); err == nil {
		return "xattr"
	}
	if _, err := os.Stat(metaPath); err == nil {
		return "sidecar"
	}
	return ""
}

// xattrsWork reports whether the filesystem of dir takes user extended
// attributes.
func xattrsWork(t testing.TB, dir string) bool {
	t.Helper()
	f, err := os.CreateTemp(dir, "xattr-probe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return fsetxattr(f, localXattr, []byte("{}")) == nil
}

// TestLocalFiles checks what Local keeps on disk: plain files a person can
// browse, a record per object (in an extended attribute where the
// filesystem has them, else in a sidecar); and that List fills ContentType
// and Metadata from the records.
func TestLocalFiles(t *testing.T) {
	for _, noXattr := range []bool{false, true} {
		t.Run(fmt.Sprintf("noXattr=%v", noXattr), func(t *testing.T) {
			ctx := context.Background()
			s := &Local{Root: t.TempDir(), noXattr: noXattr}
			key := "streams/cam1/stream.json"
			body := `{"name":"cam1"}`
			put(t, s, key, body, PutOptions{ContentType: "application/json", Metadata: map[string]string{"Camera-Id": "front door"}})
			if b, err := os.ReadFile(filepath.Join(s.Root, "streams", "cam1", "stream.json")); err != nil || string(b) != body {
				t.Errorf("object file: %q, %v", b, err)
			}
			want := "sidecar"
			if !noXattr && xattrsWork(t, s.Root) {
				want = "xattr"
			}
			if got := recordIn(t, s, key); got != want {
				t.Errorf("record in %q, want %q", got, want)
			}
			if want == "xattr" {
				if _, err := os.Stat(filepath.Join(s.Root, LocalMetaDir)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists with records in extended attributes: %v", LocalMetaDir, err)
				}
			} else if _, err := os.Stat(filepath.Join(s.Root, LocalMetaDir, "streams", "cam1", "stream.json.json")); err != nil {
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
		})
	}
}

// TestLocalRecordTooLarge stores metadata whose record does not fit in an
// extended attribute of most filesystems (ext4 takes about 4 KB): it goes
// to a sidecar and reads back the same.
func TestLocalRecordTooLarge(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	md := map[string]string{"a": strings.Repeat("<", 1000), "b": strings.Repeat(`"`, 1000)} // escaped by JSON
	info := put(t, s, "k", "body", PutOptions{Metadata: md})
	st, err := s.Stat(ctx, "k")
	if err != nil || st.ETag != info.ETag || st.Metadata["a"] != md["a"] || st.Metadata["b"] != md["b"] {
		t.Errorf("Stat = %+v, %v", st, err)
	}
	t.Logf("record in %s", recordIn(t, s, "k"))
	// Overwritten with a small record: the sidecar goes.
	put(t, s, "k", "body2", PutOptions{Metadata: map[string]string{"a": "b"}})
	if st, err := s.Stat(ctx, "k"); err != nil || st.Metadata["a"] != "b" || st.ETag != etagOf(s, "body2") {
		t.Errorf("after overwrite: Stat = %+v, %v", st, err)
	}
	if xattrsWork(t, s.Root) {
		if _, metaPath, _ := s.paths("k"); fileExists(metaPath) {
			t.Errorf("stale sidecar %s left after an overwrite with an extended attribute", metaPath)
		}
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{s.Root, filepath.Join(s.Root, LocalMetaDir)} {
		if entries, _ := os.ReadDir(dir); len(entries) > 0 && !(dir == s.Root && len(entries) == 1 && entries[0].Name() == LocalMetaDir) {
			t.Errorf("left in %s after Delete: %v", dir, entries)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestLocalLargeBodies stores bodies around the sizes where Local turns to
// direct I/O and to more than one chunk, with direct I/O and without, with
// and without the caller's SHA-256, from a reader that returns short reads.
func TestLocalLargeBodies(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 3*bigChunk+directAlign+1)
	rand.NewChaCha8([32]byte{1}).Read(data)
	sizes := []int{0, 1, directMin - 1, directMin, directMin + 1, directMin + directAlign, bigChunk - 1, bigChunk,
		bigChunk + 1, bigChunk + directAlign, 2*bigChunk + directAlign - 1, 3*bigChunk + 17}
	for _, noDirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("noDirect=%v", noDirect), func(t *testing.T) {
			s := &Local{Root: t.TempDir()}
			s.noDirect.Store(noDirect)
			for _, n := range sizes {
				// *bytes.Reader bodies are written from their own memory
				// when aligned (data is: a large allocation), else copied.
				for _, rd := range []string{"half", "aligned", "unaligned"} {
					body := data[:n]
					var r io.Reader = iotest.HalfReader(bytes.NewReader(body))
					switch rd {
					case "aligned":
						r = bytes.NewReader(body)
					case "unaligned":
						body = data[1 : n+1]
						r = bytes.NewReader(body)
					}
					sum := sha256.Sum256(body)
					wantETag := `"` + hex.EncodeToString(sum[:16]) + `"`
					given := rd != "unaligned" && n%2 == 0
					key := fmt.Sprintf("big/%d", n)
					opts := PutOptions{Metadata: map[string]string{"n": fmt.Sprint(n)}}
					if given {
						opts.ContentSHA256 = strings.ToUpper(hex.EncodeToString(sum[:]))
					}
					info, err := s.Put(ctx, key, r, int64(n), opts)
					if err != nil {
						t.Fatalf("Put(%d bytes, %s): %v", n, rd, err)
					}
					if info.ETag != wantETag || info.Size != int64(n) {
						t.Errorf("Put(%d bytes, %s, sum given %v) = %+v, want ETag %s", n, rd, given, info, wantETag)
					}
					got, gi := readAll(t, s, key, nil)
					if got != string(body) || gi.ETag != wantETag || gi.Metadata["n"] != fmt.Sprint(n) {
						t.Errorf("Get(%d bytes, %s): %d bytes back (equal: %v), %+v", n, rd, len(got), got == string(body), gi)
					}
				}
			}
			if noDirect {
				return
			}
			t.Logf("direct I/O refused by the filesystem of %s: %v", s.Root, s.noDirect.Load())

			// Large bodies of the wrong size store nothing.
			old := put(t, s, "big/k", "old", PutOptions{})
			for _, tc := range []struct{ body, size int }{{bigChunk, bigChunk + 1}, {bigChunk + 1, bigChunk}, {directMin, 2 * bigChunk}} {
				for _, r := range []io.Reader{bytes.NewReader(data[:tc.body]), iotest.HalfReader(bytes.NewReader(data[:tc.body]))} {
					_, err := s.Put(ctx, "big/k", r, int64(tc.size), PutOptions{})
					if !errors.Is(err, ErrSizeMismatch) {
						t.Errorf("Put(%d bytes, size %d, %T) = %v, want ErrSizeMismatch", tc.body, tc.size, r, err)
					}
				}
			}
			if got, info := readAll(t, s, "big/k", nil); got != "old" || info.ETag != old.ETag {
				t.Errorf("a failed overwrite changed the object: %q %+v", got, info)
			}
			if tmp := tempFiles(t, s.Root); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// TestLocalDirectRefused checks the fallback when a direct write fails with
// EINVAL (as on filesystems that take O_DIRECT at open but want another
// alignment): here forced by handing it unaligned memory. The rest goes
// through the page cache, and the Local stops trying direct I/O.
func TestLocalDirectRefused(t *testing.T) {
	s := newLocal(t)
	f, err := os.CreateTemp(s.Root, "direct")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !setDirect(f, true) {
		t.Skip("no direct I/O on the filesystem of", s.Root)
	}
	buf := make([]byte, directMin+directAlign)
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	body := buf[1 : 4*directAlign+1] // 4 whole blocks, at an unaligned address
	w := bodyWriter{l: s, f: f, big: true, direct: true}
	if err := w.writeChunk(body); err != nil {
		t.Fatal(err)
	}
	if w.direct || !s.noDirect.Load() {
		t.Errorf("after EINVAL: direct %v, Local.noDirect %v", w.direct, s.noDirect.Load())
	}
	if got, err := os.ReadFile(f.Name()); err != nil || !bytes.Equal(got, body) {
		t.Errorf("file holds %d bytes (equal: %v), %v", len(got), bytes.Equal(got, body), err)
	}
	// Later Puts do not try again, and work.
	data := buf[:directMin+100]
	put(t, s, "k", string(data), PutOptions{})
	if got, _ := readAll(t, s, "k", nil); got != string(data) {
		t.Error("Put after direct I/O was refused: content differs")
	}
}

// TestLocalContentSHA256 checks the caller's SHA-256: it must be 64 hex
// digits, and it is trusted (the ETag comes from it unchecked).
func TestLocalContentSHA256(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	for _, bad := range []string{"abc", strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 65)} {
		if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{ContentSHA256: bad}); err == nil {
			t.Errorf("Put with ContentSHA256 %q: no error", bad)
		}
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused Put stored something: %v", err)
	}
	other := strings.Repeat("ab", 32)
	if info := put(t, s, "k", "x", PutOptions{ContentSHA256: other}); info.ETag != `"`+other[:32]+`"` {
		t.Errorf("ETag %s, want the one derived from the given sum", info.ETag)
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
	for _, noXattr := range []bool{false, true} {
		t.Run(fmt.Sprintf("noXattr=%v", noXattr), func(t *testing.T) { testLocalCrashLeftovers(t, noXattr) })
	}
}

func testLocalCrashLeftovers(t *testing.T, noXattr bool) {
	ctx := context.Background()
	s := &Local{Root: t.TempDir(), noXattr: noXattr}
	put(t, s, "d/obj", "hello", PutOptions{ContentType: "text/plain", Metadata: map[string]string{"k": "v"}})
	// A crash mid-write leaves temporary files beside objects and sidecars,
	// and possibly a sidecar without its object.
	if err := os.MkdirAll(filepath.Join(s.Root, LocalMetaDir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
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
	if m := objs[0]; m.ETag != etagOf(s, "by hand") || m.ContentType != DefaultContentType || m.Metadata != nil {
		t.Errorf("file without sidecar: %+v", m)
	}
	if m := objs[1]; m.ETag != etagOf(s, "hello") || m.ContentType != "text/plain" || m.Metadata["k"] != "v" {
		t.Errorf("object: %+v", m)
	}

	// An object changed in place by hand: its record describes other
	// bytes. The ETag must describe the bytes.
	objPath, _, _ := s.paths("d/obj")
	os.WriteFile(objPath, []byte("HELLO!"), 0o644)
	if st, err := s.Stat(ctx, "d/obj"); err != nil || st.ETag != etagOf(s, "HELLO!") || st.Metadata != nil || st.Size != 6 {
		t.Errorf("Stat of an object changed by hand = %+v, %v", st, err)
	}
	// Same bytes written back (a new modification time): the record holds.
	os.WriteFile(objPath, []byte("hello"), 0o644)
	if st, err := s.Stat(ctx, "d/obj"); err != nil || st.ETag != etagOf(s, "hello") || st.Metadata["k"] != "v" {
		t.Errorf("Stat of an object rewritten with the same bytes = %+v, %v", st, err)
	}

	if noXattr {
		testLocalStaleSidecar(t, s)
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

// testLocalStaleSidecar: a crash between the rename of the sidecar and the
// object's leaves the old bytes beside the new sidecar.
func testLocalStaleSidecar(t *testing.T, s *Local) {
	ctx := context.Background()
	// The ETag must describe the bytes.
	old := put(t, s, "d/lease", "old", PutOptions{Metadata: map[string]string{"holder": "a"}})
	objPath, metaPath, _ := s.paths("d/lease")
	newer := &Local{Root: t.TempDir(), noXattr: true}
	put(t, newer, "d/lease", "newer", PutOptions{Metadata: map[string]string{"holder": "b"}})
	_, newerMeta, _ := newer.paths("d/lease")
	b, _ := os.ReadFile(newerMeta)
	os.WriteFile(metaPath, b, 0o644)
	st, err := s.Stat(ctx, "d/lease")
	if err != nil || st.ETag != old.ETag || st.Metadata != nil || st.Size != 3 {
		t.Errorf("Stat with a stale sidecar = %+v, %v; want ETag %s and no metadata", st, err, old.ETag)
	}
	if _, err := s.Put(ctx, "d/lease", strings.NewReader("x"), 1, PutOptions{IfMatch: etagOf(s, "newer")}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("CAS against the stale sidecar's ETag = %v, want ErrPreconditionFailed", err)
	}
	// Same bytes rewritten (a retried upload): the sidecar still holds.
	os.WriteFile(objPath, []byte("newer"), 0o644)
	if st, err := s.Stat(ctx, "d/lease"); err != nil || st.ETag != etagOf(s, "newer") || st.Metadata["holder"] != "b" {
		t.Errorf("Stat with a sidecar of equal bytes = %+v, %v", st, err)
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
