package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/internal/fixture"
	"github.com/tributary-io/tributary/internal/testenv"
)

// fillArchive stores count fragments of each stream, 2 s apart, from base.
func fillArchive(t *testing.T, st archive.Store, streams []string, from, count int, base time.Time) {
	for _, s := range streams {
		for i := from; i < from+count; i++ {
			f, err := fixture.Synthetic(s, uint64(i+1), base.Add(time.Duration(i)*2*time.Second), 3000, 400, 400)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Put(context.Background(), st); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// resultsOf counts a model's results in the archive, per stream.
func resultsOf(t *testing.T, st archive.Store, streams []string, model string, base time.Time) int {
	rs := &inference.Records{Store: st}
	n := 0
	for _, s := range streams {
		recs, err := rs.List(context.Background(), archive.RecordResult, s, model, base, base.Add(6*time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	return n
}

// TestConsumeKill9 kills `tributary consume` (kill -9) ten times while it
// works through an archive, restarting it each time. Every fragment ends
// with a result; a fragment is sent more than once only when a kill caught
// it in flight, and every repeat carries the same idempotency key.
func TestConsumeKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := &archive.Local{Root: filepath.Join(dir, "archive")}
	streams := []string{"cam1", "cam2", "cam3"}
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	const perStream = 50
	fillArchive(t, st, streams, 0, perStream, base)
	model := &fixture.Model{Delay: 100 * time.Millisecond}
	srv := httptest.NewServer(model)
	defer srv.Close()
	cfgPath := filepath.Join(dir, "consume.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`archive: {type: local, path: %s}
inference:
  hooks:
    - {model: count, kind: sagemaker, url: "%s", placement: archive, timeout: 5s}
  consumer: {local: true, poll: 100ms, workers: 3}
log: {level: warn}
`, st.Root, srv.URL)), 0o644)
	kills := 0
	for kills < 10 && resultsOf(t, st, streams, "count", base) < len(streams)*perStream {
		cmd := exec.Command(binary, "consume", "--config", cfgPath)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rand.IntN(350)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		kills++
	}
	cmd := exec.Command(binary, "consume", "--config", cfgPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past its start, where a signal would kill it outright
	deadline := time.Now().Add(60 * time.Second)
	for resultsOf(t, st, streams, "count", base) < len(streams)*perStream && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd, 20*time.Second); err != nil {
		t.Errorf("consume: %v\n%s", err, out.String())
	}
	if n := resultsOf(t, st, streams, "count", base); n != len(streams)*perStream {
		t.Fatalf("%d results after %d kills, want %d", n, kills, len(streams)*perStream)
	}
	if err := model.InOrder(); err != nil {
		t.Error(err)
	}
	requests, repeats := 0, 0
	for _, n := range model.Requests() {
		requests += n
		repeats += n - 1
	}
	t.Logf("%d kills: %d fragments, %d requests, %d repeats", kills, len(streams)*perStream, requests, repeats)
	// at a kill, at most one fragment per worker is in flight
	if repeats > kills*3 {
		t.Errorf("%d repeats for %d kills of a consumer with 3 workers", repeats, kills)
	}
}

// TestConsumersVersityGW runs two consumers of one group over versitygw.
// They share four shards; one is killed (kill -9) and the other takes its
// shards within two lease TTLs. A split and then a merge while it runs
// keep every stream's fragments in order.
func TestConsumersVersityGW(t *testing.T) {
	t.Parallel()
	gw := testenv.StartVersityGW(t)
	dir := t.TempDir()
	gw.MakeBucket(t, "infer")
	store, err := archive.NewS3(archive.S3Config{Endpoint: gw.Endpoint, Bucket: "infer", AccessKey: gw.AccessKey, SecretKey: gw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	var streams []string
	for i := range 8 {
		streams = append(streams, fmt.Sprintf("cam%d", i))
	}
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	fillArchive(t, store, streams, 0, 4, base)
	model := &fixture.Model{Delay: 5 * time.Millisecond}
	srv := httptest.NewServer(model)
	defer srv.Close()
	cfg := func(id string) string {
		p := filepath.Join(dir, id+".yaml")
		os.WriteFile(p, []byte(fmt.Sprintf(`archive:
  type: s3
  s3: {endpoint: %s, bucket: infer, access_key: %s, secret_key: %s}
inference:
  hooks:
    - {model: count, kind: sagemaker, url: "%s", placement: archive}
  consumer: {id: %s, lease_ttl: 2s, poll: 200ms}
log: {level: info}
`, gw.Endpoint, gw.AccessKey, gw.SecretKey, srv.URL, id)), 0o644)
		return p
	}
	shards := func(args ...string) {
		out, err := exec.Command(binary, append(append([]string{"shards"}, args...), "--config", cfg("admin"))...).CombinedOutput()
		if err != nil {
			t.Fatalf("shards %v: %v\n%s", args, err, out)
		}
	}
	shards("split", "0")
	shards("split", "1")
	shards("split", "2") // four open shards: 3, 4, 5, 6
	type proc struct {
		cmd *exec.Cmd
		out *syncBuilder
	}
	start := func(id string) proc {
		cmd := exec.Command(binary, "consume", "--config", cfg(id))
		out := &syncBuilder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return proc{cmd, out}
	}
	a, b := start("a"), start("b")
	taken := regexp.MustCompile(`msg="shard taken"`)
	given := regexp.MustCompile(`msg="shard given up"|msg="lease lost"`)
	// the shards a consumer holds, from its log
	count := func(p proc) int {
		out := p.out.String()
		return len(taken.FindAllString(out, -1)) - len(given.FindAllString(out, -1))
	}
	wait := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\na:\n%s\nb:\n%s", what, a.out.String(), b.out.String())
			}
		}
	}
	wait("two shards each", 20*time.Second, func() bool { return count(a) == 2 && count(b) == 2 })
	wait("the first results", 20*time.Second, func() bool { return resultsOf(t, store, streams, "count", base) == 8*4 })

	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	killed := time.Now()
	wait("a to take b's shards", 10*time.Second, func() bool { return count(a) == 4 })
	took := time.Since(killed)
	t.Logf("the dead consumer's shards were taken over in %v (lease TTL 2s)", took)
	if took > 4*time.Second+500*time.Millisecond {
		t.Errorf("take-over took %v, more than 2 × TTL", took)
	}

	fillArchive(t, store, streams, 4, 3, base)
	shards("split", "3") // 1 → 2
	fillArchive(t, store, streams, 7, 3, base)
	wait("results after the split", 30*time.Second, func() bool { return resultsOf(t, store, streams, "count", base) == 8*10 })
	shards("merge", "7", "8") // 2 → 1
	fillArchive(t, store, streams, 10, 3, base)
	wait("results after the merge", 30*time.Second, func() bool { return resultsOf(t, store, streams, "count", base) == 8*13 })
	if err := model.InOrder(); err != nil {
		t.Error(err)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, a.cmd, 20*time.Second); err != nil {
		t.Errorf("consume a: %v\n%s", err, a.out.String())
	}
}

// syncBuilder is a strings.Builder safe for a process's output and a
// reader.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
