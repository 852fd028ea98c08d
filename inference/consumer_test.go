package inference

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/internal/fixture"
)

// checkOrder fails unless every stream's fragments arrived in order and
// want[stream] of them arrived.
func checkOrder(t *testing.T, m *fixture.Model, want map[string]int) {
	t.Helper()
	if err := m.InOrder(); err != nil {
		t.Error(err)
	}
	for s, n := range want {
		if got := m.Distinct(s); got != n {
			t.Errorf("%s: %d fragments processed, want %d", s, got, n)
		}
	}
}

// archiveWith stores count fragments of each stream, 2 s apart.
func archiveWith(t *testing.T, st archive.Store, streams []string, count int, base time.Time) {
	for _, s := range streams {
		for i := range count {
			storeInput(t, st, syntheticInput(t, s, uint64(i+1), base.Add(time.Duration(i)*2*time.Second), 1500, 200, 200))
		}
	}
}

func newInvoker(t *testing.T, rs *Records, url string) *Invoker {
	h := Hook{Model: "order", Kind: KindSageMaker, URL: url, Timeout: 5 * time.Second}
	if err := h.Validate("h"); err != nil {
		t.Fatal(err)
	}
	return &Invoker{Hook: h, Records: rs, Backoff: time.Millisecond, Logger: quiet}
}

// TestConsumerLocal: one consumer without leases processes every fragment
// of every stream in order; stopped and started again, it skips none and
// repeats at most the fragment in flight.
func TestConsumerLocal(t *testing.T) {
	st := &archive.Local{Root: filepath.Join(t.TempDir(), "a")}
	streams := []string{"cam1", "cam2", "cam3"}
	base := time.Unix(1_700_000_000, 0).UTC()
	archiveWith(t, st, streams, 12, base)
	m := &fixture.Model{Delay: 5 * time.Millisecond}
	srv := httptest.NewServer(m)
	defer srv.Close()
	rs := &Records{Store: st}
	run := func(d time.Duration) {
		c := &Consumer{Store: st, Invokers: []*Invoker{newInvoker(t, rs, srv.URL)}, Local: true, Poll: 20 * time.Millisecond, Workers: 2, Logger: quiet}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run(100 * time.Millisecond) // part of the way
	waitUntil(t, 10*time.Second, func() bool { run(300 * time.Millisecond); return countResults(t, rs, streams, base) == 36 })
	checkOrder(t, m, map[string]int{"cam1": 12, "cam2": 12, "cam3": 12})
	for k, n := range m.Requests() {
		if n > 2 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
}

func countResults(t *testing.T, rs *Records, streams []string, base time.Time) int {
	n := 0
	for _, s := range streams {
		recs, err := rs.List(context.Background(), archive.RecordResult, s, "", base, base.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	return n
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killableStore fails every call once killed: a consumer that died (it
// can neither renew nor give up its leases).
type killableStore struct {
	archive.Store
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (k *killableStore) Put(ctx context.Context, key string, r io.Reader, size int64, o archive.PutOptions) (archive.ObjectInfo, error) {
	if k.dead.Load() {
		return archive.ObjectInfo{}, errKilled
	}
	return k.Store.Put(ctx, key, r, size, o)
}

func (k *killableStore) Get(ctx context.Context, key string, rng *archive.Range) (io.ReadCloser, archive.ObjectInfo, error) {
	if k.dead.Load() {
		return nil, archive.ObjectInfo{}, errKilled
	}
	return k.Store.Get(ctx, key, rng)
}

func (k *killableStore) List(ctx context.Context, prefix, after string, limit int) ([]archive.ObjectInfo, error) {
	if k.dead.Load() {
		return nil, errKilled
	}
	return k.Store.List(ctx, prefix, after, limit)
}

// TestConsumerLeases: two consumers share four shards two and two; when
// one dies, the other takes its shards within two lease TTLs. A split and
// a merge while they run keep every stream in order.
func TestConsumerLeases(t *testing.T) {
	st := &archive.Local{Root: filepath.Join(t.TempDir(), "a")}
	shards := &Shards{Store: st}
	now := time.Now()
	if _, err := shards.Update(context.Background(), func(m *ShardMap) error {
		parts, err := m.Split("0", now)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := m.Split(p.ID, now); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var streams []string
	for i := range 12 {
		streams = append(streams, fmt.Sprintf("cam%02d", i))
	}
	base := time.Unix(1_700_000_000, 0).UTC()
	archiveWith(t, st, streams, 3, base)
	m := &fixture.Model{}
	srv := httptest.NewServer(m)
	defer srv.Close()
	const ttl = 600 * time.Millisecond
	start := func(id string, store archive.Store) (*Consumer, context.CancelFunc, chan struct{}) {
		c := &Consumer{Store: store, Invokers: []*Invoker{newInvoker(t, &Records{Store: store}, srv.URL)}, ID: id,
			LeaseTTL: ttl, Poll: 30 * time.Millisecond, Workers: 4, Logger: quiet}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Run(ctx)
		}()
		return c, cancel, done
	}
	doomed := &killableStore{Store: st}
	a, cancelA, doneA := start("a", st)
	defer func() { cancelA(); <-doneA }()
	b, cancelB, doneB := start("b", doomed)
	defer func() { cancelB(); <-doneB }()

	waitUntil(t, 10*time.Second, func() bool { return len(a.Stats().Shards) == 2 && len(b.Stats().Shards) == 2 })
	rs := &Records{Store: st}
	waitUntil(t, 10*time.Second, func() bool { return countResults(t, rs, streams, base) == 36 })

	doomed.dead.Store(true)
	killed := time.Now()
	waitUntil(t, 10*time.Second, func() bool { return len(a.Stats().Shards) == 4 })
	took := time.Since(killed)
	t.Logf("shards of a dead consumer taken over in %v (TTL %v)", took, ttl)
	if took > 2*ttl+200*time.Millisecond {
		t.Errorf("take-over took %v, over 2 × TTL", took)
	}

	// split one of a's shards while more fragments arrive, then merge two
	add := func(from, n int) {
		for _, s := range streams {
			for i := from; i < from+n; i++ {
				storeInput(t, st, syntheticInput(t, s, uint64(i+1), base.Add(time.Duration(i)*2*time.Second), 1500, 200, 200))
			}
		}
	}
	add(3, 3)
	if _, err := shards.Update(context.Background(), func(m *ShardMap) error { _, err := m.Split(m.Open()[0].ID, time.Now()); return err }); err != nil {
		t.Fatal(err)
	}
	add(6, 3)
	waitUntil(t, 15*time.Second, func() bool { return countResults(t, rs, streams, base) == 12*9 })
	if _, err := shards.Update(context.Background(), func(m *ShardMap) error {
		o := m.Open()
		_, err := m.Merge(o[0].ID, o[1].ID, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	add(9, 3)
	waitUntil(t, 15*time.Second, func() bool { return countResults(t, rs, streams, base) == 12*12 })
	want := map[string]int{}
	for _, s := range streams {
		want[s] = 12
	}
	checkOrder(t, m, want)
	sm, _, err := shards.Load(context.Background())
	if err != nil || len(sm.Open()) != 4 || sm.Version != 5 {
		t.Errorf("shard map after 3 splits, a split and a merge: %d open, version %d, %v", len(sm.Open()), sm.Version, err)
	}
}

func TestShardMap(t *testing.T) {
	m := DefaultShardMap()
	now := time.Unix(0, 0)
	kids, err := m.Split("0", now)
	if err != nil || len(kids) != 2 || kids[0].To+1 != kids[1].From || kids[1].To != 1<<32-1 {
		t.Fatalf("split: %+v %v", kids, err)
	}
	if _, err := m.Split("0", now); !errors.Is(err, ErrNoShard) {
		t.Errorf("split of a closed shard: %v", err)
	}
	for _, s := range []string{"a", "b", "cam-1", "x.y"} {
		sh := m.Of(s)
		if sh == nil || sh.Closed || StreamHash(s) < sh.From || StreamHash(s) > sh.To {
			t.Errorf("%s → %+v", s, sh)
		}
	}
	more, _ := m.Split(kids[0].ID, now)
	if _, err := m.Merge(more[0].ID, kids[1].ID, now); err == nil {
		t.Error("merged shards that are not adjacent")
	}
	c, err := m.Merge(more[1].ID, kids[1].ID, now)
	if err != nil || c.From != more[1].From || c.To != kids[1].To || len(c.Parents) != 2 {
		t.Fatalf("merge: %+v %v", c, err)
	}
	if len(m.Open()) != 2 {
		t.Errorf("%d open shards", len(m.Open()))
	}
}

// TestConsumerSlowEndpoint: with every worker busy on a slow endpoint for
// longer than the lease TTL, the leases are still renewed: the shard stays
// with its consumer and every stream comes out whole and in order.
func TestConsumerSlowEndpoint(t *testing.T) {
	st := &archive.Local{Root: filepath.Join(t.TempDir(), "a")}
	streams := []string{"s1", "s2", "s3", "s4"}
	base := time.Unix(1_700_000_000, 0).UTC()
	archiveWith(t, st, streams, 3, base)
	m := &fixture.Model{Delay: 250 * time.Millisecond}
	srv := httptest.NewServer(m)
	defer srv.Close()
	c := &Consumer{Store: st, Invokers: []*Invoker{newInvoker(t, &Records{Store: st}, srv.URL)}, ID: "slow",
		LeaseTTL: 400 * time.Millisecond, Poll: 20 * time.Millisecond, Workers: 1, Logger: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	lost := 0
	waitUntil(t, 20*time.Second, func() bool {
		if len(c.Stats().Shards) == 0 && c.Stats().Processed > 0 {
			lost++
		}
		return countResults(t, &Records{Store: st}, streams, base) == 12
	})
	if lost > 0 {
		t.Errorf("the shard was lost %d times while the worker was busy", lost)
	}
	checkOrder(t, m, map[string]int{"s1": 3, "s2": 3, "s3": 3, "s4": 3})
	for k, n := range m.Requests() {
		if n > 1 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
}
