package edgeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tributary-io/tributary/archive"
)

// OpenArchive opens the archive a config names: a local directory (whose
// temp files left by a crash are cleaned) or an S3-compatible store.
func OpenArchive(ctx context.Context, cfg ArchiveConfig, log *slog.Logger) (archive.Store, error) {
	switch cfg.Type {
	case "s3":
		return openS3(ctx, cfg.S3, log)
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

// openS3 opens the S3 archive. It is filled in when archive.S3 lands.
func openS3(ctx context.Context, cfg S3Config, log *slog.Logger) (archive.Store, error) {
	return nil, errors.New("archive.type s3: not built yet")
}
