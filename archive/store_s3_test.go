package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/goleak"

	"github.com/tributary-io/tributary/internal/testenv"
)

// leakCheck fails the test if it leaves goroutines behind. Call it first:
// its check runs after every other cleanup.
func leakCheck(t testing.TB) {
	t.Helper()
	opts := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opts) })
}

// fakeS3 is gofakes3 (in memory) behind an httptest server.
type fakeS3 struct {
	srv     *httptest.Server
	backend *s3mem.Backend
}

// replaceMeta fixes a gofakes3 quirk: an overwrite keeps the user metadata
// keys of the old object that the new one does not set (S3 replaces all
// of them). It blanks those keys on write and hides blank keys on read.
type replaceMeta struct{ *s3mem.Backend }

func (b replaceMeta) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if old, err := b.Backend.HeadObject(bucket, key); err == nil {
		for k := range old.Metadata {
			if _, ok := meta[k]; !ok && strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
				meta[k] = ""
			}
		}
	}
	return b.Backend.PutObject(bucket, key, meta, input, size, cond)
}

func dropBlank(o *gofakes3.Object, err error) (*gofakes3.Object, error) {
	if o != nil {
		for k, v := range o.Metadata {
			if v == "" && strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
				delete(o.Metadata, k)
			}
		}
	}
	return o, err
}

func (b replaceMeta) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	return dropBlank(b.Backend.HeadObject(bucket, key))
}

func (b replaceMeta) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return dropBlank(b.Backend.GetObject(bucket, key, rng))
}

func newFakeS3(t testing.TB) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	f.srv = httptest.NewServer(gofakes3.New(replaceMeta{f.backend}, gofakes3.WithIntegrityCheck(true)).Server())
	t.Cleanup(f.srv.Close)
	return f
}

// store returns an S3 store on a new bucket of the fake.
func (f *fakeS3) store(t testing.TB, bucket string, mod func(*S3Config)) *S3 {
	t.Helper()
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	cfg := S3Config{Endpoint: f.srv.URL, Bucket: bucket, AccessKey: "fake-access", SecretKey: "fake-secret", PartSize: MinS3PartSize}
	if mod != nil {
		mod(&cfg)
	}
	return mustS3(t, cfg)
}

func mustS3(t testing.TB, cfg S3Config) *S3 {
	t.Helper()
	s, err := NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var bucketSeq atomic.Int64

func nextBucket() string { return fmt.Sprintf("test-%04d", bucketSeq.Add(1)) }

// versityStore returns an S3 store on a new bucket of the gateway, created
// through the S3 API by Check.
func versityStore(t testing.TB, g *testenv.VersityGW, mod func(*S3Config)) *S3 {
	t.Helper()
	cfg := S3Config{Endpoint: g.Endpoint, Bucket: nextBucket(), Region: g.Region, AccessKey: g.AccessKey, SecretKey: g.SecretKey,
		CreateBucket: true, PartSize: MinS3PartSize}
	if mod != nil {
		mod(&cfg)
	}
	s := mustS3(t, cfg)
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3ContractFake(t *testing.T) {
	leakCheck(t)
	f := newFakeS3(t)
	testStoreContract(t, func(t *testing.T) Store { return f.store(t, nextBucket(), nil) })
}

func TestS3ContractVersityGW(t *testing.T) {
	leakCheck(t)
	g := testenv.StartVersityGW(t)
	testStoreContract(t, func(t *testing.T) Store { return versityStore(t, g, nil) })
}

func TestValidateBucketName(t *testing.T) {
	for _, name := range []string{"abc", "my-bucket.2026", strings.Repeat("a", 63), "0bucket9"} {
		if err := ValidateBucketName(name); err != nil {
			t.Errorf("ValidateBucketName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "ab", strings.Repeat("a", 64), "My-Bucket", "bucket_1", "-abc", "abc-", ".abc", "a..b",
		"192.168.1.20", "xn--abc", "abc-s3alias", "abc--ol-s3", "a b c", "ünï"} {
		if err := ValidateBucketName(name); !errors.Is(err, ErrInvalidBucket) {
			t.Errorf("ValidateBucketName(%q) = %v, want ErrInvalidBucket", name, err)
		}
	}
}

func TestS3Config(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	ok := S3Config{Endpoint: "127.0.0.1:9000", Bucket: "tributary", AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG"}
	for _, tc := range []struct {
		mod   func(*S3Config)
		field string // the error must name it
	}{
		{func(c *S3Config) { c.Bucket = "Bad_Bucket" }, "Bucket"},
		{func(c *S3Config) { c.Bucket = "" }, "Bucket"},
		{func(c *S3Config) { c.Endpoint = "" }, "Endpoint"},
		{func(c *S3Config) { c.Endpoint = "ftp://host:21" }, "Endpoint"},
		{func(c *S3Config) { c.Endpoint = "http://host:9000/path" }, "Endpoint"},
		{func(c *S3Config) { c.Endpoint = "http://user:pass@host:9000" }, "Endpoint"},
		{func(c *S3Config) { c.Endpoint = "host:99999" }, "Endpoint"},
		{func(c *S3Config) { c.Endpoint = "host/x" }, "Endpoint"},
		{func(c *S3Config) { c.Endpoint = "http://host:9000"; c.Secure = true }, "Secure"},
		{func(c *S3Config) { c.PartSize = 1 << 20 }, "PartSize"},
		{func(c *S3Config) { c.Region = "us east" }, "Region"},
		{func(c *S3Config) { c.CAFile = "/nonexistent.pem" }, "CAFile"}, // not https
		{func(c *S3Config) { c.Endpoint = "https://host"; c.CAFile = "/nonexistent.pem" }, "CAFile"},
		{func(c *S3Config) { c.SecretKey = "" }, "SecretKey"},
		{func(c *S3Config) { c.AccessKey = "" }, "AccessKey"},
		{func(c *S3Config) { c.AccessKey, c.SecretKey = "", "" }, "AWS_ACCESS_KEY_ID"},
		{func(c *S3Config) { c.AccessKey, c.SecretKey, c.CredentialsFile = "", "", "/nonexistent" }, "CredentialsFile"},
	} {
		cfg := ok
		tc.mod(&cfg)
		_, err := NewS3(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewS3(%v) = %v, want an error naming %s", cfg, err, tc.field)
			continue
		}
		if strings.Contains(err.Error(), "wJalrXUtnFEMI") || strings.Contains(err.Error(), "pass") {
			t.Errorf("error holds a credential: %v", err)
		}
	}
	for _, tc := range []struct {
		endpoint string
		secure   bool
		host     string
		tls      bool
	}{
		{"127.0.0.1:9000", false, "127.0.0.1:9000", false},
		{"127.0.0.1:9000", true, "127.0.0.1:9000", true},
		{"http://minio.local:9000/", false, "minio.local:9000", false},
		{"https://s3.example.com", false, "s3.example.com", true},
		{"localhost", false, "localhost", false},
		{"[::1]:9000", false, "[::1]:9000", false},
	} {
		cfg := ok
		cfg.Endpoint, cfg.Secure = tc.endpoint, tc.secure
		s, err := NewS3(cfg)
		if err != nil {
			t.Errorf("NewS3(%q): %v", tc.endpoint, err)
			continue
		}
		if s.endpoint != tc.host || s.cfg.Secure != tc.tls || s.cfg.Region != DefaultS3Region || s.partSize != DefaultS3PartSize {
			t.Errorf("NewS3(%q) = host %q secure %t region %q part %d", tc.endpoint, s.endpoint, s.cfg.Secure, s.cfg.Region, s.partSize)
		}
		s.Close()
	}

	// No credential in any rendering.
	cfg := ok
	cfg.SessionToken = "FwoGZXIvYXdzEXAMPLETOKEN"
	s := mustS3(t, cfg)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("archive", "config", cfg)
	for _, out := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(s), logged.String()} {
		for _, secret := range []string{cfg.AccessKey, cfg.SecretKey, cfg.SessionToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows a credential", out)
			}
		}
	}
	if !strings.Contains(cfg.String(), "tributary") || !strings.Contains(cfg.String(), "REDACTED") {
		t.Errorf("String() = %s", cfg.String())
	}

	// The environment is the fallback.
	t.Setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
	t.Setenv("AWS_SESSION_TOKEN", "ENVTOKEN")
	cfg = ok
	cfg.AccessKey, cfg.SecretKey = "", ""
	s = mustS3(t, cfg)
	if v, err := s.creds.GetWithContext(&credentials.CredContext{}); err != nil || v.AccessKeyID != "ENVKEY" || v.SecretAccessKey != "ENVSECRET" || v.SessionToken != "ENVTOKEN" {
		t.Errorf("credentials from the environment: %v", err)
	}
	// Explicit keys win over the environment.
	s = mustS3(t, ok)
	if v, _ := s.creds.GetWithContext(&credentials.CredContext{}); v.AccessKeyID != ok.AccessKey {
		t.Error("explicit AccessKey lost to the environment")
	}
}

func TestS3CredentialsFile(t *testing.T) {
	for _, tc := range []struct {
		text               string
		key, secret, token string
	}{
		{"AKID\nSECRET\n", "AKID", "SECRET", ""},
		{"  AKID  \r\nSECRET\r\nTOKEN\n", "AKID", "SECRET", "TOKEN"},
		{"# comment\nAWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=SECRET\n", "AKID", "SECRET", ""},
		{"export AWS_ACCESS_KEY_ID=\"AKID\"\nexport AWS_SECRET_ACCESS_KEY='SECRET'\nAWS_SESSION_TOKEN=TOKEN\nAWS_REGION=eu\n", "AKID", "SECRET", "TOKEN"},
		{"[default]\naws_access_key_id = AKID\naws_secret_access_key = SECRET\n", "AKID", "SECRET", ""},
	} {
		v, err := parseCredentialsFile([]byte(tc.text))
		if err != nil || v.AccessKeyID != tc.key || v.SecretAccessKey != tc.secret || v.SessionToken != tc.token {
			t.Errorf("parse(%q) = %q %q %q, %v", tc.text, v.AccessKeyID, v.SecretAccessKey, v.SessionToken, err)
		}
	}
	for _, text := range []string{"", "s3cr3t-only\n", "s3cr3t-a\nb\nc\nd\n", "AWS_ACCESS_KEY_ID=s3cr3t-id\n", "AWS_SECRET_ACCESS_KEY=s3cr3t-value\n", "AKID\ns3cr3t with space\n"} {
		_, err := parseCredentialsFile([]byte(text))
		if err == nil {
			t.Errorf("parse(%q): no error", text)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("parse(%q) error quotes the file: %v", text, err)
		}
	}

	// The file is read again when it changes.
	path := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(path, []byte("AWS_ACCESS_KEY_ID=OLDKEY\nAWS_SECRET_ACCESS_KEY=OLDSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustS3(t, S3Config{Endpoint: "127.0.0.1:9000", Bucket: "tributary", CredentialsFile: path})
	if v, err := s.creds.GetWithContext(&credentials.CredContext{}); err != nil || v.AccessKeyID != "OLDKEY" {
		t.Fatalf("first read: %v", err)
	}
	if err := os.WriteFile(path, []byte("NEWKEY\nNEWSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if v, err := s.creds.GetWithContext(&credentials.CredContext{}); err != nil || v.AccessKeyID != "NEWKEY" || v.SecretAccessKey != "NEWSECRET" {
		t.Errorf("after rotation: %q, %v", v.AccessKeyID, err)
	}
}

// errorServer answers every request with an S3 error.
func errorServer(t testing.TB, status int, code string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead && code != "" {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>test says %s</Message><RequestId>1</RequestId></Error>`, code, code)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestS3ErrorMapping(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	for _, tc := range []struct {
		status int
		code   string
		kind   error
		class  string
		retry  bool
	}{
		{403, "AccessDenied", ErrAuth, ClassAuth, false},
		{403, "InvalidAccessKeyId", ErrAuth, ClassAuth, false},
		{403, "SignatureDoesNotMatch", ErrAuth, ClassAuth, false},
		{403, "RequestTimeTooSkewed", ErrAuth, ClassAuth, false},
		{400, "ExpiredToken", ErrAuth, ClassAuth, false},
		{404, "NoSuchBucket", ErrBucketNotFound, ClassBucket, false},
		{400, "InvalidBucketName", ErrInvalidBucket, ClassBucket, false},
		{412, "PreconditionFailed", ErrPreconditionFailed, ClassPrecondition, false},
		{400, "BadDigest", ErrChecksum, ClassChecksum, true},
		{400, "XAmzContentSHA256Mismatch", ErrChecksum, ClassChecksum, true},
		{400, "InvalidArgument", nil, ClassClient, false},
		{409, "ObjectParentIsFile", ErrInvalidKey, ClassClient, false},
		{500, "InternalError", nil, ClassServer, true},
		{502, "", nil, ClassServer, true},
		{503, "ServiceUnavailable", nil, ClassServer, true},
		{503, "SlowDown", nil, ClassThrottled, true},
		{429, "", nil, ClassThrottled, true},
		{400, "RequestTimeout", nil, ClassNetwork, true},
	} {
		srv := errorServer(t, tc.status, tc.code)
		s := mustS3(t, S3Config{Endpoint: srv.URL, Bucket: "tributary", AccessKey: "AKIDMAPPING", SecretKey: "SECRETMAPPING"})
		_, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{})
		var se *S3Error
		switch {
		case !errors.As(err, &se):
			t.Errorf("%d %s: Put = %T %v, want *S3Error", tc.status, tc.code, err, err)
		case tc.kind != nil && !errors.Is(err, tc.kind):
			t.Errorf("%d %s: Put = %v, want %v", tc.status, tc.code, err, tc.kind)
		case ErrorClass(err) != tc.class || Retryable(err) != tc.retry || s.Retryable(err) != tc.retry || s.ErrorClass(err) != tc.class:
			t.Errorf("%d %s: class %q retry %t, want %q %t (%v)", tc.status, tc.code, ErrorClass(err), Retryable(err), tc.class, tc.retry, err)
		case se.Status != tc.status || se.Op != "put" || se.Key != "k":
			t.Errorf("%d %s: S3Error %+v", tc.status, tc.code, se)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRETMAPPING") || strings.Contains(err.Error(), "AKIDMAPPING")) {
			t.Errorf("error shows a credential: %v", err)
		}
		// HEAD requests get no body: the status alone decides.
		_, err = s.Stat(ctx, "k")
		if got := ErrorClass(err); tc.status == 403 && got != ClassAuth || tc.status >= 500 && !Retryable(err) {
			t.Errorf("%d %s: Stat = %v (class %s)", tc.status, tc.code, err, got)
		}
		err = s.Check(ctx)
		if tc.status == 403 && !errors.Is(err, ErrAuth) || tc.status >= 500 && !Retryable(err) {
			t.Errorf("%d %s: Check = %v", tc.status, tc.code, err)
		}
	}
	// Other errors.
	for _, tc := range []struct {
		err   error
		class string
		retry bool
	}{
		{nil, "", false},
		{context.Canceled, ClassOther, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ClassNetwork, true},
		{io.ErrUnexpectedEOF, ClassNetwork, true},
		{&net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}, ClassNetwork, true},
		{&net.DNSError{Err: "no such host", Name: "s3.example"}, ClassNetwork, true},
		{ErrNotFound, ClassClient, false},
		{ErrInvalidKey, ClassClient, false},
		{ErrSizeMismatch, ClassClient, false},
		{ErrPreconditionFailed, ClassPrecondition, false},
		{errors.New("disk on fire"), ClassOther, false},
		{minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, ClassThrottled, true},
	} {
		if c, r := ErrorClass(tc.err), Retryable(tc.err); c != tc.class || r != tc.retry {
			t.Errorf("%v: class %q retry %t, want %q %t", tc.err, c, r, tc.class, tc.retry)
		}
	}
}

func TestS3Unreachable(t *testing.T) {
	leakCheck(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	s := mustS3(t, S3Config{Endpoint: addr, Bucket: "tributary", AccessKey: "k", SecretKey: "secret"})
	ctx := context.Background()
	err = s.Check(ctx)
	if err == nil || !Retryable(err) || ErrorClass(err) != ClassNetwork {
		t.Errorf("Check with the store down = %v (class %s, retryable %t)", err, ErrorClass(err), Retryable(err))
	}
	_, err = s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{})
	if err == nil || !Retryable(err) || ErrorClass(err) != ClassNetwork {
		t.Errorf("Put with the store down = %v (class %s)", err, ErrorClass(err))
	}
	if _, err := OpenS3(ctx, S3Config{Endpoint: addr, Bucket: "tributary", AccessKey: "k", SecretKey: "secret"}); !Retryable(err) {
		t.Errorf("OpenS3 with the store down = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v", d)
	}
	// A name that does not resolve is a network error too.
	s = mustS3(t, S3Config{Endpoint: "nonexistent.invalid:9000", Bucket: "tributary", AccessKey: "k", SecretKey: "secret"})
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second) // no DNS server at all: a timeout, still "network"
	defer cancel()
	if err := s.Check(dctx); !Retryable(err) || ErrorClass(err) != ClassNetwork {
		t.Errorf("Check of an unknown host = %v (class %s)", err, ErrorClass(err))
	}
}

// tamper is a RoundTripper that damages PUT bodies or the ETags of PUT
// responses.
type tamper struct {
	rt         http.RoundTripper
	body, etag atomic.Bool
}

func (tp *tamper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.Body != nil && tp.body.Load() {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		b[len(b)/2] ^= 0xff
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := tp.rt.RoundTrip(req)
	if err != nil || !tp.etag.Load() {
		return resp, err
	}
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodPut && !q.Has("partNumber"):
		resp.Header.Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	case req.Method == http.MethodPost && q.Has("uploadId"): // CompleteMultipartUpload
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		b = etagElement.ReplaceAll(b, []byte("<ETag>&#34;0123456789abcdef0123456789abcdef-3&#34;</ETag>"))
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
	}
	return resp, nil
}

var etagElement = regexp.MustCompile(`<ETag>[^<]*</ETag>`)

func (tp *tamper) CloseIdleConnections() {
	if c, ok := tp.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func testChecksum(t *testing.T, newStore func(mod func(*S3Config)) *S3) {
	ctx := context.Background()
	tp := &tamper{rt: &http.Transport{DisableCompression: true}}
	s := newStore(func(c *S3Config) { c.Transport = tp })
	body := bytes.Repeat([]byte("tributary "), 20_000) // 200 kB: several aws-chunked chunks
	for _, size := range []int{len(body), 12 << 20} {
		data := body
		if size > len(body) {
			data = randomBytes(size)
		}
		key := fmt.Sprintf("damaged-%d", size)
		tp.body.Store(true)
		_, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{})
		tp.body.Store(false)
		if err == nil {
			t.Errorf("%d bytes damaged in transit: Put succeeded", size)
		} else {
			t.Logf("%d bytes damaged in transit: %v (class %s, retryable %t)", size, err, ErrorClass(err), Retryable(err))
			if !Retryable(err) {
				t.Errorf("a body damaged in transit is not retryable: %v", err)
			}
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("%d bytes damaged in transit: Stat = %v, want ErrNotFound", size, err)
		}
		// An ETag that is not the content's MD5.
		tp.etag.Store(true)
		_, err = s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{})
		tp.etag.Store(false)
		if !errors.Is(err, ErrChecksum) || !Retryable(err) || ErrorClass(err) != ClassChecksum {
			t.Errorf("%d bytes with a wrong ETag: Put = %v, want ErrChecksum", size, err)
		}
		// Untouched, it works.
		info, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{})
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if got, _ := readAll(t, s, key, nil); got != string(data) {
			t.Errorf("%d bytes: read back differs (ETag %s)", size, info.ETag)
		}
	}
	// DisableETagCheck trusts the server's ETag.
	s = newStore(func(c *S3Config) { c.Transport = tp; c.DisableETagCheck = true })
	tp.etag.Store(true)
	defer tp.etag.Store(false)
	if _, err := s.Put(ctx, "k", bytes.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
		t.Errorf("DisableETagCheck: %v", err)
	}
}

func TestS3ChecksumFake(t *testing.T) {
	leakCheck(t)
	f := newFakeS3(t)
	testChecksum(t, func(mod func(*S3Config)) *S3 { return f.store(t, nextBucket(), mod) })
}

func TestS3ChecksumVersityGW(t *testing.T) {
	leakCheck(t)
	g := testenv.StartVersityGW(t)
	testChecksum(t, func(mod func(*S3Config)) *S3 { return versityStore(t, g, mod) })
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func testMultipart(t *testing.T, s *S3) {
	ctx := context.Background()
	data := randomBytes(12 << 20) // 5 + 5 + 2 MiB parts
	path := filepath.Join(t.TempDir(), "frag.m4s")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md := map[string]string{"stream": "cam1", "number": "7"}
	info, err := s.Put(ctx, "big/frag.m4s", f, int64(len(data)), PutOptions{ContentType: "video/iso.segment", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, `-3"`) {
		t.Logf("multipart ETag %s is not of the form md5-3", info.ETag)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
		t.Errorf("Put moved the file's offset to %d", off)
	}
	st, err := s.Stat(ctx, "big/frag.m4s")
	whole := `"` + hex.EncodeToString(md5sum(data)) + `"`
	if st.ETag == whole && info.ETag != whole {
		t.Logf("Stat reports the MD5 of the whole object, Put the multipart ETag %s", info.ETag) // gofakes3
	} else if st.ETag != info.ETag {
		t.Errorf("Stat ETag %s, Put ETag %s", st.ETag, info.ETag)
	}
	if err != nil || st.Size != int64(len(data)) || st.Metadata["number"] != "7" || st.ContentType != "video/iso.segment" {
		t.Errorf("Stat = %+v, %v; Put said %+v", st, err, info)
	}
	got, _ := readAll(t, s, "big/frag.m4s", nil)
	if md5.Sum([]byte(got)) != md5.Sum(data) {
		t.Error("multipart object read back differs")
	}
	rng := &Range{Start: 5<<20 - 3, End: 5<<20 + 2} // across a part boundary
	if got, gi := readAll(t, s, "big/frag.m4s", rng); got != string(data[rng.Start:rng.End+1]) || gi.Size != int64(len(data)) {
		t.Errorf("range across parts: %d bytes, size %d", len(got), gi.Size)
	}
	// A conditional Put is one PUT whatever its size.
	info, err = s.Put(ctx, "big/lease", bytes.NewReader(data), int64(len(data)), PutOptions{IfNoneMatch: true})
	if err != nil || info.ETag != whole {
		t.Errorf("conditional 12 MiB Put = %+v, %v", info, err)
	}
	if _, err := s.Put(ctx, "big/lease", bytes.NewReader(data[:1000]), 1000, PutOptions{IfNoneMatch: true}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("second create-if-absent = %v", err)
	}
	// A large body refused early: versitygw reads at most 256 KiB of a
	// refused body, then resets the connection, so the client may see a
	// (retryable) network error instead of the 412.
	_, err = s.Put(ctx, "big/lease", bytes.NewReader(data), int64(len(data)), PutOptions{IfNoneMatch: true})
	if !errors.Is(err, ErrPreconditionFailed) && !(Retryable(err) && ErrorClass(err) == ClassNetwork) {
		t.Errorf("12 MiB create-if-absent of an existing key = %v", err)
	}
	t.Logf("12 MiB create-if-absent of an existing key: %v", err)
	if got, _ := readAll(t, s, "big/lease", nil); got != string(data) {
		t.Error("a refused create-if-absent changed the object")
	}
}

func md5sum(b []byte) []byte { s := md5.Sum(b); return s[:] }

func TestS3MultipartFake(t *testing.T) {
	leakCheck(t)
	f := newFakeS3(t)
	testMultipart(t, f.store(t, nextBucket(), nil))
}

func TestS3MultipartVersityGW(t *testing.T) {
	leakCheck(t)
	g := testenv.StartVersityGW(t)
	testMultipart(t, versityStore(t, g, nil))
}

func testListPages(t *testing.T, s *S3) {
	ctx := context.Background()
	const n = 2500
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("streams/cam1/f/%05d.m4s", i)
	}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				if _, err := s.Put(ctx, keys[i], strings.NewReader("x"), 1, PutOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	put(t, s, "streams/cam2/f/00000.m4s", "other", PutOptions{})
	prefix := "streams/cam1/"
	check := func(after string, limit, wantFrom, wantN int) {
		t.Helper()
		objs, err := s.List(ctx, prefix, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != wantN {
			t.Fatalf("List(%q, %d) = %d objects, want %d", after, limit, len(objs), wantN)
		}
		for i, o := range objs {
			if o.Key != keys[wantFrom+i] {
				t.Fatalf("List(%q, %d)[%d] = %s, want %s", after, limit, i, o.Key, keys[wantFrom+i])
			}
		}
	}
	check("", 0, 0, DefaultListLimit)
	check("", 1500, 0, 1500) // two pages
	check(keys[1233], 5000, 1234, n-1234)
	check(keys[n-1], 0, 0, 0)
	check("", 1, 0, 1)
	// Paging with after = the last key covers every key once.
	after, total := "", 0
	for {
		objs, err := s.List(ctx, prefix, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		total += len(objs)
		if len(objs) < DefaultListLimit {
			break
		}
		after = objs[len(objs)-1].Key
	}
	if total != n {
		t.Errorf("paged listing found %d keys, want %d", total, n)
	}
	all, err := s.List(ctx, "streams/", "", 5000)
	if err != nil || len(all) != n+1 || all[n].Key != "streams/cam2/f/00000.m4s" {
		t.Errorf("List(streams/) = %d objects, %v", len(all), err)
	}
}

func TestS3ListPagesFake(t *testing.T) {
	leakCheck(t)
	f := newFakeS3(t)
	testListPages(t, f.store(t, nextBucket(), nil))
}

func TestS3ListPagesVersityGW(t *testing.T) {
	leakCheck(t)
	g := testenv.StartVersityGW(t)
	testListPages(t, versityStore(t, g, nil))
}

// testFragmentMetadata round-trips fragment metadata through object user
// metadata, and runs ListFragments and the hour manifest over the store.
func testFragmentMetadata(t *testing.T, s *S3) {
	ctx := context.Background()
	m := testMeta("cam1", 42, time.Date(2026, 11, 27, 3, 4, 5, 600_000_000, time.UTC), 2*time.Second)
	m.Tags = map[string]string{"site": "warehouse", "Zone": "A 1"}
	md, err := EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	key, err := Layout{Prefix: "t"}.FragmentKey(m)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte{1}, int(m.Size))
	if _, err := s.Put(ctx, key, bytes.NewReader(body), m.Size, PutOptions{ContentType: "video/iso.segment", Metadata: md}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for k := range st.Metadata {
		if k != strings.ToLower(k) {
			t.Errorf("Stat metadata key %q is not lower-case", k)
		}
	}
	got, err := DecodeMetadata(st.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMeta(got, m) {
		t.Errorf("metadata round trip:\n got %+v\nwant %+v", got, m)
	}
	res, err := ListFragments(ctx, s, Layout{Prefix: "t"}, ListRequest{Stream: "cam1", Start: m.ProducerStart.Add(-time.Hour), End: m.ProducerEnd.Add(time.Hour)})
	if err != nil || len(res.Fragments) != 1 || res.Fragments[0].Number != 42 {
		t.Errorf("ListFragments = %+v, %v", res, err)
	}
}

func TestS3FragmentMetadataFake(t *testing.T) {
	leakCheck(t)
	f := newFakeS3(t)
	testFragmentMetadata(t, f.store(t, nextBucket(), nil))
}

func TestS3FragmentMetadataVersityGW(t *testing.T) {
	leakCheck(t)
	g := testenv.StartVersityGW(t)
	testFragmentMetadata(t, versityStore(t, g, nil))
}

// TestS3VersityGW checks what only a real server shows: credentials,
// buckets, files on disk, lifecycle support and an outage.
func TestS3VersityGW(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	g := testenv.StartVersityGW(t)
	cfg := S3Config{Endpoint: g.URL(), Bucket: "tributary", Region: g.Region, AccessKey: g.AccessKey, SecretKey: g.SecretKey}

	// A missing bucket, then created by Check.
	s := mustS3(t, cfg)
	if err := s.Check(ctx); !errors.Is(err, ErrBucketNotFound) || Retryable(err) || ErrorClass(err) != ClassBucket {
		t.Errorf("Check of a missing bucket = %v", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{}); !errors.Is(err, ErrBucketNotFound) {
		t.Errorf("Put into a missing bucket = %v", err)
	}
	cfg.CreateBucket = true
	s = mustS3(t, cfg)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check with CreateBucket: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check of an existing bucket: %v", err)
	}
	put(t, s, "streams/cam1/stream.json", "{}", PutOptions{})
	if b, err := os.ReadFile(filepath.Join(g.Dir, "tributary", "streams", "cam1", "stream.json")); err != nil || string(b) != "{}" {
		t.Errorf("object file under the gateway's directory: %q, %v", b, err)
	}

	// A bucket made with mkdir serves at once.
	g.MakeBucket(t, "by-mkdir")
	c2 := cfg
	c2.Bucket, c2.CreateBucket = "by-mkdir", false
	s2 := mustS3(t, c2)
	if err := s2.Check(ctx); err != nil {
		t.Errorf("Check of a bucket made with mkdir: %v", err)
	}
	if _, err := s2.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{}); err != nil {
		t.Errorf("Put into a bucket made with mkdir: %v", err)
	}

	// Wrong credentials.
	for _, mod := range []func(*S3Config){
		func(c *S3Config) { c.SecretKey = "wrong-secret" },
		func(c *S3Config) { c.AccessKey = "nobody" },
	} {
		bad := cfg
		mod(&bad)
		sb := mustS3(t, bad)
		if err := sb.Check(ctx); !errors.Is(err, ErrAuth) || Retryable(err) || ErrorClass(err) != ClassAuth {
			t.Errorf("Check with wrong credentials = %v", err)
		}
		_, err := sb.Put(ctx, "k", strings.NewReader("x"), 1, PutOptions{})
		if !errors.Is(err, ErrAuth) || Retryable(err) {
			t.Errorf("Put with wrong credentials = %v", err)
		}
		t.Logf("wrong credentials: %v", err)
		if strings.Contains(err.Error(), g.SecretKey) || strings.Contains(err.Error(), "wrong-secret") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
	// A bad bucket name fails before any request.
	bad := cfg
	bad.Bucket = "Not_A_Bucket"
	if _, err := NewS3(bad); !errors.Is(err, ErrInvalidBucket) || !strings.Contains(err.Error(), "Bucket") {
		t.Errorf("NewS3 with a bad bucket = %v", err)
	}

	// versitygw has no lifecycle rules: the caller prunes.
	err := s.SetLifecycle(ctx, "streams/cam1/", 7)
	t.Logf("SetLifecycle: %v", err)
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("SetLifecycle = %v, want ErrNotSupported", err)
	}

	// An outage: errors are retryable, and the store works again once the
	// gateway is back on the same port.
	g.Stop()
	_, err = s.Put(ctx, "during-outage", strings.NewReader("x"), 1, PutOptions{})
	if !Retryable(err) || ErrorClass(err) != ClassNetwork {
		t.Errorf("Put during the outage = %v (class %s)", err, ErrorClass(err))
	}
	if _, err := s.List(ctx, "", "", 0); !Retryable(err) {
		t.Errorf("List during the outage = %v", err)
	}
	if err := s.Check(ctx); !Retryable(err) {
		t.Errorf("Check during the outage = %v", err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	put(t, s, "after-outage", "y", PutOptions{})
	if got, _ := readAll(t, s, "streams/cam1/stream.json", nil); got != "{}" {
		t.Errorf("object from before the outage = %q", got)
	}
}

// TestS3Lifecycle checks SetLifecycle against a server that implements
// lifecycle configuration (a small fake: gofakes3 and versitygw do not).
func TestS3Lifecycle(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	var mu sync.Mutex
	var stored string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := r.URL.Query()["lifecycle"]; !ok {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodGet:
			if stored == "" {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, `<Error><Code>NoSuchLifecycleConfiguration</Code><Message>none</Message></Error>`)
				return
			}
			fmt.Fprint(w, stored)
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			stored = string(b)
		case http.MethodDelete:
			stored = ""
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	s := mustS3(t, S3Config{Endpoint: srv.URL, Bucket: "tributary", AccessKey: "k", SecretKey: "secret"})
	if err := s.SetLifecycle(ctx, "streams/cam1/", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLifecycle(ctx, "streams/cam2/", 30); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLifecycle(ctx, "streams/cam1/", 14); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := stored
	mu.Unlock()
	if strings.Count(got, "<Rule>") != 2 || !strings.Contains(got, "<Prefix>streams/cam1/</Prefix>") || !strings.Contains(got, "<Days>14</Days>") ||
		!strings.Contains(got, "<Days>30</Days>") || strings.Contains(got, "<Days>7</Days>") {
		t.Errorf("lifecycle configuration: %s", got)
	}
	if err := s.SetLifecycle(ctx, "streams/cam1/", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLifecycle(ctx, "streams/cam2/", 0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if stored != "" {
		t.Errorf("after removing every rule: %s", stored)
	}
	// A server without lifecycle support.
	srv501 := errorServer(t, http.StatusNotImplemented, "NotImplemented")
	s = mustS3(t, S3Config{Endpoint: srv501.URL, Bucket: "tributary", AccessKey: "k", SecretKey: "secret"})
	if err := s.SetLifecycle(ctx, "x/", 1); !errors.Is(err, ErrNotSupported) {
		t.Errorf("SetLifecycle on a server without it = %v", err)
	}
}

// TestS3ListStopsEarly lists one key of many and cancels: no request or
// goroutine outlives List.
func TestS3ListStopsEarly(t *testing.T) {
	leakCheck(t)
	f := newFakeS3(t)
	s := f.store(t, nextBucket(), nil)
	for i := range 30 {
		put(t, s, fmt.Sprintf("k%02d", i), "x", PutOptions{})
	}
	for range 10 {
		objs, err := s.List(context.Background(), "", "", 1)
		if err != nil || len(objs) != 1 || objs[0].Key != "k00" {
			t.Fatalf("List(limit 1) = %v, %v", objs, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.List(ctx, "", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a canceled context = %v", err)
	}
}

// BenchmarkS3Put1MB measures the latency of 1 MB fragment uploads with
// fragment metadata against versitygw on loopback, and reports p50 and p99.
func BenchmarkS3Put1MB(b *testing.B) {
	if _, err := testenv.FindVersityGW(); err != nil {
		b.Skip("versitygw is not installed: make peers")
	}
	g := testenv.StartVersityGW(b)
	s := versityStore(b, g, nil)
	ctx := context.Background()
	data := randomBytes(1 << 20)
	m := testMeta("cam1", 1, time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), 2*time.Second)
	md, err := EncodeMetadata(m)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("streams/cam1/f/2026/11/27/03/%013d-%020d.m4s", i, i)
		i++
		start := time.Now()
		if _, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{ContentType: "video/iso.segment", Metadata: md}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	pct := func(p float64) time.Duration { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
}

// TestS3TLS talks HTTPS to a server whose certificate a private CA signed:
// trusted through CAFile, refused (an auth error, not retryable) without.
func TestS3TLS(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	backend := s3mem.New()
	if err := backend.CreateBucket("tributary"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(gofakes3.New(backend).Server())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is logged otherwise
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := S3Config{Endpoint: srv.URL, Bucket: "tributary", AccessKey: "k", SecretKey: "secret", CAFile: caFile}
	s := mustS3(t, cfg)
	if !s.cfg.Secure {
		t.Error("an https:// endpoint is not Secure")
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check over TLS with CAFile: %v", err)
	}
	put(t, s, "k", "over tls", PutOptions{})
	if got, _ := readAll(t, s, "k", nil); got != "over tls" {
		t.Errorf("Get over TLS = %q", got)
	}
	cfg.CAFile = ""
	s = mustS3(t, cfg)
	err := s.Check(ctx)
	if !errors.Is(err, ErrAuth) || Retryable(err) || ErrorClass(err) != ClassAuth {
		t.Errorf("Check of an untrusted server = %v (class %s)", err, ErrorClass(err))
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not a certificate"), 0o644)
	cfg.CAFile = empty
	if _, err := NewS3(cfg); err == nil || !strings.Contains(err.Error(), "CAFile") {
		t.Errorf("NewS3 with a CAFile without certificates = %v", err)
	}
}
