package edgeagent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/ingest/sensor"
)

// failMKV fails every fragment Put (a full disk, an outage) while on.
type failMKV struct {
	archive.Store
	on bool
}

func (f *failMKV) Put(ctx context.Context, key string, r io.Reader, size int64, o archive.PutOptions) (archive.ObjectInfo, error) {
	if f.on && strings.HasSuffix(key, archive.ExtMKV) {
		return archive.ObjectInfo{}, errors.New("write: no space left on device")
	}
	return f.Store.Put(ctx, key, r, size, o)
}

// TestSensorNDJSONAfterFragment: when a sensor fragment cannot be stored
// (a full disk), no NDJSON of it is left behind: the journal keeps its
// readings, the next run replays them into a fragment with its NDJSON, and
// every reading is once in streams/env/f/**/*.ndjson.
func TestSensorNDJSONAfterFragment(t *testing.T) {
	dataDir := t.TempDir()
	sc := edgeagent.StreamConfig{Name: "env", Sensor: &edgeagent.SensorConfig{
		Timestamp: sensor.Timestamp{Field: "ts", Format: sensor.FormatMillis},
		Period:    edgeagent.Duration(time.Second), Window: edgeagent.Duration(time.Second)}}
	run := func(store *failMKV, post bool) {
		cfg, err := edgeagent.FinishConfig(&edgeagent.Config{DataDir: dataDir, HTTP: edgeagent.HTTPConfig{Listen: "127.0.0.1:0"},
			Streams: []edgeagent.StreamConfig{sc}, PutMedia: edgeagent.PutMediaConfig{Tokens: []string{pushToken}}})
		if err != nil {
			t.Fatal(err)
		}
		if store.Store == nil {
			store.Store = &archive.Local{Root: cfg.Archive.Path}
		}
		a := &edgeagent.Agent{Config: cfg, Logger: testLogger(t), Store: store}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if post {
			var body bytes.Buffer
			start := time.Now().Add(-3 * time.Second).Truncate(time.Second)
			for i := 0; i < 10; i++ {
				fmt.Fprintf(&body, `{"ts":%d,"n":%d}`+"\n", start.Add(time.Duration(i)*100*time.Millisecond).UnixMilli(), i)
			}
			if code, res := postSamples(t, "http://"+a.Addr()+"/v1/streams/env/samples", "application/x-ndjson", body.String()); code != http.StatusOK {
				t.Fatalf("post: %d %s", code, res)
			}
		}
		time.Sleep(3 * time.Second)
		a.Close()
	}
	store := &failMKV{on: true}
	run(store, true)
	store.on = false
	run(store, false) // the journal replays what was not stored
	objs, err := store.List(context.Background(), "streams/env/f/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key[strings.LastIndexByte(o.Key, '/')+1:])
		if strings.HasSuffix(o.Key, archive.ExtNDJSON) {
			rc, _, _ := store.Get(context.Background(), o.Key, nil)
			b, _ := io.ReadAll(rc)
			rc.Close()
			lines += bytes.Count(b, []byte("\n"))
		}
	}
	if lines != 10 {
		t.Fatalf("%d NDJSON lines for 10 readings; objects %v", lines, keys)
	}
}
