package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrNotFound is returned when an object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrPreconditionFailed is returned by a conditional Put whose condition
	// does not hold (IfNoneMatch and the object exists; IfMatch and the
	// object is absent or has another ETag).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrInvalidKey is returned for a key that ValidateKey rejects, or that a
	// backend cannot store (see Local).
	ErrInvalidKey = errors.New("invalid object key")
	// ErrInvalidRange is returned by Get for a byte range outside the object.
	ErrInvalidRange = errors.New("invalid byte range")
	// ErrSizeMismatch is returned by Put when the body is shorter or longer
	// than the declared size. Nothing is stored.
	ErrSizeMismatch = errors.New("body size differs from the declared size")
	// ErrInvalidMetadata is returned for user metadata that breaks the rules
	// of ValidateUserMetadata, or that cannot be decoded.
	ErrInvalidMetadata = errors.New("invalid object metadata")
)

// MaxKeyLen is the longest key in bytes, as on S3.
const MaxKeyLen = 1024

// DefaultListLimit is the number of objects List returns when limit <= 0,
// and the most a backend is required to return in one call.
const DefaultListLimit = 1000

// MaxUserMetadataSize is the S3 limit on user metadata: the sum of the
// lengths of every key and value, in bytes.
const MaxUserMetadataSize = 2048

// DefaultContentType is reported for objects stored without a content type.
const DefaultContentType = "application/octet-stream"

// Store is an object store: flat keys, whole-object writes, ranged reads,
// sorted listings. It is shaped after S3 so that an S3 backend maps each
// method to one request. Implementations are safe for concurrent use.
type Store interface {
	// Put stores exactly size bytes read from r under key, replacing any
	// object already there, atomically: readers see the old object or the
	// new one, never a part. A body shorter or longer than size fails with
	// ErrSizeMismatch and stores nothing. A condition in opts that does not
	// hold fails with ErrPreconditionFailed.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// Get opens the object, or the byte range rng of it when rng is not
	// nil. The returned ObjectInfo describes the whole object (its Size is
	// the object's size, not the range's). The caller closes the reader.
	Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, ObjectInfo, error)
	// Stat returns the object's information, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix and sort
	// strictly after `after` (S3 ListObjectsV2 StartAfter), in ascending byte
	// order, at most limit of them (limit <= 0 means DefaultListLimit). It
	// returns fewer than limit only when no more keys match, so callers page
	// with after = the last key returned. The listing is recursive: keys are
	// flat, there is no delimiter. Metadata
	// and ContentType of the returned objects may be left empty by backends
	// where they cost one request per object (S3): use Stat to get them.
	List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error)
}

// PutOptions are the options of Store.Put.
type PutOptions struct {
	// ContentType of the object; DefaultContentType when empty.
	ContentType string
	// Metadata is user metadata (x-amz-meta-*). See ValidateUserMetadata
	// for its rules. Keys are stored lower-cased, as S3 does, and may come
	// back in another case (minio-go canonicalises them): compare keys
	// case-insensitively.
	Metadata map[string]string
	// IfNoneMatch makes the Put create-only: it fails with
	// ErrPreconditionFailed when the object exists (If-None-Match: *).
	IfNoneMatch bool
	// IfMatch, when not empty, makes the Put a compare-and-swap: it fails
	// with ErrPreconditionFailed when the object is absent or its ETag
	// differs. Quotes around the ETag are optional; "*" means "exists".
	IfMatch string
	// ContentSHA256, when not empty, is the SHA-256 of the body in hex (64
	// digits), as the caller computed it. Local then derives the ETag from
	// it instead of hashing the body; it does not check it, so a wrong value
	// gives a wrong ETag. S3 ignores it.
	ContentSHA256 string
}

// Range is an inclusive byte range, like an HTTP Range header: bytes Start
// to End. End -1 means to the end of the object.
type Range struct {
	Start, End int64
}

// Resolve returns the offset and the length of the range in an object of
// size bytes. Start must lie inside the object; an End at or past the end of
// the object is clamped to it, as HTTP and S3 do. Anything else (negative
// Start, End before Start, any range of an empty object) is ErrInvalidRange.
func (r Range) Resolve(size int64) (offset, length int64, err error) {
	if r.Start < 0 || r.End < -1 || (r.End >= 0 && r.End < r.Start) {
		return 0, 0, fmt.Errorf("%w: bytes=%d-%d", ErrInvalidRange, r.Start, r.End)
	}
	if r.Start >= size {
		return 0, 0, fmt.Errorf("%w: bytes=%d-%d of an object of %d bytes", ErrInvalidRange, r.Start, r.End, size)
	}
	end := r.End
	if end == -1 || end >= size {
		end = size - 1
	}
	return r.Start, end - r.Start + 1, nil
}

// String formats the range as the value of an HTTP Range header.
func (r Range) String() string {
	if r.End < 0 {
		return fmt.Sprintf("bytes=%d-", r.Start)
	}
	return fmt.Sprintf("bytes=%d-%d", r.Start, r.End)
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key of the object.
	Key string
	// Size of the whole object in bytes.
	Size int64
	// ETag is the quoted entity tag: it changes when the content does.
	// Treat it as opaque. S3 reports "\"<hex md5>\"" for single-part
	// objects; Local derives its ETags from the SHA-256 of the content
	// (objects stored by older versions of Local keep their MD5 ETags).
	ETag string
	// LastModified is when the object was stored.
	LastModified time.Time
	// ContentType of the object. May be empty in List results.
	ContentType string
	// Metadata is the user metadata with lower-case keys (backends that
	// return another case are normalised). May be nil in List results of
	// backends where it costs a request per object (S3).
	Metadata map[string]string
}

// ValidateKey returns an error wrapping ErrInvalidKey unless key is a key
// every backend accepts: non-empty valid UTF-8 of at most MaxKeyLen bytes,
// no leading '/', no empty, "." or ".." segment (so no trailing '/' and no
// "//"), no NUL and no backslash.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("%w %q: contains NUL or a backslash", ErrInvalidKey, key)
	case key[0] == '/':
		return fmt.Errorf("%w %q: leading '/'", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty segment", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// ValidateUserMetadata returns an error wrapping ErrInvalidMetadata unless md
// is user metadata that survives S3 and HTTP headers: keys made of ASCII
// letters, digits and '-' (any case; they are stored lower-cased and must
// stay distinct once lower-cased), values of printable ASCII without leading
// or trailing spaces, and the sum of the lengths of keys and values at most
// MaxUserMetadataSize.
func ValidateUserMetadata(md map[string]string) error {
	total := 0
	seen := make(map[string]bool, len(md))
	for k, v := range md {
		if k == "" {
			return fmt.Errorf("%w: empty key", ErrInvalidMetadata)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: key %q: only ASCII letters, digits and '-'", ErrInvalidMetadata, k)
			}
		}
		lk := strings.ToLower(k)
		if seen[lk] {
			return fmt.Errorf("%w: key %q given twice in different cases", ErrInvalidMetadata, lk)
		}
		seen[lk] = true
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return fmt.Errorf("%w: value of %q: only printable ASCII", ErrInvalidMetadata, k)
			}
		}
		if v != strings.TrimSpace(v) {
			return fmt.Errorf("%w: value of %q: leading or trailing space", ErrInvalidMetadata, k)
		}
		total += len(k) + len(v)
	}
	if total > MaxUserMetadataSize {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMetadata, total, MaxUserMetadataSize)
	}
	return nil
}

// normalizeETag returns etag with surrounding quotes, as S3 reports it.
func normalizeETag(etag string) string {
	etag = strings.TrimPrefix(etag, "W/")
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag
	}
	return `"` + etag + `"`
}

// lowerKeys returns md with lower-cased keys, or nil when md is empty.
func lowerKeys(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		out[strings.ToLower(k)] = v
	}
	return out
}
