package edgeagent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tributary-io/tributary/archive"
)

// OpenArchive opens the archive a config names: a local directory (whose
// temp files left by a crash are cleaned) or an S3-compatible store. An
// S3 store that is down, refuses the credentials or lacks the bucket does
// not stop the agent: the problem is logged, shown on /v1/status, and the
// spool keeps every fragment until the store works.
func OpenArchive(ctx context.Context, cfg ArchiveConfig, log *slog.Logger) (archive.Store, error) {
	switch cfg.Type {
	case "s3":
		return openS3(ctx, cfg.S3, log), nil
	case "local", "":
		local := &archive.Local{Root: cfg.Path}
		if n, err := local.CleanTemp(ctx, 0); err != nil {
			log.Warn("cleaning the archive's temp files", "err", err)
		} else if n > 0 {
			log.Info("removed temp files left by an interrupted write", "count", n)
		}
		return local, nil
	}
	return nil, fmt.Errorf("%w: archive.type: %q", ErrConfig, cfg.Type)
}

// archiveConfig returns the archive package's configuration for c.
func (c S3Config) archiveConfig() archive.S3Config {
	return archive.S3Config{
		Endpoint: c.Endpoint, Bucket: c.Bucket, Region: c.Region, PathStyle: c.PathStyle, Secure: c.TLS,
		CAFile: c.CAFile, AccessKey: c.AccessKey, SecretKey: c.SecretKey, CredentialsFile: c.CredentialsFile,
		CreateBucket: c.CreateBucket, PartSize: int64(c.PartSize),
	}
}

func openS3(ctx context.Context, c S3Config, log *slog.Logger) archive.Store {
	s3, err := archive.NewS3(c.archiveConfig())
	if err != nil {
		log.Error("archive: the S3 configuration is unusable; fragments stay in the spool", "err", err)
		return brokenStore{err: configError{fmt.Errorf("archive.s3 is unusable: %w", err)}}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s3.Check(cctx); err != nil {
		log.Warn("archive: the object store is not usable yet; fragments stay in the spool", "err", err, "retry", archive.Retryable(err))
	} else {
		log.Info("archive: object store ready", "store", s3.String())
	}
	return s3
}

// configError is a configuration error found after start: errors.Is(err,
// ErrConfig) holds, with its own message.
type configError struct{ error }

func (e configError) Is(target error) bool { return target == ErrConfig }
func (e configError) Unwrap() error        { return e.error }

// brokenStore stands in for a store whose configuration is unusable: every
// call fails with the configuration error, which is not retryable, so the
// uploader holds the fragments and shows the error on the status.
type brokenStore struct{ err error }

func (b brokenStore) Put(context.Context, string, io.Reader, int64, archive.PutOptions) (archive.ObjectInfo, error) {
	return archive.ObjectInfo{}, b.err
}

func (b brokenStore) Get(context.Context, string, *archive.Range) (io.ReadCloser, archive.ObjectInfo, error) {
	return nil, archive.ObjectInfo{}, b.err
}

func (b brokenStore) Stat(context.Context, string) (archive.ObjectInfo, error) {
	return archive.ObjectInfo{}, b.err
}

func (b brokenStore) Delete(context.Context, string) error { return b.err }

func (b brokenStore) List(context.Context, string, string, int) ([]archive.ObjectInfo, error) {
	return nil, b.err
}
