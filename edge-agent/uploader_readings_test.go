package edgeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest/sensor"
)

// refuseNDJSON: the archive refuses the .ndjson objects for good (a 4xx:
// a bucket policy, a gateway that does not take the content type...).
type refuseNDJSON struct{ archive.Store }

func (r refuseNDJSON) Put(ctx context.Context, key string, b io.Reader, size int64, o archive.PutOptions) (archive.ObjectInfo, error) {
	if strings.HasSuffix(key, archive.ExtNDJSON) {
		return archive.ObjectInfo{}, fmt.Errorf("readings: %w", archive.ErrInvalidMetadata) // ClassClient, not retryable
	}
	return r.Store.Put(ctx, key, b, size, o)
}

func sensorFragment(t *testing.T, n uint64, start time.Time) (fragment.Metadata, []byte) {
	rd := sensor.Reading{Time: start, Recv: start, Value: []byte(`{"t":1}`)}
	line := sensor.AppendLine(nil, &rd)
	f := &fragment.Fragment{TrackConfigs: []fragment.Track{sensor.Track},
		Samples: [][]fragment.Sample{{{DTS: start.UnixMilli(), Duration: 1000, Keyframe: true, Time: start.UnixNano(), Payload: line}}}}
	f.Metadata = fragment.Metadata{Stream: "env", Number: n, ProducerStart: start, ProducerEnd: start.Add(time.Second),
		Duration: time.Second, ServerTime: time.Now(), Container: fragment.ContainerMKV, SampleCount: 1,
		Tracks:   []fragment.TrackRef{{ID: sensor.Track.ID, Kind: sensor.Track.Kind, Codec: sensor.Track.Codec}},
		InitHash: fragment.ConfigHash(f.TrackConfigs)}
	data, err := fragment.AppendMKV(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m := f.Metadata
	m.SHA256, m.Size = hex.EncodeToString(sum[:]), int64(len(data))
	if m.Key, err = (archive.Layout{}).FragmentKey(m); err != nil {
		t.Fatal(err)
	}
	return m, data
}

// TestUploaderReadingsRefused: an archive that refuses a sensor fragment's
// NDJSON readings for good neither loses nor holds up the fragment through
// the spool: the readings are still in it.
func TestUploaderReadingsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir+"/spool", 1<<30, StrategyDeleteOldest)
	defer s.close()
	local := &archive.Local{Root: dir + "/archive"}
	u := &uploader{spool: s, store: refuseNDJSON{local}, workers: 1, log: quietLog(),
		classify: func(err error) (bool, string) { return archive.Retryable(err), archive.ErrorClass(err) }}
	m, data := sensorFragment(t, 1, time.Now().Add(-time.Minute).Truncate(time.Second))
	if err := s.add(m, data, []fragment.Track{sensor.Track}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.streams["env"].backoff.Min, s.streams["env"].backoff.Max = time.Millisecond, 2*time.Millisecond
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); s.status().Fragments > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := local.Stat(context.Background(), m.Key); err != nil {
		s.mu.Lock()
		lost := s.streams["env"].lost
		s.mu.Unlock()
		t.Fatalf("sensor fragment not in the archive (%v); spool lost %v, pending %d", err, lost, s.status().Fragments)
	}
}
