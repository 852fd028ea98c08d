package archive

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	store := &Local{Root: t.TempDir()}
	layout := Layout{Prefix: "p"}
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	// 3 hours of one fragment every 10 minutes, for two streams
	for _, s := range []string{"cam", "other"} {
		for i := 0; i < 18; i++ {
			key, err := layout.FragmentKeyAt(s, t0.Add(time.Duration(i)*10*time.Minute), uint64(i+1), fragment.ContainerFMP4)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Put(ctx, key, bytes.NewReader([]byte("abc")), 3, PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// an inference result of every fragment, for two models, and a
		// dead letter every hour
		for i := 0; i < 18; i++ {
			for _, kind := range []string{RecordResult, RecordDeadLetter} {
				for _, model := range []string{"m1", "m2"} {
					if kind == RecordDeadLetter && (model == "m2" || i%6 != 0) {
						continue
					}
					key, err := layout.RecordKey(s, kind, model, t0.Add(time.Duration(i)*10*time.Minute), uint64(i+1))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := store.Put(ctx, key, bytes.NewReader([]byte("{}")), 2, PutOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for h := 0; h < 3; h++ {
			key, _ := layout.HourIndexKey(s, t0.Add(time.Duration(h)*time.Hour))
			if _, err := store.Put(ctx, key, bytes.NewReader([]byte("{}")), 2, PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// keep from 02:30: only the 01:00 hour is wholly before it
	res, err := Prune(ctx, store, layout, "cam", t0.Add(90*time.Minute), true)
	if err != nil || res.Fragments != 6 || res.Manifests != 1 || res.Bytes != 18 || res.Records != 6*2+1 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if objs, _ := store.List(ctx, "p/streams/cam/", "", 0); len(objs) != 21+36+3 {
		t.Fatalf("dry run deleted something: %d objects", len(objs))
	}
	res, err = Prune(ctx, store, layout, "cam", t0.Add(90*time.Minute), false)
	if err != nil || res.Fragments != 6 || res.Manifests != 1 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	objs, _ := store.List(ctx, "p/streams/cam/f/", "", 0)
	if len(objs) != 14 || !bytes.Contains([]byte(objs[0].Key), []byte("/2026/11/27/02/")) {
		t.Fatalf("left %d objects, first %s", len(objs), objs[0].Key)
	}
	if recs, _ := store.List(ctx, "p/streams/cam/results/", "", 0); len(recs) != 24 || !bytes.Contains([]byte(recs[0].Key), []byte("/2026/11/27/02/")) {
		t.Fatalf("left %d results", len(recs))
	}
	if dead, _ := store.List(ctx, "p/streams/cam/deadletters/", "", 0); len(dead) != 2 {
		t.Fatalf("left %d dead letters", len(dead))
	}
	if others, _ := store.List(ctx, "p/streams/other/", "", 0); len(others) != 21+36+3 {
		t.Errorf("another stream was pruned: %d objects left", len(others))
	}
	// nothing more to prune
	if res, err := Prune(ctx, store, layout, "cam", t0.Add(90*time.Minute), false); err != nil || res.Fragments != 0 {
		t.Errorf("second prune %+v %v", res, err)
	}
}

// TestPruneReadings: the NDJSON readings beside sensor fragments are not
// listed as fragments, and go with their hour.
func TestPruneReadings(t *testing.T) {
	ctx := context.Background()
	store := &Local{Root: t.TempDir()}
	layout := Layout{}
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	for i := 0; i < 4; i++ { // 01:00, 01:40, 02:20, 03:00
		m := testMeta("env", uint64(i+1), t0.Add(time.Duration(i)*40*time.Minute), 2*time.Second)
		m.Container = fragment.ContainerMKV
		m = putFragment(t, store, layout, m)
		nk, err := ReadingsKey(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, nk, bytes.NewReader([]byte("{}\n")), 3, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := ListFragments(ctx, store, layout, ListRequest{Stream: "env", Limit: 100})
	if err != nil || len(res.Fragments) != 4 {
		t.Fatalf("listing: %d fragments, %v", len(res.Fragments), err)
	}
	pr, err := Prune(ctx, store, layout, "env", t0.Add(2*time.Hour), false)
	if err != nil || pr.Fragments != 3 || pr.Readings != 3 {
		t.Fatalf("prune: %+v %v", pr, err)
	}
	if objs, _ := store.List(ctx, "streams/env/f/", "", 0); len(objs) != 2 {
		t.Fatalf("%d objects left, want the last hour's fragment and readings", len(objs))
	}
	if _, err := ReadingsKey("streams/cam/f/2026/11/27/01/0000000000000-00000000000000000001.m4s"); err == nil {
		t.Fatal("readings beside an fMP4 fragment")
	}
}
