package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Names the Local backend reserves.
const (
	// LocalMetaDir is the directory under Root that holds the sidecars of
	// objects, Root/.meta/<key>.json, where records are not in extended
	// attributes.
	LocalMetaDir = ".meta"
	// LocalTempPrefix starts the name of every temporary file. Files named
	// so are never listed; after a crash they are removed by CleanTemp.
	LocalTempPrefix = ".tmp-"
)

const (
	// localXattr is the extended attribute of an object file that holds its
	// record (what a sidecar holds).
	localXattr     = "user.tributary.meta"
	sidecarExt     = ".json"
	maxNameLen     = 255 // NAME_MAX of common filesystems
	sidecarVersion = 1
)

// localLocks serialise the commits of one key (sidecar, rename, conditions)
// and reads of an object with its sidecar, across every Local of the
// process. Keys are spread over the stripes by hash.
var localLocks [256]sync.Mutex

// Local is a Store over a directory. Objects are plain files at Root/key, so
// a person can browse the archive. Each object has a record holding its
// ETag, content type and user metadata: in the extended attribute
// "user.tributary.meta" of its file where the filesystem supports
// extended attributes (copy the archive with them: cp -a, rsync -X), else in
// a sidecar, Root/.meta/<key>.json. Local reads both, and archives written
// before records moved to extended attributes have sidecars only. ETags are
// derived from the SHA-256 of the content (PutOptions.ContentSHA256 spares
// hashing it).
//
// Writes are atomic and durable: the body goes to a temporary file in the
// object's directory (with O_DIRECT on Linux for bodies of 64 KiB or more),
// the record is set on it, it is fsynced, renamed over the old object and
// the directory fsynced. A crash leaves the old object or the new one with
// its record, plus at most temporary files (see CleanTemp).
//
// With a sidecar instead, the sidecar is written the same way and renamed
// into place first, so an object never exists without its sidecar; a crash
// may leave an orphan sidecar, which is never listed. Should a crash leave
// an older object beside a newer sidecar, Local notices (records hold the
// object's size and modification time) and reports the ETag of the bytes
// present and no user metadata.
//
// Local rejects with ErrInvalidKey, besides what ValidateKey rejects: keys
// whose first segment is ".meta", segments that start with ".tmp-",
// segments longer than 255 bytes (250 for the last one), and keys that
// conflict with the directory tree (an object "a" and an object "a/b"
// cannot both exist, unlike on S3).
//
// Conditional writes are race-free between the goroutines of one process,
// not between processes sharing the directory. Local must not be copied
// after use; use it through a pointer.
type Local struct {
	// Root is the directory that holds the objects. It is created on the
	// first Put.
	Root string

	noSync   bool        // tests and benchmarks only: skip fsync
	noXattr  bool        // tests only: records in sidecars
	noDirect atomic.Bool // the filesystem refused an O_DIRECT write
}

var _ Store = (*Local)(nil)

// sidecar is the record of an object, as JSON in the extended attribute
// localXattr of its file or in its sidecar file.
type sidecar struct {
	Version     int               `json:"version"`
	ETag        string            `json:"etag"`
	Size        int64             `json:"size"`
	ModTimeNs   int64             `json:"mtime_ns"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// paths returns the object and sidecar paths of key, or ErrInvalidKey.
func (l *Local) paths(key string) (obj, meta string, err error) {
	if l.Root == "" {
		return "", "", errors.New("archive: Local.Root is empty")
	}
	if err := ValidateKey(key); err != nil {
		return "", "", err
	}
	segs := strings.Split(key, "/")
	if segs[0] == LocalMetaDir {
		return "", "", fmt.Errorf("%w %q: %q is reserved by the local store", ErrInvalidKey, key, LocalMetaDir)
	}
	for i, s := range segs {
		if strings.HasPrefix(s, LocalTempPrefix) {
			return "", "", fmt.Errorf("%w %q: segments starting with %q are reserved by the local store", ErrInvalidKey, key, LocalTempPrefix)
		}
		max := maxNameLen
		if i == len(segs)-1 {
			max -= len(sidecarExt)
		}
		if len(s) > max {
			return "", "", fmt.Errorf("%w %q: segment longer than %d bytes", ErrInvalidKey, key, max)
		}
	}
	rel := filepath.FromSlash(key)
	return filepath.Join(l.Root, rel), filepath.Join(l.Root, LocalMetaDir, rel+sidecarExt), nil
}

func (l *Local) lock(key string) func() {
	root, err := filepath.Abs(l.Root)
	if err != nil {
		root = filepath.Clean(l.Root)
	}
	h := fnv.New32a()
	h.Write([]byte(root))
	h.Write([]byte{0})
	h.Write([]byte(key))
	m := &localLocks[h.Sum32()%uint32(len(localLocks))]
	m.Lock()
	return m.Unlock
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	objPath, metaPath, err := l.paths(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("%w: negative size %d for %q", ErrSizeMismatch, size, key)
	}
	if err := ValidateUserMetadata(opts.Metadata); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	if opts.ContentSHA256 != "" && !isHexSHA256(opts.ContentSHA256) {
		return ObjectInfo{}, fmt.Errorf("put %q: ContentSHA256 %q is not 64 hex digits", key, opts.ContentSHA256)
	}
	dir := filepath.Dir(objPath)
	tmp, err := l.createTemp(key, dir)
	if err != nil {
		return ObjectInfo{}, err
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	etag, err := l.writeBody(ctx, key, tmp, r, size, opts.ContentSHA256)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	ct := opts.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	sc := sidecar{
		Version: sidecarVersion, ETag: etag, Size: size,
		ModTimeNs: fi.ModTime().UnixNano(), ContentType: ct, Metadata: lowerKeys(opts.Metadata),
	}
	rec, err := json.Marshal(sc)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: metadata: %w", key, err)
	}
	// The record rides on the object's inode when the filesystem takes it
	// (it then cannot outlive or miss its object), else in a sidecar.
	inXattr := !l.noXattr && fsetxattr(tmp, localXattr, rec) == nil
	// fsync, not fdatasync: it must persist the extended attribute too.
	if err := l.syncFile(tmp); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}

	unlock := l.lock(key)
	defer unlock()
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	cur, err := os.Lstat(objPath)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	case exists && !cur.Mode().IsRegular():
		return ObjectInfo{}, fmt.Errorf("%w %q: conflicts with a directory of other objects in the local store", ErrInvalidKey, key)
	}
	if opts.IfNoneMatch && exists {
		return ObjectInfo{}, fmt.Errorf("%w: %q exists (If-None-Match)", ErrPreconditionFailed, key)
	}
	if opts.IfMatch != "" {
		if !exists {
			return ObjectInfo{}, fmt.Errorf("%w: %q does not exist (If-Match)", ErrPreconditionFailed, key)
		}
		if opts.IfMatch != "*" {
			info, err := l.describe(key, objPath, metaPath, nil, cur)
			if err != nil {
				return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
			}
			if info.ETag != normalizeETag(opts.IfMatch) {
				return ObjectInfo{}, fmt.Errorf("%w: %q has ETag %s, not %s (If-Match)", ErrPreconditionFailed, key, info.ETag, normalizeETag(opts.IfMatch))
			}
		}
	}
	if !inXattr {
		if err := l.writeSidecar(key, metaPath, rec); err != nil {
			return ObjectInfo{}, err
		}
	}
	// not os.Rename, which would Lstat objPath again: it was just checked
	if err := syscall.Rename(tmpName, objPath); err != nil {
		err = &os.LinkError{Op: "rename", Old: tmpName, New: objPath, Err: err}
		if !exists && !inXattr {
			os.Remove(metaPath)
		}
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	committed = true
	if err := l.syncDir(dir); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	if inXattr && exists {
		// The object replaced may have had a sidecar (written before
		// records moved to extended attributes, or where one did not fit):
		// it is stale now. Should this not happen, readers still prefer
		// the attribute.
		os.Remove(metaPath)
	}
	return ObjectInfo{
		Key: key, Size: size, ETag: sc.ETag, LastModified: fi.ModTime().UTC(), ContentType: ct,
		Metadata: cloneMap(sc.Metadata),
	}, nil
}

// Direct I/O: bodies of at least directMin bytes are written with O_DIRECT
// where the platform and the filesystem allow it (Linux), from buffers
// aligned to directAlign, whole blocks at a time; the last partial block
// is written through the page cache. That skips copying the body into the
// page cache and most of the writeback work of the fsync.
const (
	directMin   = 64 << 10
	directAlign = 4096
	bigChunk    = 1 << 20  // bodies from directMin up: pooled, aligned
	smallChunk  = 32 << 10 // smaller bodies
)

var bigBufs, smallBufs sync.Pool

// getBuf returns a pooled buffer of bigChunk bytes aligned to directAlign
// when big, else of smallChunk bytes.
func getBuf(big bool) *[]byte {
	if big {
		if b, ok := bigBufs.Get().(*[]byte); ok {
			return b
		}
		b := make([]byte, bigChunk+directAlign)
		off := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
		if off != 0 {
			off = directAlign - off
		}
		b = b[off : off+bigChunk : off+bigChunk]
		return &b
	}
	if b, ok := smallBufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, smallChunk)
	return &b
}

func putBuf(b *[]byte) {
	if len(*b) == bigChunk {
		bigBufs.Put(b)
	} else {
		smallBufs.Put(b)
	}
}

// writeBody writes exactly size bytes of r to f and returns the object's
// ETag: from sum, the caller's hex SHA-256 of the body, when given, else
// from the SHA-256 of the bytes written.
func (l *Local) writeBody(ctx context.Context, key string, f *os.File, r io.Reader, size int64, sum string) (string, error) {
	if r == nil {
		r = strings.NewReader("")
	}
	var h hash.Hash
	if sum == "" {
		h = sha256.New()
	}
	big := size >= directMin
	w := bodyWriter{l: l, f: f, h: h, big: big}
	defer w.release()
	w.direct = big && !l.noDirect.Load() && setDirect(f, true)
	if br, ok := r.(*bytes.Reader); ok && int64(br.Len()) == size && w.direct {
		// The body is in memory: WriteTo hands it over in one slice, which
		// goes to the file without a copy when it is aligned (large Go
		// allocations are).
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if _, err := br.WriteTo(&w); err != nil {
			return "", fmt.Errorf("put %q: %w", key, err)
		}
	} else {
		body := ctxReader{ctx, r}
		buf := w.buffer()
		for off := int64(0); off < size; {
			n := int(min(int64(len(buf)), size-off))
			if k, err := io.ReadFull(body, buf[:n]); err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return "", fmt.Errorf("%w: %q: body has %d bytes, declared %d", ErrSizeMismatch, key, off+int64(k), size)
				}
				return "", fmt.Errorf("put %q: %w", key, err)
			}
			if h != nil {
				h.Write(buf[:n])
			}
			if err := w.writeChunk(buf[:n]); err != nil {
				return "", fmt.Errorf("put %q: %w", key, err)
			}
			off += int64(n)
		}
		var probe [1]byte
		if k, err := io.ReadFull(body, probe[:]); k > 0 {
			return "", fmt.Errorf("%w: %q: body is longer than the declared %d bytes", ErrSizeMismatch, key, size)
		} else if err != nil && err != io.EOF {
			return "", fmt.Errorf("put %q: %w", key, err)
		}
	}
	if h != nil {
		return sha256ETag(h.Sum(nil)), nil
	}
	return `"` + strings.ToLower(sum[:32]) + `"`, nil
}

// bodyWriter writes a body to f: with O_DIRECT while direct, whole blocks
// from aligned memory, and the partial last block through the page cache.
type bodyWriter struct {
	l      *Local
	f      *os.File
	h      hash.Hash // nil when the caller gave the SHA-256
	big    bool      // a body of directMin bytes or more
	direct bool
	buf    *[]byte // pooled, taken when needed; aligned when big
}

// buffer returns w's pooled buffer: bigChunk bytes aligned to directAlign
// when w.big, else smallChunk bytes.
func (w *bodyWriter) buffer() []byte {
	if w.buf == nil {
		w.buf = getBuf(w.big)
	}
	return *w.buf
}

func (w *bodyWriter) release() {
	if w.buf != nil {
		putBuf(w.buf)
		w.buf = nil
	}
}

// Write writes the whole body p (bytes.Reader.WriteTo's single call): in
// place when p is aligned, else through buf.
func (w *bodyWriter) Write(p []byte) (int, error) {
	if w.h != nil {
		w.h.Write(p)
	}
	if len(p) == 0 || !w.direct || uintptr(unsafe.Pointer(&p[0]))&(directAlign-1) == 0 {
		return len(p), w.writeChunk(p)
	}
	buf := w.buffer()
	for off := 0; off < len(p); {
		n := copy(buf, p[off:])
		if err := w.writeChunk(buf[:n]); err != nil {
			return off, err
		}
		off += n
	}
	return len(p), nil
}

// writeChunk writes the next chunk of the body. While w.direct, chunk must
// start at an aligned address, and every chunk but the last must be whole
// blocks.
func (w *bodyWriter) writeChunk(chunk []byte) error {
	if w.direct {
		var err error
		if whole := len(chunk) &^ (directAlign - 1); whole > 0 {
			var k int
			k, err = w.f.Write(chunk[:whole])
			if err != nil && !errors.Is(err, syscall.EINVAL) {
				return err
			}
			chunk = chunk[k:]
		}
		if err != nil || len(chunk) > 0 {
			// refused (alignment), or the tail: through the page cache
			if err != nil {
				w.l.noDirect.Store(true)
			}
			setDirect(w.f, false)
			w.direct = false
		}
	}
	if len(chunk) > 0 {
		if _, err := w.f.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// sha256ETag is Local's ETag of bytes whose SHA-256 is sum: the first half
// of the digest in hex, quoted.
func sha256ETag(sum []byte) string {
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// createTemp creates a temporary file in dir, creating dir and its parents
// as needed. It retries when a concurrent Delete removes an empty parent.
func (l *Local) createTemp(key, dir string) (*os.File, error) {
	var err error
	for range 100 {
		var f *os.File
		if err = l.ensureDir(dir); err == nil {
			f, err = os.CreateTemp(dir, LocalTempPrefix+"*")
		}
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w %q: conflicts with an object in the local store: %v", ErrInvalidKey, key, err)
	}
	return nil, fmt.Errorf("put %q: %w", key, err)
}

// ensureDir creates dir and its missing parents, fsyncing the parent of
// every directory it creates.
func (l *Local) ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := l.ensureDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			fi, serr := os.Stat(dir)
			if serr == nil && fi.IsDir() {
				return nil // created concurrently
			}
			if serr != nil {
				return serr // removed again by a Delete: ErrNotExist, retried
			}
		}
		return err
	}
	return l.syncDir(parent)
}

func (l *Local) writeSidecar(key, metaPath string, b []byte) error {
	dir := filepath.Dir(metaPath)
	f, err := l.createTemp(key, dir)
	if err != nil {
		return err
	}
	name := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = l.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, metaPath)
	}
	if err != nil {
		os.Remove(name)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.EISDIR) {
			return fmt.Errorf("%w %q: its sidecar conflicts with another object's in the local store", ErrInvalidKey, key)
		}
		return fmt.Errorf("put %q: sidecar: %w", key, err)
	}
	if err := l.syncDir(dir); err != nil {
		return fmt.Errorf("put %q: sidecar: %w", key, err)
	}
	return nil
}

// describe returns the information of the object at objPath (whose Lstat is
// fi; f is the object opened, or nil) from its record: the extended
// attribute localXattr of the file, else its sidecar (objects written
// before records moved to extended attributes, or where they do not fit).
// Without a record, or with one that describes other bytes, it computes
// the ETag from the content. The caller holds the key's lock.
func (l *Local) describe(key, objPath, metaPath string, f *os.File, fi fs.FileInfo) (ObjectInfo, error) {
	info := ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime().UTC(), ContentType: DefaultContentType}
	var sc sidecar
	b, err := getxattr(f, objPath, localXattr)
	if errors.Is(err, errXattrAbsent) {
		b, err = os.ReadFile(metaPath)
		if err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR)) {
			err = errNoRecord
		}
	}
	if err != nil && err != errNoRecord {
		return ObjectInfo{}, fmt.Errorf("stat %q: metadata: %w", key, err)
	}
	ok := err == nil && json.Unmarshal(b, &sc) == nil && sc.Version == sidecarVersion
	if ok && sc.Size == fi.Size() && sameModTime(sc.ModTimeNs, fi.ModTime()) {
		info.ETag, info.Metadata = sc.ETag, cloneMap(sc.Metadata)
		if sc.ContentType != "" {
			info.ContentType = sc.ContentType
		}
		return info, nil
	}
	// No record (a file put there by hand) or a stale one (a crash between
	// the two renames of a Put with a sidecar, a file changed by hand):
	// trust the bytes.
	rf, err := os.Open(objPath)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	defer rf.Close()
	sh := sha256.New()
	var w io.Writer = sh
	var mh hash.Hash
	if ok && len(sc.ETag) == 34 {
		// it may be the MD5 ETag of an older version of this package
		mh = md5.New()
		w = io.MultiWriter(sh, mh)
	}
	if _, err := io.Copy(w, rf); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	info.ETag = sha256ETag(sh.Sum(nil))
	if mh != nil && sc.ETag != info.ETag && sc.ETag == `"`+hex.EncodeToString(mh.Sum(nil))+`"` {
		info.ETag = sc.ETag
	}
	if ok && sc.ETag == info.ETag {
		// Same bytes rewritten (a retried upload): the record holds.
		info.Metadata = cloneMap(sc.Metadata)
		if sc.ContentType != "" {
			info.ContentType = sc.ContentType
		}
	}
	return info, nil
}

var errNoRecord = errors.New("no record")

// sameModTime reports whether a modification time recorded in a sidecar
// (ns) is the file's. Filesystems that keep coarser times on disk than in
// memory (whole or even seconds) report the recorded time rounded after a
// remount: that still counts as the same.
func sameModTime(recordedNs int64, mtime time.Time) bool {
	ns := mtime.UnixNano()
	if ns == recordedNs {
		return true
	}
	if mtime.Nanosecond() != 0 {
		return false
	}
	d := ns - recordedNs
	return d > -2*int64(time.Second) && d < 2*int64(time.Second)
}

// stat returns the object's information under the key's lock.
func (l *Local) stat(key string) (ObjectInfo, error) {
	objPath, metaPath, err := l.paths(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	unlock := l.lock(key)
	defer unlock()
	fi, err := os.Lstat(objPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return ObjectInfo{}, fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		return ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return l.describe(key, objPath, metaPath, nil, fi)
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	return l.stat(key)
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, err
	}
	objPath, metaPath, err := l.paths(key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	f, info, err := func() (*os.File, ObjectInfo, error) {
		unlock := l.lock(key)
		defer unlock()
		f, err := os.Open(objPath)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil, ObjectInfo{}, fmt.Errorf("%w: %q", ErrNotFound, key)
			}
			return nil, ObjectInfo{}, fmt.Errorf("get %q: %w", key, err)
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		var info ObjectInfo
		if err == nil {
			info, err = l.describe(key, objPath, metaPath, f, fi)
		}
		if err != nil {
			f.Close()
			return nil, ObjectInfo{}, err
		}
		return f, info, nil
	}()
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if rng == nil {
		return f, info, nil
	}
	off, n, err := rng.Resolve(info.Size)
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("get %q: %w", key, err)
	}
	return sectionReadCloser{io.NewSectionReader(f, off, n), f}, info, nil
}

// Delete implements Store. It removes the object (and the record in its
// extended attribute), then its sidecar if any, then the directories they
// leave empty (best effort).
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	objPath, metaPath, err := l.paths(key)
	if err != nil {
		return err
	}
	unlock := l.lock(key)
	defer unlock()
	fi, err := os.Lstat(objPath)
	switch {
	case err == nil && fi.Mode().IsRegular():
		if err := os.Remove(objPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %q: %w", key, err)
		}
		// a concurrent Delete may have pruned the emptied directory already
		if err := l.syncDir(filepath.Dir(objPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %q: %w", key, err)
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := os.Remove(metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("delete %q: sidecar: %w", key, err)
	}
	l.pruneDirs(filepath.Dir(objPath), filepath.Clean(l.Root))
	l.pruneDirs(filepath.Dir(metaPath), filepath.Join(l.Root, LocalMetaDir))
	return nil
}

// pruneDirs removes dir and its parents up to (not including) stop while
// they are empty.
func (l *Local) pruneDirs(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		l.syncDir(filepath.Dir(dir))
		dir = filepath.Dir(dir)
	}
}

// errXattrAbsent is getxattr's error for a file without the attribute, or on
// a filesystem (or platform) without extended attributes.
var errXattrAbsent = errors.New("no such extended attribute")

// errListFull stops a listing walk once the limit is reached.
var errListFull = errors.New("list full")

// List implements Store. It walks the directories in key order and skips
// every directory whose keys all sort at or before after, or outside prefix,
// without reading it. It fills ContentType and Metadata from the records.
func (l *Local) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	if l.Root == "" {
		return nil, errors.New("archive: Local.Root is empty")
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var out []ObjectInfo
	err := l.walk(ctx, "", prefix, after, limit, &out)
	if err != nil && !errors.Is(err, errListFull) {
		return nil, err
	}
	return out, nil
}

type dirItem struct {
	name string
	key  string // rel + name, with a trailing '/' for a directory
	dir  bool
}

func (l *Local) walk(ctx context.Context, rel, prefix, after string, limit int, out *[]ObjectInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dirPath := filepath.Join(l.Root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dirPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	items := make([]dirItem, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if (rel == "" && name == LocalMetaDir) || strings.HasPrefix(name, LocalTempPrefix) {
			continue
		}
		switch {
		case e.IsDir():
			items = append(items, dirItem{name, rel + name + "/", true})
		case e.Type().IsRegular():
			items = append(items, dirItem{name, rel + name, false})
		}
	}
	// Keys under directory "a" sort as "a/…", so "a-b" comes before them:
	// sort by key, not by name.
	slices.SortFunc(items, func(a, b dirItem) int { return strings.Compare(a.key, b.key) })
	for _, it := range items {
		if it.key > prefix && !strings.HasPrefix(it.key, prefix) {
			break // this and every later key sort past the prefix
		}
		if it.dir {
			if !strings.HasPrefix(it.key, prefix) && !strings.HasPrefix(prefix, it.key) {
				continue
			}
			if it.key < after && !strings.HasPrefix(after, it.key) {
				continue // every key in this directory sorts before after
			}
			if err := l.walk(ctx, it.key, prefix, after, limit, out); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(it.key, prefix) || it.key <= after {
			continue
		}
		info, err := l.stat(it.key)
		if err != nil {
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidKey) {
				continue // deleted meanwhile, or a file no key can name
			}
			return err
		}
		*out = append(*out, info)
		if len(*out) >= limit {
			return errListFull
		}
	}
	return nil
}

// CleanTemp removes the temporary files that crashed writes left under Root
// (names starting with LocalTempPrefix) last modified more than olderThan
// ago, and returns how many it removed. Run it at start-up; a small
// olderThan may remove the temporary file of a write in progress.
func (l *Local) CleanTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	if l.Root == "" {
		return 0, errors.New("archive: Local.Root is empty")
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := filepath.WalkDir(l.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), LocalTempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			return nil
		}
		if os.Remove(path) == nil {
			removed++
		}
		return nil
	})
	return removed, err
}

func (l *Local) syncFile(f *os.File) error {
	if l.noSync {
		return nil
	}
	return f.Sync()
}

func (l *Local) syncDir(dir string) error {
	if l.noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// ctxReader fails reads once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
