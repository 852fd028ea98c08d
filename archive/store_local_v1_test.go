package archive

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyV1Archive copies testdata/local-v1, an archive written by the Local
// of before records moved to extended attributes (sidecars in .meta, MD5
// ETags), into a new directory. With keepTimes the objects get the
// modification times their sidecars recorded, as cp -a would keep them.
func copyV1Archive(t *testing.T, keepTimes bool) string {
	t.Helper()
	src := filepath.Join("testdata", "local-v1")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !keepTimes {
		return dst
	}
	metaRoot := filepath.Join(dst, LocalMetaDir)
	err = filepath.WalkDir(metaRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var sc sidecar
		if err := json.Unmarshal(b, &sc); err != nil {
			return err
		}
		rel, _ := filepath.Rel(metaRoot, strings.TrimSuffix(p, sidecarExt))
		mt := time.Unix(0, sc.ModTimeNs)
		return os.Chtimes(filepath.Join(dst, rel), mt, mt)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

const v1FragKey = "streams/cam1/f/2026/11/27/10/1795773600000-00000000000000000007.m4s"

var v1FragBody = strings.Repeat("fragment bytes ", 100)

// v1Objects are the objects of testdata/local-v1, in key order.
var v1Objects = []struct{ key, body, ctype string }{
	{"_system/leases/shard-0", "holder a", DefaultContentType},
	{"empty", "", DefaultContentType},
	{v1FragKey, v1FragBody, "video/mp4"},
	{"streams/cam1/stream.json", `{"name":"cam1"}`, "application/json"},
}

// TestLocalReadsV1Archive reads, conditionally overwrites and deletes the
// objects of an archive written before records moved to extended
// attributes.
func TestLocalReadsV1Archive(t *testing.T) {
	ctx := context.Background()
	for _, noXattr := range []bool{false, true} {
		t.Run(map[bool]string{false: "xattr", true: "sidecar"}[noXattr], func(t *testing.T) {
			s := &Local{Root: copyV1Archive(t, true), noXattr: noXattr}
			objs, err := s.List(ctx, "", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			want := v1Objects
			if len(objs) != len(want) {
				t.Fatalf("List = %+v, want %d objects", objs, len(want))
			}
			for i, w := range want {
				if o := objs[i]; o.Key != w.key || o.Size != int64(len(w.body)) || o.ETag != md5ETag(w.body) || o.ContentType != w.ctype {
					t.Errorf("List[%d] = %+v, want %s with the MD5 ETag %s", i, o, w.key, md5ETag(w.body))
				}
			}
			got, info := readAll(t, s, v1FragKey, nil)
			if got != v1FragBody || info.ETag != md5ETag(v1FragBody) || info.ContentType != "video/mp4" {
				t.Errorf("Get(fragment) = %d bytes, %+v", len(got), info)
			}
			m, err := DecodeMetadata(info.Metadata)
			if err != nil || m.Stream != "cam1" || m.Number != 7 || m.Size != int64(len(v1FragBody)) {
				t.Errorf("fragment metadata = %+v, %v", m, err)
			}
			if st, err := s.Stat(ctx, "_system/leases/shard-0"); err != nil || st.Metadata["holder"] != "a" {
				t.Errorf("Stat(lease) = %+v, %v", st, err)
			}

			// Conditional writes against the MD5 ETags.
			lease := "_system/leases/shard-0"
			if _, err := s.Put(ctx, lease, strings.NewReader("holder b"), 8, PutOptions{IfMatch: md5ETag("other")}); !errors.Is(err, ErrPreconditionFailed) {
				t.Errorf("CAS with a wrong ETag = %v", err)
			}
			if _, err := s.Put(ctx, "empty", strings.NewReader(""), 0, PutOptions{IfNoneMatch: true}); !errors.Is(err, ErrPreconditionFailed) {
				t.Errorf("create-only over an old object = %v", err)
			}
			nb, err := s.Put(ctx, lease, strings.NewReader("holder b"), 8, PutOptions{IfMatch: md5ETag("holder a"), Metadata: map[string]string{"holder": "b"}})
			if err != nil || nb.ETag != etagOf(s, "holder b") {
				t.Fatalf("CAS with the MD5 ETag = %+v, %v", nb, err)
			}
			if st, err := s.Stat(ctx, lease); err != nil || st.ETag != nb.ETag || st.Metadata["holder"] != "b" {
				t.Errorf("Stat after the CAS = %+v, %v", st, err)
			}
			wantRecord := "sidecar"
			if !noXattr && xattrsWork(t, s.Root) {
				wantRecord = "xattr"
			}
			if where := recordIn(t, s, lease); where != wantRecord {
				t.Errorf("record of the overwritten lease in %q, want %q", where, wantRecord)
			}
			if _, metaPath, _ := s.paths(lease); wantRecord == "xattr" && fileExists(metaPath) {
				t.Errorf("old sidecar %s left beside the new record", metaPath)
			}

			// Delete removes the object and its sidecar.
			for _, key := range []string{"streams/cam1/stream.json", lease} {
				if err := s.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				objPath, metaPath, _ := s.paths(key)
				if fileExists(objPath) || fileExists(metaPath) {
					t.Errorf("Delete(%s) left %v %v", key, fileExists(objPath), fileExists(metaPath))
				}
				if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
					t.Errorf("Stat(%s) after Delete = %v", key, err)
				}
			}
			if objs, err := s.List(ctx, "", "", 0); err != nil || len(objs) != 2 {
				t.Errorf("List after the deletes = %+v, %v", objs, err)
			}
		})
	}
}

// TestLocalReadsV1ArchiveCopied reads an old archive copied without its
// modification times: the sidecars no longer match by time, but the bytes
// still hash to their MD5 ETags, so the records hold.
func TestLocalReadsV1ArchiveCopied(t *testing.T) {
	ctx := context.Background()
	s := &Local{Root: copyV1Archive(t, false)}
	objs, err := s.List(ctx, "", "", 0)
	if err != nil || len(objs) != len(v1Objects) {
		t.Fatalf("List = %+v, %v", objs, err)
	}
	for i, w := range v1Objects {
		if o := objs[i]; o.Key != w.key || o.ETag != md5ETag(w.body) || o.ContentType != w.ctype {
			t.Errorf("List[%d] = %+v, want %s with the MD5 ETag %s", i, o, w.key, md5ETag(w.body))
		}
	}
	st, err := s.Stat(ctx, "_system/leases/shard-0")
	if err != nil || st.ETag != md5ETag("holder a") || st.Metadata["holder"] != "a" {
		t.Errorf("Stat(lease) = %+v, %v; want the MD5 ETag and the metadata", st, err)
	}
	if st, err := s.Stat(ctx, "streams/cam1/stream.json"); err != nil || st.ContentType != "application/json" {
		t.Errorf("Stat(stream.json) = %+v, %v", st, err)
	}
}
