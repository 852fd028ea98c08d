package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// Defaults of Consumer's fields.
const (
	DefaultLeaseTTL = 10 * time.Second
	DefaultPoll     = time.Second
	DefaultWorkers  = 8
	DefaultLookback = 10 * time.Minute
)

// Consumer runs hooks on the fragments in an archive: per stream in order,
// checkpointing after each fragment, so a restart resumes with no fragment
// skipped (the fragment in flight at a crash is sent again, with the same
// idempotency key). The streams are those of the shards it leases: leases
// are objects in the archive written with conditional writes, renewed
// every third of their TTL; a dead consumer's shards are taken over once
// its leases expire, and live consumers share the open shards evenly. In
// Local mode there are no leases: one process takes every shard.
//
// A fragment that lands behind a stream's checkpoint (a spool uploading
// after an outage) is caught by a look back over the last Lookback of the
// stream, which processes sampled fragments that have no record.
type Consumer struct {
	// Store and Layout locate the archive. Required.
	Store  archive.Store
	Layout archive.Layout
	// Invokers run the hooks. Required.
	Invokers []*Invoker
	// Group names the consumer group: its checkpoints and leases. Groups
	// run independently. Default "default".
	Group string
	// ID names this consumer among its group. Default host-pid-random.
	ID string
	// Local takes every shard without leases (one consumer).
	Local bool
	// LeaseTTL is how long a lease holds without renewal. Default 10 s.
	LeaseTTL time.Duration
	// Poll is the interval between looks for new fragments. Default 1 s.
	Poll time.Duration
	// Workers is the number of streams processed at once. Default 8.
	Workers int
	// Lookback is how far behind its checkpoint a stream is scanned for
	// late fragments. Default 10 min; negative turns it off.
	Lookback time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	once    sync.Once
	records *Records
	shards  Shards
	owner   string // in leases: ID and a per-process nonce

	mu     sync.Mutex
	runCtx context.Context
	held   map[string]*heldLease // shard id → lease
	cps    map[string]*checkpoint
	busy   map[string]bool
	inits  map[string][]byte
	smap   *ShardMap
	lastLB map[string]time.Time
	// a stream that failed waits until retryAt; retryIn is its backoff
	retryAt map[string]time.Time
	retryIn map[string]time.Duration

	processed, dead, failed atomic.Uint64
}

// heldLease is a lease this consumer holds. Its context ends when the
// lease is lost or given up: work on the shard's streams runs under it.
type heldLease struct {
	etag    string
	expires time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	timer   *time.Timer // cancels ctx as the lease runs out
	// releasing: no new work starts; the lease is renewed until the
	// shard's streams are idle, then given up (drained when it closed)
	releasing, drained bool
}

// leaseBody is a lease object.
type leaseBody struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
	// Drained is set when the owner gave the shard up after it closed,
	// with every fragment it took done.
	Drained bool `json:"drained,omitempty"`
}

// stop ends the lease's work and its expiry timer.
func (l *heldLease) stop() {
	l.timer.Stop()
	l.cancel()
}

// checkpoint is where a stream's processing stands.
type checkpoint struct {
	Key     string    `json:"key"` // the last fragment done, in key order
	Number  uint64    `json:"number"`
	Start   time.Time `json:"producer_start"`
	Updated time.Time `json:"updated"`
	Owner   string    `json:"owner"`
	etag    string
}

// ConsumerStats are a consumer's counts.
type ConsumerStats struct {
	ID          string   `json:"id"`
	Shards      []string `json:"shards"`
	Processed   uint64   `json:"processed"`
	DeadLetters uint64   `json:"dead_letters"`
	Failed      uint64   `json:"failed"`
}

func (c *Consumer) defaults() {
	if c.Group == "" {
		c.Group = "default"
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%04x", sanitizeID(host), os.Getpid(), rand.IntN(1<<16))
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Lookback == 0 {
		c.Lookback = DefaultLookback
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.owner = fmt.Sprintf("%s#%08x", c.ID, rand.Uint32())
	c.records = &Records{Store: c.Store, Layout: c.Layout}
	c.shards = Shards{Store: c.Store, Layout: c.Layout}
	c.held = map[string]*heldLease{}
	c.cps = map[string]*checkpoint{}
	c.busy = map[string]bool{}
	c.inits = map[string][]byte{}
	c.lastLB = map[string]time.Time{}
	c.retryAt = map[string]time.Time{}
	c.retryIn = map[string]time.Duration{}
	for _, iv := range c.Invokers {
		iv.init()
	}
}

func sanitizeID(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			b[i] = '-'
		}
	}
	if len(b) == 0 || !(b[0] >= 'a' && b[0] <= 'z' || b[0] >= 'A' && b[0] <= 'Z' || b[0] >= '0' && b[0] <= '9') {
		b = append([]byte("c"), b...)
	}
	return string(b[:min(len(b), 100)])
}

// Run consumes until ctx ends, then gives its leases up.
func (c *Consumer) Run(ctx context.Context) error {
	c.once.Do(c.defaults)
	if err := fragment.ValidateStreamName(c.Group); err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	if err := fragment.ValidateStreamName(c.ID); err != nil {
		return fmt.Errorf("consumer id: %w", err)
	}
	c.Logger.Info("consumer starting", "group", c.Group, "id", c.ID, "local", c.Local, "hooks", len(c.Invokers))
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	work := make(chan string)
	var wg sync.WaitGroup
	for range c.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				err := c.stream(ctx, s)
				c.mu.Lock()
				delete(c.busy, s)
				if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					// back off: 1 s, doubling up to 30 s, so a failing
					// archive or endpoint is not hammered every poll
					d := min(max(2*c.retryIn[s], time.Second), 30*time.Second)
					c.retryIn[s], c.retryAt[s] = d, c.Now().Add(d)
					c.mu.Unlock()
					c.Logger.Warn("stream: will retry", "stream", s, "in", d, "err", err)
					continue
				}
				delete(c.retryIn, s)
				delete(c.retryAt, s)
				c.mu.Unlock()
			}
		}()
	}
	// leases are renewed on their own, whatever the workers are doing
	leaseDone := make(chan struct{})
	if !c.Local {
		go func() {
			defer close(leaseDone)
			t := time.NewTicker(c.LeaseTTL / 3)
			defer t.Stop()
			for {
				if err := c.leases(ctx); err != nil && ctx.Err() == nil {
					c.Logger.Warn("leases", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	} else {
		close(leaseDone)
	}
	defer func() {
		close(work)
		wg.Wait()
		<-leaseDone
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.LeaseTTL)
		defer cancel()
		c.releaseAll(rctx)
	}()
	t := time.NewTicker(c.Poll)
	defer t.Stop()
	next := 0 // where the round starts: every stream gets its turn
	for {
		if m, _, err := c.shards.Load(ctx); err == nil {
			c.mu.Lock()
			c.smap = m
			c.mu.Unlock()
		}
		streams, err := archive.ListStreams(ctx, c.Store, c.Layout)
		if err != nil && ctx.Err() == nil {
			c.Logger.Warn("listing streams", "err", err)
		}
		for k := range streams {
			s := streams[(next+k)%len(streams)]
			if _, ok := c.mine(s); !ok {
				continue
			}
			c.mu.Lock()
			if c.busy[s] || c.Now().Before(c.retryAt[s]) {
				c.mu.Unlock()
				continue
			}
			c.busy[s] = true
			c.mu.Unlock()
			sent := false
			select {
			case work <- s:
				sent = true
			default: // every worker is busy: the next round
			}
			if !sent {
				c.mu.Lock()
				delete(c.busy, s)
				c.mu.Unlock()
				next = (next + k) % max(len(streams), 1)
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// mine returns the context to process the stream under, if this
// consumer processes it now: its shard is held (or Local), not being given
// up, and its lease is good for a while yet.
func (c *Consumer) mine(stream string) (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.smap == nil {
		return nil, false
	}
	s := c.smap.Of(stream)
	if s == nil {
		return nil, false
	}
	if c.Local {
		return c.runCtx, c.runCtx != nil
	}
	l := c.held[s.ID]
	if l == nil || l.releasing || !c.Now().Before(l.expires.Add(-c.LeaseTTL/6)) {
		return nil, false
	}
	return l.ctx, true
}

// leases renews the leases held (first, whatever else fails), gives up
// closed shards and shards over this consumer's share once their streams
// are idle, and takes free ones up to the share.
func (c *Consumer) leases(ctx context.Context) error {
	c.mu.Lock()
	ids := make([]string, 0, len(c.held))
	for id := range c.held {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		if err := c.renew(ctx, id); err != nil && ctx.Err() == nil {
			c.Logger.Warn("lease lost", "shard", id, "err", err)
		}
	}
	m, _, err := c.shards.Load(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.smap = m
	c.mu.Unlock()
	if err := c.heartbeat(ctx); err != nil {
		return err
	}
	live, err := c.liveConsumers(ctx)
	if err != nil {
		return err
	}
	open := m.Open()
	share := (len(open) + max(live, 1) - 1) / max(live, 1)

	// closed shards and those over the share are given up once idle
	c.mu.Lock()
	kept := 0
	for _, id := range ids {
		l := c.held[id]
		if l == nil {
			continue
		}
		s := m.Shard(id)
		switch {
		case s == nil || s.Closed:
			l.releasing, l.drained = true, s != nil
		case !l.releasing && kept >= share:
			l.releasing = true
		case !l.releasing:
			kept++
		}
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.mu.Lock()
		l := c.held[id]
		c.mu.Unlock()
		if l != nil && l.releasing && !c.shardBusy(id) {
			c.giveUp(ctx, id, l)
		}
	}
	// take free shards up to the share, in a random order so that
	// consumers starting together do not all try the same one
	rand.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
	for _, s := range open {
		if kept >= share {
			break
		}
		c.mu.Lock()
		_, have := c.held[s.ID]
		c.mu.Unlock()
		if have || !c.startable(ctx, m, s.ID, map[string]bool{}) {
			continue
		}
		if ok, err := c.acquire(ctx, s.ID); err != nil {
			return err
		} else if ok {
			c.Logger.Info("shard taken", "shard", s.ID)
			kept++
		}
	}
	return nil
}

// startable reports whether a shard's parents are drained: each parent's
// lease was given up as drained or expired, or, for a parent never leased,
// its own parents are drained (a split of a split before anyone took the
// middle one).
func (c *Consumer) startable(ctx context.Context, m *ShardMap, id string, seen map[string]bool) bool {
	s := m.Shard(id)
	if s == nil || seen[id] {
		return s != nil
	}
	seen[id] = true
	for _, p := range s.Parents {
		body, _, err := c.readLease(ctx, p)
		switch {
		case errors.Is(err, archive.ErrNotFound):
			if !c.startable(ctx, m, p, seen) {
				return false
			}
		case err != nil:
			return false
		case !body.Drained && c.Now().Before(body.Expires):
			return false
		}
	}
	return true
}

func (c *Consumer) leaseKey(shard string) (string, error) {
	return c.Layout.SystemKey("leases", c.Group, shard+".json")
}

func (c *Consumer) readLease(ctx context.Context, shard string) (leaseBody, string, error) {
	key, err := c.leaseKey(shard)
	if err != nil {
		return leaseBody{}, "", err
	}
	var b leaseBody
	etag, err := c.getJSON(ctx, key, &b)
	return b, etag, err
}

func (c *Consumer) writeLease(ctx context.Context, shard string, b leaseBody, etag string) (string, error) {
	// a write that hangs must not outlive the lease it renews
	ctx, cancel := context.WithTimeout(ctx, c.LeaseTTL/3)
	defer cancel()
	key, err := c.leaseKey(shard)
	if err != nil {
		return "", err
	}
	return c.putJSON(ctx, key, b, etag, true)
}

// acquire takes a shard whose lease is absent or expired.
func (c *Consumer) acquire(ctx context.Context, shard string) (bool, error) {
	cur, etag, err := c.readLease(ctx, shard)
	switch {
	case errors.Is(err, archive.ErrNotFound):
		etag = ""
	case err != nil:
		return false, err
	case cur.Owner != c.owner && c.Now().Before(cur.Expires):
		return false, nil
	}
	exp := c.Now().Add(c.LeaseTTL)
	netag, err := c.writeLease(ctx, shard, leaseBody{Owner: c.owner, Expires: exp}, etag)
	if errors.Is(err, archive.ErrPreconditionFailed) {
		return false, nil // someone else was quicker
	}
	if err != nil {
		return false, err
	}
	// the shard's work stops a little before the lease would expire
	// unrenewed, whatever the renewals are doing
	lctx, cancel := context.WithCancel(ctx)
	l := &heldLease{etag: netag, expires: exp, ctx: lctx, cancel: cancel}
	l.timer = time.AfterFunc(time.Until(exp.Add(-c.LeaseTTL/6)), cancel)
	c.mu.Lock()
	c.held[shard] = l
	c.mu.Unlock()
	return true, nil
}

func (c *Consumer) renew(ctx context.Context, shard string) error {
	c.mu.Lock()
	l := c.held[shard]
	c.mu.Unlock()
	exp := c.Now().Add(c.LeaseTTL)
	etag, err := c.writeLease(ctx, shard, leaseBody{Owner: c.owner, Expires: exp}, l.etag)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			l.stop() // stop the shard's work: someone else may take it
			delete(c.held, shard)
		}
		return err
	}
	l.etag, l.expires = etag, exp
	l.timer.Reset(time.Until(exp.Add(-c.LeaseTTL / 6)))
	return nil
}

// giveUp gives up an idle shard: drained when it closed, so its
// children may start.
func (c *Consumer) giveUp(ctx context.Context, shard string, l *heldLease) {
	if _, err := c.writeLease(ctx, shard, leaseBody{Owner: c.owner, Expires: c.Now(), Drained: l.drained}, l.etag); err != nil {
		c.Logger.Warn("giving up a lease", "shard", shard, "err", err)
	} else {
		c.Logger.Info("shard given up", "shard", shard, "drained", l.drained)
	}
	l.stop()
	c.mu.Lock()
	delete(c.held, shard)
	c.mu.Unlock()
}

func (c *Consumer) shardBusy(shard string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := c.smap.Shard(shard)
	if sh == nil {
		return false
	}
	for s := range c.busy {
		if h := StreamHash(s); h >= sh.From && h <= sh.To {
			return true
		}
	}
	return false
}

func (c *Consumer) releaseAll(ctx context.Context) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.held))
	for id := range c.held {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.mu.Lock()
		l := c.held[id]
		c.mu.Unlock()
		if l != nil {
			c.giveUp(ctx, id, l) // the workers have stopped
		}
	}
}

// heartbeat says this consumer is alive, for the others' share.
func (c *Consumer) heartbeat(ctx context.Context) error {
	key, err := c.Layout.SystemKey("consumers", c.Group, c.ID+".json")
	if err != nil {
		return err
	}
	_, err = c.putJSON(ctx, key, leaseBody{Owner: c.owner, Expires: c.Now().Add(c.LeaseTTL)}, "", false)
	return err
}

// liveConsumers counts the group's consumers with a fresh heartbeat.
func (c *Consumer) liveConsumers(ctx context.Context) (int, error) {
	prefix, err := c.Layout.SystemKey("consumers", c.Group)
	if err != nil {
		return 0, err
	}
	objs, err := c.Store.List(ctx, prefix+"/", "", 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range objs {
		var b leaseBody
		if _, err := c.getJSON(ctx, o.Key, &b); err == nil && c.Now().Before(b.Expires) {
			n++
		} else if err == nil && c.Now().Sub(b.Expires) > time.Hour {
			c.Store.Delete(ctx, o.Key) // long gone
		}
	}
	return n, nil
}

// stream processes a stream's new fragments in order.
func (c *Consumer) stream(ctx context.Context, name string) error {
	cp, err := c.checkpoint(ctx, name)
	if err != nil {
		return err
	}
	if err := c.lookBack(ctx, name, cp); err != nil && ctx.Err() == nil {
		// the stream's new fragments go on; the look-back comes again
		c.Logger.Warn("look-back failed", "stream", name, "err", err)
	}
	req := archive.ListRequest{Stream: name, Start: cp.Start, Limit: 200}
	for {
		res, err := archive.ListFragments(ctx, c.Store, c.Layout, req)
		if err != nil {
			return err
		}
		for _, m := range res.Fragments {
			if cp.Key != "" && m.Key <= cp.Key {
				continue
			}
			sctx, ok := c.mine(name)
			if !ok {
				return nil // the lease went: stop at a fragment boundary
			}
			if err := c.process(sctx, m); err != nil {
				return err
			}
			cp.Key, cp.Number, cp.Start = m.Key, m.Number, m.ProducerStart
			if err := c.saveCheckpoint(ctx, name, cp); err != nil {
				return err
			}
		}
		if res.NextToken == "" {
			return nil
		}
		req.Token = res.NextToken
	}
}

// lookBack processes sampled fragments behind the checkpoint that have no
// record: fragments that landed late. It runs once per Lookback/10.
func (c *Consumer) lookBack(ctx context.Context, name string, cp *checkpoint) error {
	if c.Lookback < 0 || cp.Key == "" {
		return nil
	}
	c.mu.Lock()
	last := c.lastLB[name]
	c.mu.Unlock()
	if c.Now().Sub(last) < c.Lookback/10 {
		return nil
	}
	from := cp.Start.Add(-c.Lookback)
	have := map[string]map[uint64]bool{}
	for _, iv := range c.Invokers {
		have[iv.Hook.Model] = map[uint64]bool{}
		for _, kind := range []string{archive.RecordResult, archive.RecordDeadLetter} {
			if err := c.records.Numbers(ctx, kind, name, iv.Hook.Model, from, cp.Start.Add(time.Millisecond), have[iv.Hook.Model]); err != nil {
				return err
			}
		}
	}
	req := archive.ListRequest{Stream: name, Start: from, End: cp.Start, Limit: archive.MaxListFragmentsLimit}
	for {
		res, err := archive.ListFragments(ctx, c.Store, c.Layout, req)
		if err != nil {
			return err
		}
		if err := c.lateOnes(name, cp, from, res.Fragments, have); err != nil {
			return err
		}
		if res.NextToken == "" {
			break
		}
		req.Token = res.NextToken
	}
	c.mu.Lock()
	c.lastLB[name] = c.Now()
	c.mu.Unlock()
	return nil
}

// lateOnes processes the sampled fragments of a look-back page that have
// no record.
func (c *Consumer) lateOnes(name string, cp *checkpoint, from time.Time, frags []fragment.Metadata, have map[string]map[uint64]bool) error {
	for _, m := range frags {
		// the records were listed from `from`: a fragment that straddles
		// it would never be found done
		if m.Key >= cp.Key || m.ProducerStart.Before(from) {
			continue
		}
		sctx, ok := c.mine(name)
		if !ok {
			return nil
		}
		var todo []*Invoker
		for _, iv := range c.Invokers {
			if iv.Hook.Applies(name) && iv.Hook.Samples(&m) && !have[iv.Hook.Model][m.Number] {
				todo = append(todo, iv)
			}
		}
		if len(todo) > 0 {
			c.Logger.Info("late fragment behind the checkpoint", "stream", name, "fragment", m.Number)
			if err := c.run(sctx, m, todo); err != nil {
				return err
			}
		}
	}
	return nil
}

// process runs every hook that takes the fragment.
func (c *Consumer) process(ctx context.Context, m fragment.Metadata) error {
	var todo []*Invoker
	for _, iv := range c.Invokers {
		if iv.Hook.Applies(m.Stream) && iv.Hook.Samples(&m) {
			todo = append(todo, iv)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	return c.run(ctx, m, todo)
}

func (c *Consumer) run(ctx context.Context, m fragment.Metadata, todo []*Invoker) error {
	in, err := c.input(ctx, m)
	if errors.Is(err, archive.ErrNotFound) {
		// deleted by retention since the listing, or an init segment the
		// agent could not store: nothing to send, ever
		var errs []error
		for _, iv := range todo {
			c.dead.Add(1)
			errs = append(errs, iv.Fail(ctx, &Input{Meta: m}, PlacementArchive, err))
		}
		return errors.Join(errs...)
	}
	if err != nil {
		return err
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, iv := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := iv.Process(ctx, in, PlacementArchive)
			switch {
			case err != nil:
				c.failed.Add(1)
				errs[i] = err
			case out.DeadLetter:
				c.dead.Add(1)
			default:
				c.processed.Add(1)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// input reads a fragment and its init segment.
func (c *Consumer) input(ctx context.Context, m fragment.Metadata) (*Input, error) {
	data, err := c.get(ctx, m.Key, 256<<20)
	if err != nil {
		return nil, fmt.Errorf("fragment %s: %w", m.Key, err)
	}
	in := &Input{Meta: m, Data: data}
	if m.Container == fragment.ContainerMKV || m.InitHash == "" {
		return in, nil
	}
	c.mu.Lock()
	init := c.inits[m.Stream+"/"+m.InitHash]
	c.mu.Unlock()
	if init == nil {
		key, err := c.Layout.InitKey(m.Stream, m.InitHash)
		if err != nil {
			return nil, err
		}
		if init, err = c.get(ctx, key, 1<<20); err != nil {
			return nil, fmt.Errorf("init segment %s: %w", key, err)
		}
		c.mu.Lock()
		if len(c.inits) > 1000 {
			clear(c.inits)
		}
		c.inits[m.Stream+"/"+m.InitHash] = init
		c.mu.Unlock()
	}
	in.Init = init
	return in, nil
}

func (c *Consumer) checkpointKey(stream string) (string, error) {
	return c.Layout.SystemKey("checkpoints", c.Group, stream+".json")
}

func (c *Consumer) checkpoint(ctx context.Context, stream string) (*checkpoint, error) {
	c.mu.Lock()
	cp := c.cps[stream]
	c.mu.Unlock()
	if cp != nil && !c.Local {
		// another consumer may have moved it while the shard was theirs
		key, err := c.checkpointKey(stream)
		if err != nil {
			return nil, err
		}
		info, err := c.Store.Stat(ctx, key)
		if err != nil && !errors.Is(err, archive.ErrNotFound) {
			return nil, err
		}
		if err != nil || info.ETag != cp.etag {
			cp = nil
		}
	}
	if cp != nil {
		return cp, nil
	}
	key, err := c.checkpointKey(stream)
	if err != nil {
		return nil, err
	}
	cp = &checkpoint{}
	etag, err := c.getJSON(ctx, key, cp)
	if err != nil && !errors.Is(err, archive.ErrNotFound) {
		return nil, err
	}
	cp.etag = etag
	c.mu.Lock()
	c.cps[stream] = cp
	c.mu.Unlock()
	return cp, nil
}

func (c *Consumer) saveCheckpoint(ctx context.Context, stream string, cp *checkpoint) error {
	key, err := c.checkpointKey(stream)
	if err != nil {
		return err
	}
	cp.Updated, cp.Owner = c.Now().UTC(), c.ID
	etag, err := c.putJSON(ctx, key, cp, cp.etag, true)
	if err != nil {
		c.mu.Lock()
		delete(c.cps, stream) // reread it next time
		c.mu.Unlock()
		return fmt.Errorf("checkpoint of %s: %w", stream, err)
	}
	cp.etag = etag
	return nil
}

// Stats returns the consumer's counts.
func (c *Consumer) Stats() ConsumerStats {
	c.once.Do(c.defaults)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ConsumerStats{ID: c.ID, Processed: c.processed.Load(), DeadLetters: c.dead.Load(), Failed: c.failed.Load()}
	for id := range c.held {
		st.Shards = append(st.Shards, id)
	}
	sort.Slice(st.Shards, func(i, j int) bool {
		a, _ := strconv.Atoi(st.Shards[i])
		b, _ := strconv.Atoi(st.Shards[j])
		return a < b
	})
	return st
}

func (c *Consumer) get(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, _, err := c.Store.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// getJSON reads a small JSON object and returns its ETag.
func (c *Consumer) getJSON(ctx context.Context, key string, v any) (string, error) {
	rc, info, err := c.Store.Get(ctx, key, nil)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(v); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return info.ETag, nil
}

// putJSON writes a small JSON object: over etag (compare and swap), else
// create-only when create is set, else unconditionally.
func (c *Consumer) putJSON(ctx context.Context, key string, v any, etag string, create bool) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	opts := archive.PutOptions{ContentType: "application/json", IfMatch: etag, IfNoneMatch: etag == "" && create}
	info, err := c.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		return "", err
	}
	return info.ETag, nil
}
