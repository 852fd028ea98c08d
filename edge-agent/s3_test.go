package edgeagent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/testenv"
)

// s3Config is an s3 archive config for a versitygw bucket.
func s3Config(gw *testenv.VersityGW, bucket string) edgeagent.ArchiveConfig {
	return edgeagent.ArchiveConfig{Type: "s3", S3: edgeagent.S3Config{
		Endpoint: gw.Endpoint, Bucket: bucket, AccessKey: gw.AccessKey, SecretKey: gw.SecretKey, CreateBucket: true,
	}}
}

func s3Store(t testing.TB, gw *testenv.VersityGW, bucket string) *archive.S3 {
	t.Helper()
	s, err := archive.NewS3(archive.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, AccessKey: gw.AccessKey, SecretKey: gw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startSpoolAgent starts an agent whose archive is cfg, with a spool.
func startSpoolAgent(t testing.TB, arch edgeagent.ArchiveConfig, spool edgeagent.SpoolConfig, streams ...edgeagent.StreamConfig) *edgeagent.Agent {
	t.Helper()
	cfg, err := edgeagent.FinishConfig(&edgeagent.Config{
		DataDir: t.TempDir(), HTTP: edgeagent.HTTPConfig{Listen: "127.0.0.1:0"}, Archive: arch, Spool: spool, Streams: streams,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &edgeagent.Agent{Config: cfg, Logger: testLogger(t), ShutdownGrace: 10 * time.Second}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func oneCamera(t testing.TB, name, preset string) *camsim.Server {
	t.Helper()
	cam := camsim.Presets(repoTestdata(t))[preset]
	cam.Name = name
	sim := &camsim.Server{Addr: "127.0.0.1:0", TCPOnly: true, Cameras: []camsim.Camera{cam}, Logger: testLogger(t)}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// checkUploadedExactly checks that the bucket holds every fragment the
// agent stored, once, in order, each valid.
func checkUploadedExactly(t *testing.T, a *edgeagent.Agent, store archive.Store, stream string, allow map[uint64]bool) []storedFragment {
	t.Helper()
	st := statusOf(a, stream)
	frags := verify(t, store, stream, checks{target: 2 * time.Second, gop: time.Second, frame: 34 * time.Millisecond, minFrags: 3,
		videoCodec: fragment.CodecH264, audioCodec: fragment.CodecAAC, allowDiscontinuity: allow})
	if uint64(len(frags)) != st.Counters.Fragments {
		t.Errorf("%s: the bucket lists %d fragments, the agent stored %d", stream, len(frags), st.Counters.Fragments)
	}
	if st.Upload == nil || st.Upload.BacklogFragments != 0 || st.Upload.Uploaded != st.Counters.Fragments {
		t.Errorf("%s: upload status %+v", stream, st.Upload)
	}
	seen := map[uint64]bool{}
	for _, f := range frags {
		if seen[f.meta.Number] {
			t.Errorf("%s: fragment %d listed twice", stream, f.meta.Number)
		}
		seen[f.meta.Number] = true
	}
	return frags
}

// TestS3Archive: camsim -> agent -> spool -> versitygw. Every fragment is
// uploaded and passes the ffmpeg check; ListFragments returns exactly the
// fragments produced, in order; the hour manifest is written once an hour
// is closed.
func TestS3Archive(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	gw := testenv.StartVersityGW(t)
	sim := oneCamera(t, "door", "h264_aac")
	a := startSpoolAgent(t, s3Config(gw, "tributary"), edgeagent.SpoolConfig{}, streamCfg("door", sim.URL("door")))
	waitFor(t, 10*time.Second, "streaming", func() bool { return statusOf(a, "door").State == ingest.StateStreaming })
	// uploaded within a second of being stored
	waitFor(t, 10*time.Second, "a first upload", func() bool {
		u := statusOf(a, "door").Upload
		return u != nil && u.Uploaded > 0
	})
	// listed within a second of its upload
	store := s3Store(t, gw, "tributary")
	up := statusOf(a, "door").Upload.Uploaded
	waitFor(t, 10*time.Second, "the next upload", func() bool { return statusOf(a, "door").Upload.Uploaded > up })
	uploadedAt := time.Now()
	waitFor(t, time.Second, "ListFragments to show it", func() bool {
		res, err := archive.ListFragments(context.Background(), store, archive.Layout{}, archive.ListRequest{Stream: "door", Start: time.Unix(0, 0), Limit: 1000})
		return err == nil && uint64(len(res.Fragments)) > up
	})
	t.Logf("listed %v after its upload", time.Since(uploadedAt).Round(time.Millisecond))
	time.Sleep(6 * time.Second)
	a.Close()
	checkUploadedExactly(t, a, store, "door", nil)
	if _, err := store.Stat(context.Background(), "streams/door/stream.json"); err != nil {
		t.Errorf("stream.json: %v", err)
	}
}

// TestS3Outage stops the object store for 60 s mid-run: nothing is lost or
// duplicated, order is kept, and the backlog drains fast.
func TestS3Outage(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	gw := testenv.StartVersityGW(t)
	sim := oneCamera(t, "yard", "h264_aac")
	a := startSpoolAgent(t, s3Config(gw, "tributary"), edgeagent.SpoolConfig{}, streamCfg("yard", sim.URL("yard")))
	waitFor(t, 10*time.Second, "a first upload", func() bool {
		u := statusOf(a, "yard").Upload
		return u != nil && u.Uploaded > 0
	})
	time.Sleep(3 * time.Second)
	gw.Stop()
	time.Sleep(60 * time.Second)
	st := statusOf(a, "yard")
	backlog := st.Upload.BacklogFragments
	if backlog < 25 || st.Upload.State != "retrying" || st.Upload.ErrorsByClass["network"] == 0 {
		t.Errorf("during the outage: upload status %+v", st.Upload)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitFor(t, 60*time.Second, "the backlog to drain", func() bool {
		return statusOf(a, "yard").Upload.BacklogFragments == 0
	})
	drain := time.Since(back)
	t.Logf("outage of 60 s: %d fragments (%.0f s of media) drained in %v: %.0f× real time, %.1f fragments/s",
		backlog, float64(backlog)*2, drain.Round(time.Millisecond), float64(backlog)*2/drain.Seconds(), float64(backlog)/drain.Seconds())
	time.Sleep(2 * time.Second)
	a.Close()
	st = statusOf(a, "yard")
	if st.Counters.FragmentsLost != 0 || len(st.Upload.LostByCause) != 0 {
		t.Errorf("lost fragments: %+v %+v", st.Counters, st.Upload.LostByCause)
	}
	checkUploadedExactly(t, a, s3Store(t, gw, "tributary"), "yard", nil)
}

// TestS3BadInput: wrong keys, a missing bucket, an unreachable endpoint and
// a bucket name S3 rejects each give a clear error on the status, and the
// spool keeps every fragment.
func TestS3BadInput(t *testing.T) {
	t.Parallel()
	gw := testenv.StartVersityGW(t)
	gw.MakeBucket(t, "exists")
	sim := oneCamera(t, "cam", "h264_aac")
	cases := []struct {
		name string
		cfg  func(*edgeagent.ArchiveConfig)
		want string
	}{
		{"wrong keys", func(c *edgeagent.ArchiveConfig) { c.S3.Bucket = "exists"; c.S3.SecretKey = "wrong-secret-0000" }, "credentials"},
		{"missing bucket", func(c *edgeagent.ArchiveConfig) { c.S3.Bucket = "nope"; c.S3.CreateBucket = false }, "bucket"},
		{"unreachable", func(c *edgeagent.ArchiveConfig) {
			c.S3.Bucket = "tributary"
			c.S3.Endpoint = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		}, "connect"},
		{"bad bucket name", func(c *edgeagent.ArchiveConfig) { c.S3.Bucket = "Bad_Bucket" }, "archive.s3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			arch := s3Config(gw, "x")
			tc.cfg(&arch)
			a := startSpoolAgent(t, arch, edgeagent.SpoolConfig{}, streamCfg("cam", sim.URL("cam")))
			waitFor(t, 20*time.Second, "three spooled fragments", func() bool { return statusOf(a, "cam").Counters.Fragments >= 3 })
			st := statusOf(a, "cam")
			if st.Upload == nil || !strings.Contains(st.Upload.LastError, tc.want) || st.Upload.Uploaded != 0 {
				t.Errorf("upload status %+v, want an error mentioning %q", st.Upload, tc.want)
			}
			if uint64(st.Upload.BacklogFragments) != st.Counters.Fragments || st.Counters.FragmentsLost != 0 {
				t.Errorf("the spool does not hold every fragment: backlog %d, stored %d, lost %d",
					st.Upload.BacklogFragments, st.Counters.Fragments, st.Counters.FragmentsLost)
			}
			if strings.Contains(st.Upload.LastError, "wrong-secret") || strings.Contains(st.Upload.LastError, gw.SecretKey) {
				t.Error("a secret is in the status")
			}
			t.Logf("%s: %s (%s)", tc.name, st.Upload.LastError, st.Upload.State)
		})
	}
}

// TestSpoolFull: the bucket is unreachable and the spool small:
// delete_oldest keeps the newest fragments inside the cap, deny_new stops
// recording and says so; both count exactly.
func TestSpoolFull(t *testing.T) {
	t.Parallel()
	sim := oneCamera(t, "cam", "h264_aac")
	down := edgeagent.ArchiveConfig{Type: "s3", S3: edgeagent.S3Config{
		Endpoint: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Bucket: "b", AccessKey: "k", SecretKey: "s"}}
	for _, strategy := range []string{edgeagent.StrategyDeleteOldest, edgeagent.StrategyDenyNew} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			a := startSpoolAgent(t, down, edgeagent.SpoolConfig{MaxBytes: 1 << 20, Strategy: strategy}, streamCfg("cam", sim.URL("cam")))
			waitFor(t, 60*time.Second, "the spool to fill", func() bool {
				st := statusOf(a, "cam")
				return st.Upload != nil && st.Counters.Fragments+st.Counters.FragmentsLost >= 14 && (st.Counters.FragmentsLost > 0 || len(st.Upload.LostByCause) > 0)
			})
			time.Sleep(3 * time.Second)
			st := statusOf(a, "cam")
			sp := a.SpoolStatus()
			u := st.Upload
			t.Logf("%s: stored %d, backlog %d (%d bytes), lost %v, denied %d, spool %+v", strategy, st.Counters.Fragments,
				u.BacklogFragments, u.BacklogBytes, u.LostByCause, st.Counters.FragmentsDenied, sp)
			if sp.Bytes > sp.MaxBytes {
				t.Errorf("spool holds %d bytes over its %d cap", sp.Bytes, sp.MaxBytes)
			}
			switch strategy {
			case edgeagent.StrategyDeleteOldest:
				evicted := u.LostByCause[edgeagent.LostSpoolFull]
				if evicted == 0 || uint64(u.BacklogFragments)+evicted != st.Counters.Fragments {
					t.Errorf("stored %d = backlog %d + evicted %d does not hold", st.Counters.Fragments, u.BacklogFragments, evicted)
				}
				// the newest are kept: the last stored fragment is in the backlog
				if st.LastFragment == nil || u.BacklogFragments == 0 {
					t.Error("nothing kept")
				}
			case edgeagent.StrategyDenyNew:
				denied := u.LostByCause[edgeagent.LostDenied]
				if !sp.Paused || denied == 0 || denied != st.Counters.FragmentsDenied || !strings.Contains(st.LastError, "spool full") {
					t.Errorf("deny_new: paused %v, denied %d/%d, last error %q", sp.Paused, denied, st.Counters.FragmentsDenied, st.LastError)
				}
				if uint64(u.BacklogFragments) != st.Counters.Fragments {
					t.Errorf("deny_new evicted: backlog %d, stored %d", u.BacklogFragments, st.Counters.Fragments)
				}
			}
		})
	}
}
