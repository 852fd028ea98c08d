package archive

// The S3 backend: a Store over an S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, versitygw, …) through minio-go.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

var (
	// ErrBucketNotFound is returned when the bucket does not exist (S3
	// NoSuchBucket, or a missing bucket found by S3.Check).
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrAuth is returned when the object store rejects the credentials or
	// the request's signature (AccessDenied, InvalidAccessKeyId,
	// SignatureDoesNotMatch, expired tokens, clock skew), or when the
	// server's TLS certificate is not trusted.
	ErrAuth = errors.New("object store rejected the credentials")
	// ErrInvalidBucket is returned for a bucket name that breaks the S3
	// naming rules (found by NewS3 before any request, or InvalidBucketName
	// from the server).
	ErrInvalidBucket = errors.New("invalid bucket name")
	// ErrChecksum is returned when the object store reports that the
	// payload does not match its Content-MD5 (BadDigest,
	// XAmzContentSHA256Mismatch), or when the ETag it returns is not the MD5
	// of what was sent. The upload did not happen, or must not be trusted:
	// retry it.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNotSupported is returned by S3.SetLifecycle when the object store
	// does not implement the request (NotImplemented, MethodNotAllowed): the
	// caller falls back to deleting old objects itself.
	ErrNotSupported = errors.New("not supported by the object store")
)

// Defaults and limits of S3Config.
const (
	// DefaultS3Region is the region used when S3Config.Region is empty.
	DefaultS3Region = "us-east-1"
	// DefaultS3PartSize is the part size used when S3Config.PartSize is 0.
	DefaultS3PartSize = 16 << 20
	// MinS3PartSize is the smallest part size S3 accepts (every part of a
	// multipart upload but the last must be at least this large).
	MinS3PartSize = 5 << 20
	// MaxS3BufferedBody is the largest body S3.Put accepts from a reader
	// that is not an io.ReaderAt and io.Seeker: such a body is read into
	// memory first, so that it can be hashed and sent.
	MaxS3BufferedBody = 64 << 20
)

// S3Config configures an S3 store. The zero value of every optional field
// is its documented default. Credentials never appear in String, in
// errors or in logs.
type S3Config struct {
	// Endpoint of the object store: "host:port" (HTTPS when Secure is set,
	// else HTTP) or a URL "http://host:port" / "https://host" whose scheme
	// decides. No path, query or user info. Required.
	Endpoint string
	// Bucket name (S3 rules: 3-63 characters of lower-case letters,
	// digits, '.' and '-', starting and ending with a letter or a digit).
	// Required.
	Bucket string
	// Region of the bucket; default DefaultS3Region ("us-east-1"). It is
	// used to sign requests: servers that do not care about regions
	// (MinIO, versitygw) still want the one they were started with.
	Region string
	// PathStyle forces path-style requests (http://host/bucket/key).
	// Default false means automatic: virtual-hosted style
	// (http://bucket.host/key) for AWS, Google and Aliyun endpoints,
	// path style for everything else (IP addresses, localhost, MinIO,
	// versitygw, Ceph…).
	PathStyle bool
	// Secure selects HTTPS for a "host:port" Endpoint; default false
	// (HTTP). With a URL Endpoint the scheme decides, and Secure set with
	// an http:// URL is an error.
	Secure bool
	// CAFile is an optional PEM file of CA certificates trusted besides
	// the system's (a private CA). Only with HTTPS.
	CAFile string
	// AccessKey, SecretKey and SessionToken are static credentials. Set
	// AccessKey and SecretKey together, or neither. SessionToken is
	// optional (temporary credentials).
	AccessKey    string
	SecretKey    string
	SessionToken string
	// CredentialsFile, used when AccessKey is empty, is a file holding the
	// credentials, either as two lines (access key, then secret key, an
	// optional third line with a session token) or as KEY=VALUE lines
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally
	// AWS_SESSION_TOKEN ("export " prefixes, quotes, blank lines, '#'
	// comments and [sections] are allowed; keys are case-insensitive, so
	// the aws_access_key_id lines of an AWS credentials file work too).
	// The file is read again when its modification time changes, so
	// rotated credentials are picked up without a restart.
	//
	// With neither static credentials nor a file, the environment
	// variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_SESSION_TOKEN are used; with none of these NewS3 fails.
	CredentialsFile string
	// CreateBucket makes S3.Check create the bucket when it is missing;
	// default false: a missing bucket is ErrBucketNotFound.
	CreateBucket bool
	// PartSize is the multipart part size in bytes; default
	// DefaultS3PartSize (16 MiB), at least MinS3PartSize (5 MiB). Objects
	// up to PartSize are sent with one PUT, larger ones as a multipart
	// upload of PartSize parts (one buffer of PartSize per upload).
	PartSize int64
	// DisableETagCheck turns off the comparison of the ETag the server
	// returns with the MD5 of what was sent. Set it only for servers whose
	// ETags are not MD5s (AWS buckets with SSE-KMS or SSE-C encryption);
	// the server still verifies every payload against its Content-MD5.
	DisableETagCheck bool
	// Transport, when set, carries the requests instead of the default
	// transport (tests, proxies). CAFile must then be empty.
	Transport http.RoundTripper
}

// String describes the configuration with the credentials redacted.
func (c S3Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "S3Config{Endpoint: %q, Bucket: %q, Region: %q, PathStyle: %t, Secure: %t",
		c.Endpoint, c.Bucket, c.Region, c.PathStyle, c.Secure)
	if c.CAFile != "" {
		fmt.Fprintf(&b, ", CAFile: %q", c.CAFile)
	}
	fmt.Fprintf(&b, ", AccessKey: %s, SecretKey: %s, SessionToken: %s", redacted(c.AccessKey), redacted(c.SecretKey), redacted(c.SessionToken))
	if c.CredentialsFile != "" {
		fmt.Fprintf(&b, ", CredentialsFile: %q", c.CredentialsFile)
	}
	fmt.Fprintf(&b, ", CreateBucket: %t, PartSize: %d}", c.CreateBucket, c.PartSize)
	return b.String()
}

// GoString is String, so that %#v redacts too.
func (c S3Config) GoString() string { return c.String() }

// LogValue makes slog print the redacted String.
func (c S3Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "REDACTED"
}

// S3 is a Store over a bucket of an S3-compatible object store, through
// minio-go. It is safe for concurrent use. Make one with NewS3 or OpenS3.
//
// Opening is cheap and does no I/O on the network: NewS3 validates the
// configuration and builds the client, so an agent starts (and spools)
// while the object store is down. Check asks the server whether the bucket
// exists (creating it when CreateBucket is set); call it at start and
// report its error, and again whenever uploads fail with ErrAuth or
// ErrBucketNotFound. OpenS3 is NewS3 followed by Check, for tools that
// should fail fast.
//
// Behaviour against the Store contract:
//   - Put sends objects up to PartSize with one PUT and larger ones as a
//     multipart upload. Every PUT and part carries Content-MD5, so the
//     server rejects a payload damaged in transit (ErrChecksum); the ETag it
//     returns is compared with the MD5 computed here (single PUT: the MD5 of
//     the object; multipart: the MD5 of the parts' MD5s, "-N"). A
//     conditional Put (IfNoneMatch, IfMatch) is always one PUT, because S3
//     does not carry conditions to the completion of a multipart upload;
//     it is atomic on the server.
//   - The body is read twice (to hash it, then to send it): pass an
//     io.ReaderAt that is also an io.Seeker (*os.File, *bytes.Reader,
//     *strings.Reader, *io.SectionReader); it is read from its current
//     offset with ReadAt, its offset is left unchanged, and it is not
//     closed. Other readers are read into memory first, up to
//     MaxS3BufferedBody bytes. The size is checked before anything is
//     sent: a body shorter or longer than size is ErrSizeMismatch.
//   - minio-go does not retry (MaxRetries 1): the caller retries with its
//     own backoff, asking Retryable, and a retried Put of the same key
//     simply overwrites.
//   - Get and Stat report user metadata with lower-case keys, as Local
//     does (S3 canonicalises them to Camera-Id). List leaves ContentType
//     and Metadata empty (one request per object otherwise): use Stat.
//   - Keys that ValidateKey rejects are refused before any request and
//     skipped in listings. Servers that store objects as files (versitygw's
//     posix backend) refuse the same tree conflicts as Local ("a" and
//     "a/b"): ErrInvalidKey.
//   - Errors are *S3Error values wrapping the archive sentinel they map
//     to (ErrNotFound, ErrAuth, ErrBucketNotFound, …) and the minio-go or
//     network error; Retryable and ErrorClass classify them.
//   - Requests have no overall deadline (a large upload over a slow uplink
//     takes its time): give each call a context with one. Connecting
//     times out after 10 s, waiting for response headers after 2 min.
//
// Observed with versitygw v1.8.0 (posix backend), the gateway the tests run
// against: conditional writes work (If-None-Match: * and If-Match: ETag;
// If-Match: * is answered 412 even when the object exists, so Put does it
// as a compare-and-swap on the current ETag); Content-MD5 is verified
// (BadDigest); ETags are MD5s, "md5-N" for multipart objects; user
// metadata keys come back canonicalised (Camera-Id) and are lower-cased
// here; lifecycle configuration is NotImplemented (SetLifecycle returns
// ErrNotSupported); an unknown access key is XAdminUserNotFound (ErrAuth),
// but a bare 404 on HEAD requests, so Check confirms a missing bucket with
// a listing; a refused PUT whose body is larger than 256 KiB may reach the
// client as a connection reset (a retryable network error) instead of its
// 412 or 403, because the gateway drains at most 256 KiB of a refused body.
type S3 struct {
	cfg       S3Config
	endpoint  string // host:port
	client    *minio.Client
	core      minio.Core
	transport *http.Transport // nil when cfg.Transport was given
	creds     *credentials.Credentials
	partSize  int64
}

var _ Store = (*S3)(nil)

// String describes the store without credentials.
func (s *S3) String() string {
	scheme := "http"
	if s.cfg.Secure {
		scheme = "https"
	}
	return fmt.Sprintf("s3://%s (%s://%s, region %s)", s.cfg.Bucket, scheme, s.endpoint, s.cfg.Region)
}

// Bucket returns the bucket's name.
func (s *S3) Bucket() string { return s.cfg.Bucket }

// Client returns the underlying minio-go client, for requests the Store
// interface does not cover.
func (s *S3) Client() *minio.Client { return s.client }

// NewS3 validates cfg and builds the store. It sends no request: see S3
// for when to call Check. Configuration errors name the field.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultS3PartSize
	}
	if err := ValidateBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3 config: Bucket: %w", err)
	}
	if cfg.PartSize < MinS3PartSize || cfg.PartSize > 5<<30 {
		return nil, fmt.Errorf("s3 config: PartSize %d: must be between %d (5 MiB) and %d (5 GiB)", cfg.PartSize, MinS3PartSize, int64(5<<30))
	}
	for _, r := range cfg.Region {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r >= 'A' && r <= 'Z') {
			return nil, fmt.Errorf("s3 config: Region %q: only letters, digits, '-' and '_'", cfg.Region)
		}
	}
	host, secure, err := parseS3Endpoint(cfg.Endpoint, cfg.Secure)
	if err != nil {
		return nil, err
	}
	cfg.Secure = secure
	if cfg.CAFile != "" && !secure {
		return nil, fmt.Errorf("s3 config: CAFile is set but Endpoint %q is not HTTPS", cfg.Endpoint)
	}
	if cfg.CAFile != "" && cfg.Transport != nil {
		return nil, errors.New("s3 config: CAFile and Transport are both set: configure the CA in the Transport")
	}
	creds, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	s := &S3{cfg: cfg, endpoint: host, creds: creds, partSize: cfg.PartSize}
	rt := cfg.Transport
	if rt == nil {
		tr, err := newS3Transport(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		s.transport, rt = tr, tr
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	s.client, err = minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    expectContinue{rt},
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   1, // Retryable and the caller's backoff retry, not minio-go
	})
	if err != nil {
		return nil, fmt.Errorf("s3 config: Endpoint %q: %v", cfg.Endpoint, err)
	}
	s.core = minio.Core{Client: s.client}
	return s, nil
}

// OpenS3 is NewS3 followed by Check: it fails when the object store is
// unreachable, rejects the credentials, or has no such bucket (unless
// CreateBucket is set).
func OpenS3(ctx context.Context, cfg S3Config) (*S3, error) {
	s, err := NewS3(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Check(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the idle connections. The store must not be used after.
func (s *S3) Close() error {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	} else if c, ok := s.cfg.Transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// Check asks the object store whether the bucket exists and the
// credentials are accepted (HEAD bucket), and creates the bucket when it
// is missing and CreateBucket is set. Errors wrap ErrBucketNotFound,
// ErrAuth, ErrInvalidBucket, or are network/server errors for which
// Retryable is true (the store is down: keep spooling and check again).
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.wrap("check", "", err)
	}
	if !ok {
		// HEAD has no body, so a 404 may also be an unknown access key
		// (versitygw): ask again with a listing, whose errors have a code.
		err := s.probeList(ctx)
		if err == nil {
			return nil // created meanwhile
		}
		if e := s.wrap("check", "", err); !errors.Is(e, ErrBucketNotFound) {
			return e
		}
	} else {
		return nil
	}
	if !s.cfg.CreateBucket {
		return &S3Error{Op: "check", Bucket: s.cfg.Bucket, Code: minio.NoSuchBucket, Status: http.StatusNotFound, Kind: ErrBucketNotFound,
			msg: fmt.Sprintf("s3 check: bucket %q does not exist at %s (create it, or set CreateBucket): %v", s.cfg.Bucket, s.endpoint, ErrBucketNotFound)}
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return s.wrap("create bucket", "", err)
	}
	return nil
}

// probeList lists at most one key of the bucket.
func (s *S3) probeList(ctx context.Context) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	noOwner := false
	for o := range s.client.ListObjectsIter(lctx, s.cfg.Bucket, minio.ListObjectsOptions{MaxKeys: 1, FetchOwner: &noOwner}) {
		if o.Err != nil {
			return o.Err
		}
		break
	}
	return ctx.Err()
}

// ValidateBucketName returns an error wrapping ErrInvalidBucket unless name
// follows the S3 bucket naming rules: 3 to 63 characters of lower-case
// letters, digits, '.' and '-', starting and ending with a letter or a
// digit, no "..", not shaped like an IPv4 address, no "xn--" prefix and no
// "-s3alias" or "--ol-s3" suffix.
func ValidateBucketName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidBucket)
	case len(name) < 3 || len(name) > 63:
		return fmt.Errorf("%w %q: %d characters, must be 3 to 63", ErrInvalidBucket, name, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("%w %q: only lower-case letters, digits, '.' and '-'", ErrInvalidBucket, name)
		}
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	switch {
	case !alnum(name[0]) || !alnum(name[len(name)-1]):
		return fmt.Errorf("%w %q: must start and end with a letter or a digit", ErrInvalidBucket, name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%w %q: two adjacent periods", ErrInvalidBucket, name)
	case net.ParseIP(name) != nil:
		return fmt.Errorf("%w %q: shaped like an IP address", ErrInvalidBucket, name)
	case strings.HasPrefix(name, "xn--") || strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3"):
		return fmt.Errorf("%w %q: reserved prefix or suffix", ErrInvalidBucket, name)
	}
	return nil
}

// parseS3Endpoint returns host:port and whether to use TLS.
func parseS3Endpoint(ep string, secure bool) (string, bool, error) {
	if ep == "" {
		return "", false, errors.New("s3 config: Endpoint is empty: host:port or an http(s):// URL")
	}
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			// url.Parse errors quote the input, which may hold user info.
			return "", false, errors.New("s3 config: Endpoint is not a valid URL")
		}
		if u.User != nil {
			return "", false, errors.New("s3 config: Endpoint must not carry credentials: use AccessKey/SecretKey or CredentialsFile")
		}
		switch u.Scheme {
		case "https":
			secure = true
		case "http":
			if secure {
				return "", false, fmt.Errorf("s3 config: Secure is set but Endpoint %q is http://", ep)
			}
		default:
			return "", false, fmt.Errorf("s3 config: Endpoint %q: scheme must be http or https", ep)
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", false, fmt.Errorf("s3 config: Endpoint %q: only scheme://host[:port], no path or query", ep)
		}
		ep = u.Host
	}
	if strings.ContainsAny(ep, "/?#@ ") {
		return "", false, fmt.Errorf("s3 config: Endpoint %q: want host:port or an http(s):// URL", ep)
	}
	host := ep
	if h, port, err := net.SplitHostPort(ep); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", false, fmt.Errorf("s3 config: Endpoint %q: bad port", ep)
		}
		host = h
	}
	if host == "" {
		return "", false, fmt.Errorf("s3 config: Endpoint %q: no host", ep)
	}
	return ep, secure, nil
}

func newS3Transport(caFile string) (*http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("s3 config: CAFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 config: CAFile %q: no PEM certificate in it", caFile)
		}
		tlsConf.RootCAs = pool
	}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second, // an unreachable store fails fast
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConf,
		// Transparent gzip would change sizes and ranges.
		DisableCompression: true,
	}, nil
}

// credentials resolves the credentials: static, file, then environment.
func (c S3Config) credentials() (*credentials.Credentials, error) {
	switch {
	case c.AccessKey != "" || c.SecretKey != "":
		if c.AccessKey == "" {
			return nil, errors.New("s3 config: SecretKey is set but AccessKey is empty")
		}
		if c.SecretKey == "" {
			return nil, errors.New("s3 config: AccessKey is set but SecretKey is empty")
		}
		return credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken), nil
	case c.SessionToken != "":
		return nil, errors.New("s3 config: SessionToken is set without AccessKey and SecretKey")
	case c.CredentialsFile != "":
		p := &fileCreds{path: c.CredentialsFile}
		if _, err := p.load(); err != nil {
			return nil, err
		}
		return credentials.New(p), nil
	}
	ak, sk := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" || sk == "" {
		return nil, errors.New("s3 config: no credentials: set AccessKey and SecretKey, or CredentialsFile, or the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return credentials.NewStaticV4(ak, sk, os.Getenv("AWS_SESSION_TOKEN")), nil
}

// fileCreds is a credentials.Provider that reads S3Config.CredentialsFile
// and reads it again when the file's modification time or size changes.
type fileCreds struct {
	path string

	mu    sync.Mutex
	stamp string // modification time and size at the last read
}

func (p *fileCreds) fileStamp() string {
	fi, err := os.Stat(p.path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
}

func (p *fileCreds) load() (credentials.Value, error) {
	stamp := p.fileStamp()
	b, err := os.ReadFile(p.path)
	if err != nil {
		return credentials.Value{}, fmt.Errorf("s3 config: CredentialsFile: %w", err)
	}
	v, err := parseCredentialsFile(b)
	if err != nil {
		return credentials.Value{}, fmt.Errorf("s3 config: CredentialsFile %q: %w", p.path, err)
	}
	p.mu.Lock()
	p.stamp = stamp
	p.mu.Unlock()
	return v, nil
}

// Retrieve implements credentials.Provider.
func (p *fileCreds) Retrieve() (credentials.Value, error) { return p.load() }

// RetrieveWithCredContext implements credentials.Provider.
func (p *fileCreds) RetrieveWithCredContext(*credentials.CredContext) (credentials.Value, error) {
	return p.load()
}

// IsExpired implements credentials.Provider: the file changed.
func (p *fileCreds) IsExpired() bool {
	stamp := p.fileStamp()
	p.mu.Lock()
	defer p.mu.Unlock()
	return stamp != "" && stamp != p.stamp
}

// parseCredentialsFile parses the two formats of S3Config.CredentialsFile.
// Its errors never quote the file's content.
func parseCredentialsFile(b []byte) (credentials.Value, error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return credentials.Value{}, err
	}
	unquote := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
			s = s[1 : len(s)-1]
		}
		return s
	}
	v := credentials.Value{SignerType: credentials.SignatureV4}
	kv := 0
	for _, line := range lines {
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		kv++
		k = strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(k), "export ")))
		switch k {
		case "AWS_ACCESS_KEY_ID":
			v.AccessKeyID = unquote(val)
		case "AWS_SECRET_ACCESS_KEY":
			v.SecretAccessKey = unquote(val)
		case "AWS_SESSION_TOKEN":
			v.SessionToken = unquote(val)
		}
	}
	if kv == 0 {
		// Two (or three) bare lines: access key, secret key, session token.
		if len(lines) < 2 || len(lines) > 3 {
			return credentials.Value{}, fmt.Errorf("want two lines (access key, secret key) or AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines; found %d lines", len(lines))
		}
		v.AccessKeyID, v.SecretAccessKey = unquote(lines[0]), unquote(lines[1])
		if len(lines) == 3 {
			v.SessionToken = unquote(lines[2])
		}
	}
	switch {
	case v.AccessKeyID == "":
		return credentials.Value{}, errors.New("no access key (AWS_ACCESS_KEY_ID)")
	case v.SecretAccessKey == "":
		return credentials.Value{}, errors.New("no secret key (AWS_SECRET_ACCESS_KEY)")
	case strings.ContainsAny(v.AccessKeyID+v.SecretAccessKey+v.SessionToken, " \t"):
		return credentials.Value{}, errors.New("a credential contains white space")
	}
	return v, nil
}

// Put implements Store. See S3 for how the body is read and checked. The
// returned LastModified is the local clock when the upload completed,
// truncated to the second (a PUT response carries none); Stat reports the
// server's.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("%w: negative size %d for %q", ErrSizeMismatch, size, key)
	}
	if err := ValidateUserMetadata(opts.Metadata); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	body, err := sectionOf(ctx, key, r, size)
	if err != nil {
		return ObjectInfo{}, err
	}
	conditional := opts.IfNoneMatch || opts.IfMatch != ""
	multipart := size > s.partSize && !conditional
	sums, err := hashBody(ctx, key, body, size, s.partSize, multipart)
	if err != nil {
		return ObjectInfo{}, err
	}

	ct := opts.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	var userMeta map[string]string
	if len(opts.Metadata) > 0 {
		// Prefixed here, so that no key is taken for a standard header.
		userMeta = make(map[string]string, len(opts.Metadata))
		for k, v := range opts.Metadata {
			userMeta["x-amz-meta-"+strings.ToLower(k)] = v
		}
	}
	send := func(ifMatch string) (minio.UploadInfo, error) {
		// A fresh reader per attempt, fenced when the attempt returns:
		// net/http may still be writing a body after RoundTrip returned
		// (the server answered early), and must neither race the next
		// attempt nor read the caller's body after Put returned.
		rd := &fencedReader{r: io.NewSectionReader(body, 0, size)}
		defer rd.fence()
		popts := minio.PutObjectOptions{
			ContentType:  ct,
			UserMetadata: userMeta,
			// Content-MD5 on every PUT and part: the server verifies the
			// payload (BadDigest). The payload itself is not signed
			// (UNSIGNED-PAYLOAD; Content-MD5 is a signed header): no
			// SHA-256 pass over every byte on the gateway, and a payload
			// damaged in transit is a retryable BadDigest, where the
			// chunk signatures of a streaming upload would report
			// SignatureDoesNotMatch, an auth error.
			SendContentMd5:       true,
			DisableContentSha256: true,
			PartSize:             uint64(s.partSize),
			DisableMultipart:     conditional,
		}
		if opts.IfNoneMatch {
			popts.SetMatchETagExcept("*")
		}
		if ifMatch != "" {
			popts.SetMatchETag(strings.Trim(strings.TrimPrefix(ifMatch, "W/"), `"`))
		}
		if multipart {
			return s.client.PutObject(ctx, s.cfg.Bucket, key, rd, size, popts)
		}
		return s.core.PutObject(ctx, s.cfg.Bucket, key, rd, size, base64.StdEncoding.EncodeToString(sums.whole), "", popts)
	}

	var up minio.UploadInfo
	for attempt := 1; ; attempt++ {
		ifMatch := opts.IfMatch
		if ifMatch == "*" {
			// "Exists" as a compare-and-swap on the current ETag: servers
			// do not agree on If-Match: * for writes (versitygw and
			// gofakes3 answer 412 when the object exists).
			st, err := s.Stat(ctx, key)
			if errors.Is(err, ErrNotFound) {
				return ObjectInfo{}, &S3Error{Op: "put", Bucket: s.cfg.Bucket, Key: key, Kind: ErrPreconditionFailed, Err: err,
					msg: fmt.Sprintf("s3 put %q: %v: the object does not exist (If-Match: *)", key, ErrPreconditionFailed)}
			}
			if err != nil {
				return ObjectInfo{}, err
			}
			ifMatch = st.ETag
		}
		up, err = send(ifMatch)
		if err == nil {
			break
		}
		e := s.wrap("put", key, err)
		if opts.IfMatch != "" && errors.Is(e, ErrNotFound) {
			// AWS answers If-Match on a missing key with 404.
			e.Kind = ErrPreconditionFailed
			e.msg = fmt.Sprintf("s3 put %q: %v: the object does not exist (If-Match)", key, ErrPreconditionFailed)
		}
		// Retried here: If-Match: * lost a race with another writer (the
		// object still exists); a posix-backed server (versitygw) reports
		// a tree conflict when a concurrent Delete prunes the directory it
		// just made. A real conflict persists.
		again := opts.IfMatch == "*" && errors.Is(e, ErrPreconditionFailed) && attempt < 5 ||
			isTreeConflict(e) && attempt < 3
		if !again {
			return ObjectInfo{}, e
		}
		select {
		case <-ctx.Done():
			return ObjectInfo{}, e
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
	etag := strings.Trim(up.ETag, `"`)
	if !s.cfg.DisableETagCheck && !sums.matches(etag) {
		return ObjectInfo{}, &S3Error{Op: "put", Bucket: s.cfg.Bucket, Key: key, Kind: ErrChecksum,
			msg: fmt.Sprintf("s3 put %q: %v: the server returned ETag %q, the content's MD5 is %s (set DisableETagCheck if this server's ETags are not MD5s)",
				key, ErrChecksum, etag, sums.expected())}
	}
	return ObjectInfo{
		Key: key, Size: size, ETag: normalizeETag(etag), LastModified: time.Now().UTC().Truncate(time.Second),
		ContentType: ct, Metadata: lowerKeys(opts.Metadata),
	}, nil
}

// errPutReturned is what a request body still being read after its Put
// returned gets.
var errPutReturned = errors.New("archive: read of a Put body after the Put returned")

// fencedReader reads r until fence is called, and fails after.
type fencedReader struct {
	mu     sync.Mutex
	r      *io.SectionReader
	fenced bool
}

func (f *fencedReader) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		return 0, errPutReturned
	}
	return f.r.Read(p)
}

func (f *fencedReader) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		return 0, errPutReturned
	}
	return f.r.Seek(offset, whence)
}

func (f *fencedReader) fence() {
	f.mu.Lock()
	f.fenced = true
	f.mu.Unlock()
}

// expectContinueMin is the body size from which a PUT asks the server to
// accept it before it is sent (Expect: 100-continue).
const expectContinueMin = 1 << 20

// expectContinue adds "Expect: 100-continue" to PUTs of large bodies: a
// server that rejects the request (412 for a condition, 403) answers
// before the body is sent, instead of resetting the connection in the
// middle of it (which would look like a network error). It costs one
// round trip per large PUT, and spares sending a body that would be
// refused over a slow uplink.
type expectContinue struct{ rt http.RoundTripper }

func (e expectContinue) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.ContentLength >= expectContinueMin && req.Header.Get("Expect") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Expect", "100-continue")
	}
	return e.rt.RoundTrip(req)
}

func (e expectContinue) CloseIdleConnections() {
	if c, ok := e.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// sectionOf returns the size bytes of r as a section that can be read
// again, checking that r holds exactly size bytes.
func sectionOf(ctx context.Context, key string, r io.Reader, size int64) (*io.SectionReader, error) {
	if r == nil {
		r = strings.NewReader("")
	}
	if ra, ok := r.(io.ReaderAt); ok {
		if sk, ok := r.(io.Seeker); ok {
			cur, err1 := sk.Seek(0, io.SeekCurrent)
			end, err2 := sk.Seek(0, io.SeekEnd)
			_, err3 := sk.Seek(cur, io.SeekStart)
			if err := errors.Join(err1, err2, err3); err == nil {
				switch n := end - cur; {
				case n < size:
					return nil, fmt.Errorf("%w: %q: body has %d bytes, declared %d", ErrSizeMismatch, key, n, size)
				case n > size:
					return nil, fmt.Errorf("%w: %q: body is longer than the declared %d bytes", ErrSizeMismatch, key, size)
				}
				return io.NewSectionReader(ra, cur, size), nil
			}
			// Not really seekable (a pipe): read it into memory.
		}
	}
	if size > MaxS3BufferedBody {
		return nil, fmt.Errorf("put %q: a body of %d bytes must be an io.ReaderAt and io.Seeker (*os.File, *bytes.Reader): other readers are buffered in memory, up to %d bytes", key, size, MaxS3BufferedBody)
	}
	buf := make([]byte, size)
	body := ctxReader{ctx, r}
	n, err := io.ReadFull(body, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("%w: %q: body has %d bytes, declared %d", ErrSizeMismatch, key, n, size)
	}
	if err != nil {
		return nil, fmt.Errorf("put %q: %w", key, err)
	}
	var probe [1]byte
	if k, err := io.ReadFull(body, probe[:]); k > 0 {
		return nil, fmt.Errorf("%w: %q: body is longer than the declared %d bytes", ErrSizeMismatch, key, size)
	} else if err != nil && err != io.EOF {
		return nil, fmt.Errorf("put %q: %w", key, err)
	}
	return io.NewSectionReader(bytes.NewReader(buf), 0, size), nil
}

// bodySums are the MD5 of a body and, for a multipart upload, of its parts.
type bodySums struct {
	whole []byte
	parts [][]byte // nil for a single PUT
}

// expected returns the ETag the server should report.
func (b bodySums) expected() string {
	if b.parts == nil {
		return hex.EncodeToString(b.whole)
	}
	h := md5.New()
	for _, p := range b.parts {
		h.Write(p)
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(b.parts))
}

// matches reports whether etag (unquoted) is the expected ETag. For a
// multipart upload the MD5 of the whole object is accepted too (some
// servers report that).
func (b bodySums) matches(etag string) bool {
	return strings.EqualFold(etag, b.expected()) || (b.parts != nil && strings.EqualFold(etag, hex.EncodeToString(b.whole)))
}

// hashBody reads body once and returns its MD5, and the MD5 of each part
// when it will be sent as a multipart upload of partSize parts (the parts
// minio-go cuts). It leaves body at its start.
func hashBody(ctx context.Context, key string, body *io.SectionReader, size, partSize int64, multipart bool) (bodySums, error) {
	whole := md5.New()
	var sums bodySums
	partLen := size
	if multipart {
		_, ps, _, err := minio.OptimalPartInfo(size, uint64(partSize))
		if err != nil {
			return bodySums{}, fmt.Errorf("put %q: %w", key, err)
		}
		partLen = ps
	}
	buf := make([]byte, 256<<10)
	var total int64
	for total < size || (total == 0 && size == 0) {
		var w io.Writer = whole
		part := md5.New()
		if multipart {
			w = io.MultiWriter(whole, part)
		}
		n, err := io.CopyBuffer(w, io.LimitReader(ctxReader{ctx, body}, min(partLen, size-total)), buf)
		total += n
		if err != nil {
			return bodySums{}, fmt.Errorf("put %q: %w", key, err)
		}
		if multipart {
			sums.parts = append(sums.parts, part.Sum(nil))
		}
		if n == 0 {
			break
		}
	}
	if total != size {
		return bodySums{}, fmt.Errorf("%w: %q: body has %d bytes, declared %d", ErrSizeMismatch, key, total, size)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return bodySums{}, fmt.Errorf("put %q: %w", key, err)
	}
	sums.whole = whole.Sum(nil)
	return sums, nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, err
	}
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	var gopts minio.GetObjectOptions
	if rng != nil {
		if rng.Start < 0 || rng.End < -1 || (rng.End >= 0 && rng.End < rng.Start) {
			return nil, ObjectInfo{}, fmt.Errorf("get %q: %w: bytes=%d-%d", key, ErrInvalidRange, rng.Start, rng.End)
		}
		gopts.Set("Range", rng.String()) // not SetRange: SetRange(0, -1) asks for the last byte
	}
	body, oi, h, err := s.core.GetObject(ctx, s.cfg.Bucket, key, gopts)
	if err != nil {
		return nil, ObjectInfo{}, s.wrap("get", key, err)
	}
	info := s.objectInfo(key, oi)
	if rng == nil {
		return body, info, nil
	}
	if total, ok := contentRangeTotal(h.Get("Content-Range")); ok {
		info.Size = total
		return body, info, nil
	}
	// The server ignored the range and sent the whole object (servers do
	// for a range of an empty object): apply it here.
	off, n, err := rng.Resolve(info.Size)
	if err != nil {
		body.Close()
		return nil, ObjectInfo{}, fmt.Errorf("get %q: %w", key, err)
	}
	if _, err := io.CopyN(io.Discard, body, off); err != nil {
		body.Close()
		return nil, ObjectInfo{}, s.wrap("get", key, err)
	}
	return limitedReadCloser{io.LimitReader(body, n), body}, info, nil
}

type limitedReadCloser struct {
	io.Reader
	io.Closer
}

// contentRangeTotal returns the complete length of a Content-Range header
// ("bytes 2-4/10" → 10).
func contentRangeTotal(v string) (int64, bool) {
	_, total, ok := strings.Cut(v, "/")
	if !ok || total == "*" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	return n, err == nil && n >= 0
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.wrap("stat", key, err)
	}
	return s.objectInfo(key, oi), nil
}

func (s *S3) objectInfo(key string, oi minio.ObjectInfo) ObjectInfo {
	ct := oi.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	return ObjectInfo{
		Key: key, Size: oi.Size, ETag: normalizeETag(oi.ETag), LastModified: oi.LastModified.UTC(),
		ContentType: ct, Metadata: lowerKeys(oi.UserMetadata),
	}
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{})
	if err != nil {
		e := s.wrap("delete", key, err)
		if errors.Is(e, ErrNotFound) {
			return nil
		}
		return e
	}
	return nil
}

// List implements Store with ListObjectsV2 (StartAfter, no delimiter),
// pages of at most min(limit, 1000) keys. ContentType and Metadata are left
// empty. Keys that ValidateKey rejects are skipped.
func (s *S3) List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	noOwner := false
	var out []ObjectInfo
	for o := range s.client.ListObjectsIter(lctx, s.cfg.Bucket, minio.ListObjectsOptions{
		Prefix: prefix, StartAfter: after, Recursive: true, MaxKeys: min(limit, 1000), FetchOwner: &noOwner,
	}) {
		if o.Err != nil {
			return nil, s.wrap("list", prefix, o.Err)
		}
		if o.Key <= after || !strings.HasPrefix(o.Key, prefix) || ValidateKey(o.Key) != nil {
			continue
		}
		out = append(out, ObjectInfo{Key: o.Key, Size: o.Size, ETag: normalizeETag(o.ETag), LastModified: o.LastModified.UTC()})
		if len(out) >= limit {
			break
		}
	}
	// The iterator ends quietly when the context is done.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// SetLifecycle makes the object store delete the objects under prefix
// days days after they were written (an S3 lifecycle expiration rule);
// days <= 0 removes the rule. The rule's ID is derived from the prefix, so
// calling it again updates the rule, and rules of other prefixes are kept.
// It returns an error wrapping ErrNotSupported when the server does not
// implement lifecycle configuration (versitygw does not, for one): the
// caller then deletes old objects itself.
func (s *S3) SetLifecycle(ctx context.Context, prefix string, days int) error {
	cfg, err := s.client.GetBucketLifecycle(ctx, s.cfg.Bucket)
	if err != nil {
		switch e := s.wrapLifecycle(err); {
		case minio.ToErrorResponse(err).Code == "NoSuchLifecycleConfiguration":
			cfg = lifecycle.NewConfiguration()
		default:
			return e
		}
	}
	sum := sha256.Sum256([]byte(prefix))
	id := "tributary-expire-" + hex.EncodeToString(sum[:8])
	rules := cfg.Rules[:0]
	for _, r := range cfg.Rules {
		if r.ID != id {
			rules = append(rules, r)
		}
	}
	if days > 0 {
		rules = append(rules, lifecycle.Rule{
			ID:         id,
			Status:     "Enabled",
			RuleFilter: lifecycle.Filter{Prefix: prefix},
			Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(days)},
		})
	}
	cfg.Rules = rules
	if err := s.client.SetBucketLifecycle(ctx, s.cfg.Bucket, cfg); err != nil {
		return s.wrapLifecycle(err)
	}
	return nil
}

func (s *S3) wrapLifecycle(err error) error {
	e := s.wrap("lifecycle", "", err)
	switch er := minio.ToErrorResponse(err); {
	case er.Code == "NotImplemented" || er.Code == "MethodNotAllowed" ||
		er.StatusCode == http.StatusNotImplemented || er.StatusCode == http.StatusMethodNotAllowed:
		e.Kind = ErrNotSupported
		e.msg = fmt.Sprintf("s3 lifecycle: %v: %s (%s)", ErrNotSupported, er.Code, er.Message)
	}
	return e
}

// S3Error is an error of the S3 store: an S3 error response or a network
// error, with the archive sentinel it maps to. Its message never holds
// credentials.
type S3Error struct {
	// Op is the operation: "put", "get", "stat", "delete", "list",
	// "check", "create bucket", "lifecycle".
	Op string
	// Bucket and Key (or prefix) of the request.
	Bucket, Key string
	// Code is the S3 error code ("NoSuchKey", "SlowDown", …), empty for
	// network errors.
	Code string
	// Status is the HTTP status, 0 when there was no response.
	Status int
	// Kind is the archive sentinel the error maps to (ErrNotFound,
	// ErrAuth, …), or nil.
	Kind error
	// Err is the underlying minio-go or network error, or nil.
	Err error

	msg string
}

func (e *S3Error) Error() string { return e.msg }

// Unwrap returns Kind and Err, for errors.Is and errors.As.
func (e *S3Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// isTreeConflict reports the errors of posix-backed servers for a key that
// conflicts with the directory tree ("a" and "a/b").
func isTreeConflict(err error) bool {
	var e *S3Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "ObjectParentIsFile", "ExistingObjectIsDirectory", "DirectoryObjectContainsData":
		return true
	}
	return false
}

// S3 error codes and the sentinels they map to.
var s3CodeKinds = map[string]error{
	"NoSuchKey":                    ErrNotFound,
	"NoSuchBucket":                 ErrBucketNotFound,
	"AccessDenied":                 ErrAuth,
	"AllAccessDisabled":            ErrAuth,
	"AccountProblem":               ErrAuth,
	"InvalidAccessKeyId":           ErrAuth,
	"XAdminUserNotFound":           ErrAuth, // versitygw: unknown access key
	"SignatureDoesNotMatch":        ErrAuth,
	"InvalidToken":                 ErrAuth,
	"ExpiredToken":                 ErrAuth,
	"TokenRefreshRequired":         ErrAuth,
	"InvalidSecurity":              ErrAuth,
	"MissingSecurityHeader":        ErrAuth,
	"AuthorizationHeaderMalformed": ErrAuth,
	"RequestTimeTooSkewed":         ErrAuth,
	"InvalidBucketName":            ErrInvalidBucket,
	"BucketAlreadyExists":          ErrInvalidBucket, // taken by another account
	"PreconditionFailed":           ErrPreconditionFailed,
	"InvalidRange":                 ErrInvalidRange,
	"BadDigest":                    ErrChecksum,
	"InvalidDigest":                ErrChecksum,
	"XAmzContentSHA256Mismatch":    ErrChecksum,
	"KeyTooLongError":              ErrInvalidKey,
	"InvalidURI":                   ErrInvalidKey,
	"ObjectParentIsFile":           ErrInvalidKey, // posix-backed servers: tree conflicts
	"ExistingObjectIsDirectory":    ErrInvalidKey,
	"DirectoryObjectContainsData":  ErrInvalidKey,
	"MetadataTooLarge":             ErrInvalidMetadata,
}

// wrap turns a minio-go or network error into an *S3Error.
func (s *S3) wrap(op, key string, err error) *S3Error {
	e := &S3Error{Op: op, Bucket: s.cfg.Bucket, Key: key, Err: err}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		e.Code, e.Status = er.Code, er.StatusCode
		e.Kind = s3CodeKinds[er.Code]
		if e.Kind == nil {
			switch er.StatusCode {
			case http.StatusNotFound:
				if key != "" && op != "list" {
					e.Kind = ErrNotFound
				}
			case http.StatusForbidden:
				e.Kind = ErrAuth
			case http.StatusPreconditionFailed:
				e.Kind = ErrPreconditionFailed
			case http.StatusRequestedRangeNotSatisfiable:
				e.Kind = ErrInvalidRange
			}
		}
	} else if isCertError(err) {
		e.Kind = ErrAuth
	}
	var b strings.Builder
	fmt.Fprintf(&b, "s3 %s", op)
	if key != "" {
		fmt.Fprintf(&b, " %q", key)
	}
	fmt.Fprintf(&b, " (bucket %s)", s.cfg.Bucket)
	if e.Kind != nil {
		fmt.Fprintf(&b, ": %v", e.Kind)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
		if er.Message != "" && er.Message != e.Code {
			fmt.Fprintf(&b, ": %s", er.Message)
		}
		if e.Status != 0 {
			fmt.Fprintf(&b, " (HTTP %d)", e.Status)
		}
	} else {
		fmt.Fprintf(&b, ": %v", err)
	}
	e.msg = s.redact(b.String())
	return e
}

// redact removes the credentials from a message, should a server echo them.
func (s *S3) redact(msg string) string {
	if v, err := s.creds.GetWithContext(&credentials.CredContext{}); err == nil {
		for _, secret := range []string{v.SecretAccessKey, v.SessionToken, v.AccessKeyID} {
			if len(secret) >= 4 {
				msg = strings.ReplaceAll(msg, secret, "REDACTED")
			}
		}
	}
	return msg
}

func isCertError(err error) bool {
	var unknownAuth x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownAuth) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}

// Error classes of ErrorClass.
const (
	ClassNetwork      = "network"      // no response: refused, reset, timeout, DNS, cut body
	ClassServer       = "server"       // 5xx, InternalError, ServiceUnavailable
	ClassThrottled    = "throttled"    // 429, SlowDown
	ClassAuth         = "auth"         // ErrAuth: credentials, signature, clock skew, TLS trust
	ClassBucket       = "bucket"       // ErrBucketNotFound, ErrInvalidBucket
	ClassPrecondition = "precondition" // ErrPreconditionFailed
	ClassClient       = "client"       // other 4xx and the request's own faults (key, range, size, metadata)
	ClassChecksum     = "checksum"     // ErrChecksum
	ClassOther        = "other"        // anything else, including context cancellation
)

// ErrorClass returns a short label for err, for metrics and logs: one of
// the Class* constants, or "" for nil. It works on the errors of every
// Store (Local's too) and on raw minio-go and network errors.
func ErrorClass(err error) string {
	class, _ := classify(err)
	return class
}

// Retryable reports whether the same request may succeed later: network
// errors (refused, reset, timeouts, DNS, EOF), 5xx, throttling (429,
// SlowDown) and checksum mismatches are retryable; ErrAuth,
// ErrBucketNotFound, ErrInvalidBucket, ErrPreconditionFailed, ErrInvalidKey,
// ErrNotFound and the other 4xx are not, nor is a canceled context or an
// unknown error.
//
// It is the one retry classifier of the S3 client (minio-go's own retries
// are off). Not retryable does not mean "drop the data": ErrAuth and
// ErrBucketNotFound are about the whole store (keep spooling, run Check
// again later), the others about one request.
func Retryable(err error) bool {
	_, retry := classify(err)
	return retry
}

func classify(err error) (class string, retry bool) {
	if err == nil {
		return "", false
	}
	if errors.Is(err, context.Canceled) {
		return ClassOther, false
	}
	switch {
	case errors.Is(err, ErrAuth):
		return ClassAuth, false
	case errors.Is(err, ErrBucketNotFound), errors.Is(err, ErrInvalidBucket):
		return ClassBucket, false
	case errors.Is(err, ErrPreconditionFailed):
		return ClassPrecondition, false
	case errors.Is(err, ErrChecksum):
		return ClassChecksum, true
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalidKey), errors.Is(err, ErrInvalidRange),
		errors.Is(err, ErrSizeMismatch), errors.Is(err, ErrInvalidMetadata), errors.Is(err, ErrNotSupported):
		return ClassClient, false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code != "" || er.StatusCode != 0) {
		switch er.Code {
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "TooManyRequests", "RequestLimitExceeded", "Throttling", "ThrottlingException":
			return ClassThrottled, true
		case "InternalError", "ServiceUnavailable", "ServerBusy", "XMinioServerNotInitialized":
			return ClassServer, true
		case "RequestTimeout", "IncompleteBody", "ExpiredRequest":
			return ClassNetwork, true
		}
		if kind := s3CodeKinds[er.Code]; kind != nil {
			return classify(kind)
		}
		switch {
		case er.StatusCode == http.StatusTooManyRequests:
			return ClassThrottled, true
		case er.StatusCode >= 500:
			return ClassServer, true
		case er.StatusCode == http.StatusRequestTimeout:
			return ClassNetwork, true
		case er.StatusCode == http.StatusForbidden:
			return ClassAuth, false
		case er.StatusCode == http.StatusPreconditionFailed:
			return ClassPrecondition, false
		case er.StatusCode >= 400:
			return ClassClient, false
		}
	}
	if isCertError(err) {
		return ClassAuth, false
	}
	if isNetworkError(err) {
		return ClassNetwork, true
	}
	return ClassOther, false
}

// isNetworkError reports errors of the connection, not of the request.
func isNetworkError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EHOSTDOWN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return true
	}
	// url.Error is a net.Error too, whatever it wraps: look inside.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "broken pipe", "connection refused", "server closed idle connection",
		"Connection closed by foreign host", "TLS handshake timeout", "i/o timeout", "unexpected EOF", "http2: "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Retryable is the package's Retryable, as a method, for callers that hold
// a Store and ask it how to treat its errors.
func (s *S3) Retryable(err error) bool { return Retryable(err) }

// ErrorClass is the package's ErrorClass, as a method (see Retryable).
func (s *S3) ErrorClass(err error) string { return ErrorClass(err) }
