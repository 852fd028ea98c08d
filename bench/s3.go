package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// The credentials of the bench's own S3 server.
const (
	s3Access = "tributary-bench"
	s3Secret = "tributary-bench-secret"
	s3Bucket = "bench"
)

// findVersityGW returns the versitygw binary: on PATH, else in .tools/
// (where `make peers` builds it).
func findVersityGW() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	if p, err := filepath.Abs(filepath.Join(".tools", "versitygw")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("bench: --archive s3 runs versitygw, which is neither on PATH nor in .tools/ (make peers builds it)")
}

// startS3 runs versitygw on loopback over a folder of the work directory,
// with one bucket, and returns the archive URL for the agent, the folder of
// the bucket (for pruning) and the process.
func startS3(ctx context.Context, o Options) (url, bucketDir string, p *proc, err error) {
	bin := o.VersityGW
	if bin == "" {
		if bin, err = findVersityGW(); err != nil {
			return "", "", nil, err
		}
	}
	root := filepath.Join(o.WorkDir, "s3")
	bucketDir = filepath.Join(root, s3Bucket) // the posix backend: a folder is a bucket
	if err := os.MkdirAll(bucketDir, 0o755); err != nil {
		return "", "", nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return "", "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "--port", addr, "--access", s3Access, "--secret", s3Secret,
		"--region", "us-east-1", "--quiet", "posix", root)
	if p, err = start(cmd, filepath.Join(o.WorkDir, "versitygw.log")); err != nil {
		return "", "", nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if p.exited() || time.Now().After(deadline) {
			p.stop()
			return "", "", nil, fmt.Errorf("bench: versitygw did not start: %s", p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "s3://" + s3Bucket + "/run?endpoint=" + addr, bucketDir, p, nil
}
