package edgeagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

var spoolTracks = []fragment.Track{{ID: 1, Kind: fragment.KindAudio, Codec: fragment.CodecOpus, TimeScale: 48000, SampleRate: 48000, Channels: 1}}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testFragment makes fragment n of stream, size bytes, starting at start.
func testFragment(t testing.TB, stream string, n uint64, size int, start time.Time) (fragment.Metadata, []byte) {
	data := bytes.Repeat([]byte{byte(n)}, size)
	sum := sha256.Sum256(data)
	m := fragment.Metadata{
		Stream: stream, Number: n, ProducerStart: start, ProducerEnd: start.Add(2 * time.Second),
		ServerTime: time.Now(), Duration: 2 * time.Second, Size: int64(size), Container: fragment.ContainerFMP4,
		InitHash: fragment.ConfigHash(spoolTracks), SHA256: hex.EncodeToString(sum[:]),
		Tracks: []fragment.TrackRef{{ID: 1, Kind: fragment.KindAudio, Codec: fragment.CodecOpus}},
	}
	key, err := archive.Layout{}.FragmentKey(m)
	if err != nil {
		t.Fatal(err)
	}
	m.Key = key
	return m, data
}

func openTestSpool(t testing.TB, dir string, max int64, strategy string) *spool {
	s, err := openSpool(dir, max, strategy, false, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pendingNumbers(s *spool, stream string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	if st := s.streams[stream]; st != nil {
		for _, e := range st.pending {
			out = append(out, e.rec.Meta.Number)
		}
	}
	return out
}

func TestSpoolRecoverDropsTheCutFragment(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir, 1<<30, StrategyDeleteOldest)
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for n := uint64(1); n <= 5; n++ {
		m, data := testFragment(t, "cam", n, 1000, t0.Add(time.Duration(n)*2*time.Second))
		if err := s.add(m, data, spoolTracks); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	// a power loss while fragment 5 was being written: its file is cut short
	path := s.fragmentPath("cam", 5)
	if err := os.Truncate(path, 400); err != nil {
		t.Fatal(err)
	}
	// and a temp file of a write that never finished
	os.WriteFile(s.dir+"/cam/.tmp-123", []byte("x"), 0o644)

	s2 := openTestSpool(t, dir, 1<<30, StrategyDeleteOldest)
	defer s2.close()
	if got := pendingNumbers(s2, "cam"); len(got) != 4 || got[3] != 4 {
		t.Fatalf("pending after recovery %v, want 1..4", got)
	}
	if s2.streams["cam"].lost[LostCrash] != 1 {
		t.Errorf("lost %v", s2.streams["cam"].lost)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("the damaged file is still there")
	}
	if _, err := os.Stat(s.dir + "/cam/.tmp-123"); !os.IsNotExist(err) {
		t.Error("temp file left behind")
	}
	if s2.bytes != 4000 {
		t.Errorf("bytes %d", s2.bytes)
	}
	if n := s2.maxNumber("cam"); n != 4 {
		t.Errorf("max number %d", n)
	}
}

func TestSpoolDeleteOldest(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), 16<<20, StrategyDeleteOldest)
	defer s.close()
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for n := uint64(1); n <= 10; n++ {
		m, data := testFragment(t, "cam", n, 4<<20, t0.Add(time.Duration(n)*2*time.Second))
		if err := s.add(m, data, spoolTracks); err != nil {
			t.Fatal(err)
		}
	}
	got := pendingNumbers(s, "cam")
	if len(got) != 4 || got[0] != 7 || got[3] != 10 {
		t.Fatalf("pending %v, want the newest 7..10 inside the 16 MiB cap", got)
	}
	if lost := s.streams["cam"].lost[LostSpoolFull]; lost != 6 {
		t.Errorf("lost %d, want 6", lost)
	}
	if s.bytes > 16<<20 {
		t.Errorf("bytes %d over the cap", s.bytes)
	}
}

func TestSpoolDenyNew(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), 16<<20, StrategyDenyNew)
	defer s.close()
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	denied := 0
	for n := uint64(1); n <= 10; n++ {
		m, data := testFragment(t, "cam", n, 4<<20, t0.Add(time.Duration(n)*2*time.Second))
		if err := s.add(m, data, spoolTracks); errors.Is(err, ErrSpoolFull) {
			denied++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if got := pendingNumbers(s, "cam"); len(got) != 4 || got[0] != 1 {
		t.Fatalf("pending %v, want the first 1..4", got)
	}
	if denied != 6 || s.streams["cam"].lost[LostDenied] != 6 || !s.status().Paused {
		t.Errorf("denied %d, lost %v, paused %v", denied, s.streams["cam"].lost, s.status().Paused)
	}
}

func TestSpoolExpire(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), 1<<30, StrategyDeleteOldest)
	defer s.close()
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	for n := uint64(1); n <= 3; n++ {
		m, data := testFragment(t, "cam", n, 100, now)
		if err := s.add(m, data, spoolTracks); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	s.expire(90 * time.Minute) // now is 3:00 + 3h: fragments stored at 3:00 and 4:00 are older
	if got := pendingNumbers(s, "cam"); len(got) != 1 || got[0] != 3 {
		t.Fatalf("pending %v", got)
	}
	if s.streams["cam"].lost[LostExpired] != 2 {
		t.Errorf("lost %v", s.streams["cam"].lost)
	}
}

// flakyStore fails every Put while down is set.
type flakyStore struct {
	archive.Store
	mu   sync.Mutex
	down bool
	puts []string
}

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, o archive.PutOptions) (archive.ObjectInfo, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return archive.ObjectInfo{}, errors.New("dial tcp: connection refused")
	}
	info, err := f.Store.Put(ctx, key, r, size, o)
	if err == nil {
		f.mu.Lock()
		f.puts = append(f.puts, key)
		f.mu.Unlock()
	}
	return info, err
}

func TestUploaderOrderLiveFirstAndManifests(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir+"/spool", 1<<30, StrategyDeleteOldest)
	defer s.close()
	store := &flakyStore{Store: &archive.Local{Root: dir + "/archive"}, down: true}
	u := &uploader{spool: s, store: store, workers: 3, log: quietLog(),
		classify: func(error) (bool, string) { return true, "network" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// an hour and a bit of backlog for two streams while the store is down
	t0 := time.Date(2026, 11, 27, 2, 58, 0, 0, time.UTC)
	for n := uint64(1); n <= 80; n++ {
		for _, cam := range []string{"a", "b"} {
			m, data := testFragment(t, cam, n, 500, t0.Add(time.Duration(n)*2*time.Second))
			if err := s.add(m, data, spoolTracks); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	store.mu.Lock()
	store.down = false
	store.mu.Unlock()
	// a live fragment arrives while the backlog drains
	m, data := testFragment(t, "a", 81, 500, t0.Add(81*2*time.Second))
	if err := s.add(m, data, spoolTracks); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	before := len(store.puts) // uploads that went ahead before the live fragment existed
	store.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for s.status().Fragments > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog not drained: %d left", s.status().Fragments)
		}
		time.Sleep(10 * time.Millisecond)
	}
	store.mu.Lock()
	puts := append([]string(nil), store.puts...)
	store.mu.Unlock()
	// every fragment once; the live one early, not last
	seen := map[string]int{}
	livePos, frags := -1, 0
	aAfter := 0 // stream a's uploads after the live fragment was stored
	for i, k := range puts {
		if stream, _, n, _, err := archive.ParseFragmentKey(k); err == nil {
			seen[k]++
			if stream == "a" && n == 81 {
				livePos = aAfter
			}
			if stream == "a" && i >= before && livePos < 0 {
				aAfter++
			}
			frags++
		}
	}
	if frags != 161 || len(seen) != 161 {
		t.Fatalf("%d fragment puts, %d distinct, want 161", frags, len(seen))
	}
	// once stored, the live fragment is its stream's next upload (after
	// the one in flight, if any): ahead of the backlog
	if livePos < 0 || livePos > 1 {
		t.Errorf("the live fragment went up after %d of its stream's backlog uploads: not ahead of them", livePos)
	}
	// the 02:00 hour is closed: its manifest lists its fragments
	var idx archive.HourIndex
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		idx, err = archive.ReadHourIndex(context.Background(), store, archive.Layout{}, "a", t0)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("no manifest for the closed hour: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // the records are forgotten right after
	if len(idx.Fragments) != 59 {     // 02:58:02 .. 02:59:58
		t.Errorf("manifest has %d fragments, want 59", len(idx.Fragments))
	}
	// records of the closed hour are gone from the database
	if known, _ := s.uploadedIn("a", unixHour(t0)); len(known) != 0 {
		t.Errorf("%d records of a closed hour kept", len(known))
	}
}
