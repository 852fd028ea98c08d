package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallVersityGW is the command named in skip messages of tests that need
// versitygw (an S3 gateway over a directory, Apache-2.0).
const InstallVersityGW = "make peers (or: GOBIN=$PWD/.tools go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"

// VersityGW is a versitygw process serving the S3 API on 127.0.0.1 over a
// directory (its posix backend): every directory under Dir is a bucket, and
// objects are plain files under Dir/bucket/key.
type VersityGW struct {
	// Endpoint is "127.0.0.1:PORT" (plain HTTP, path-style).
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Region the gateway signs for: "us-east-1".
	Region string
	// Dir is the posix backend's directory.
	Dir string
	// Log is the file that collects the gateway's output.
	Log string

	bin string
	mu  sync.Mutex
	cmd *exec.Cmd
	// done is closed when the running process has been waited for.
	done chan struct{}
}

// RequireVersityGW returns the path of the versitygw binary: .tools/versitygw
// at the repository root (the directory with go.mod, found by walking up
// from the working directory), else versitygw on PATH. It fails the test
// under CI and skips it otherwise when neither exists.
func RequireVersityGW(t testing.TB) string {
	t.Helper()
	p, err := FindVersityGW()
	if err != nil {
		Missing(t, "versitygw", InstallVersityGW)
	}
	return p
}

// FindVersityGW returns the path of the versitygw binary, as
// RequireVersityGW finds it, or an error.
func FindVersityGW() (string, error) {
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath("versitygw")
}

// RepoRoot returns the first directory at or above the working directory
// that holds a go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// StartVersityGW starts versitygw on a free port of 127.0.0.1 over a new
// temporary directory, with random root credentials, and stops it when the
// test ends. Create buckets through the S3 API (CreateBucket) or with
// MakeBucket.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	bin := RequireVersityGW(t)
	base := t.TempDir()
	g := &VersityGW{
		Endpoint:  fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		AccessKey: "tributary-" + randomHex(t, 4),
		SecretKey: randomHex(t, 20),
		Region:    "us-east-1",
		Dir:       filepath.Join(base, "s3"),
		Log:       filepath.Join(base, "versitygw.log"),
		bin:       bin,
	}
	if err := os.Mkdir(g.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	return g
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Start starts the gateway on its port and directory (again, after Stop)
// and waits until the port accepts connections. Starting a running gateway
// does nothing.
func (g *VersityGW) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(g.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(g.bin, "--port", g.Endpoint, "--access", g.AccessKey, "--secret", g.SecretKey,
		"--region", g.Region, "--quiet", "posix", g.Dir)
	cmd.Env = gatewayEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	g.cmd, g.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	waitErr := make(chan error, 1)
	go func() { waitErr <- WaitPort(ctx, g.Endpoint) }()
	select {
	case err = <-waitErr:
	case <-done:
		cancel()
		<-waitErr
		err = errors.New("exited at start")
	}
	if err != nil {
		g.stopLocked()
		return fmt.Errorf("versitygw on %s: %w; log: %s", g.Endpoint, err, g.logTail())
	}
	return nil
}

// Stop kills the gateway (SIGKILL to its process group) and waits for it.
// Stopping a stopped gateway does nothing; Start starts it again on the
// same port and directory.
func (g *VersityGW) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopLocked()
}

func (g *VersityGW) stopLocked() {
	if g.cmd == nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.done
	g.cmd, g.done = nil, nil
}

// Running reports whether the gateway process is running.
func (g *VersityGW) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return false
	}
	select {
	case <-g.done:
		return false
	default:
		return true
	}
}

// URL returns the endpoint as an http:// URL.
func (g *VersityGW) URL() string { return "http://" + g.Endpoint }

// MakeBucket creates a bucket by creating its directory under Dir, which
// the posix backend serves as a bucket at once (as the root account's).
func (g *VersityGW) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(g.Dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
}

// logTail returns the end of the gateway's log.
func (g *VersityGW) logTail() string {
	b, _ := os.ReadFile(g.Log)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// gatewayEnv is the environment without the variables versitygw reads as
// settings (VGW_*, ROOT_*), so that the test's flags alone configure it.
func gatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") || strings.HasPrefix(kv, "LOGFILE=") ||
			strings.HasPrefix(kv, "WEBHOOK=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
