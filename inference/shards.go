package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tributary-io/tributary/archive"
)

// Errors of shard maps.
var (
	ErrNoShard  = errors.New("no such open shard")
	ErrConflict = errors.New("changed by someone else meanwhile")
)

// ShardMap partitions streams into shards, the unit of consumer
// parallelism and order, by a 32-bit hash of the stream's name. It lives in
// the archive at _system/shards.json; without one, there is a single shard
// "0". Split and merge close shards and open children with the closed
// shards as parents: a child starts only once its parents are drained, so
// each stream's fragments stay in order across a reshard.
type ShardMap struct {
	// Version counts the changes.
	Version int     `json:"version"`
	Shards  []Shard `json:"shards"`
}

// Shard is a range of stream hashes.
type Shard struct {
	ID string `json:"id"`
	// From and To bound the hash range, both included.
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
	// Parents are the shards this one was split or merged from.
	Parents []string `json:"parents,omitempty"`
	// Closed shards were split or merged: their streams belong to their
	// children now.
	Closed  bool      `json:"closed,omitempty"`
	Created time.Time `json:"created"`
}

// StreamHash is where a stream falls in the hash space (FNV-1a).
func StreamHash(stream string) uint32 {
	h := fnv.New32a()
	io.WriteString(h, stream)
	return h.Sum32()
}

// DefaultShardMap is the map of an archive without one: one shard.
func DefaultShardMap() *ShardMap {
	return &ShardMap{Version: 0, Shards: []Shard{{ID: "0", From: 0, To: math.MaxUint32}}}
}

// Shard returns the shard with the id, or nil.
func (m *ShardMap) Shard(id string) *Shard {
	for i := range m.Shards {
		if m.Shards[i].ID == id {
			return &m.Shards[i]
		}
	}
	return nil
}

// Of returns the open shard of a stream.
func (m *ShardMap) Of(stream string) *Shard {
	h := StreamHash(stream)
	for i := range m.Shards {
		s := &m.Shards[i]
		if !s.Closed && h >= s.From && h <= s.To {
			return s
		}
	}
	return nil
}

// Open returns the open shards, by hash range.
func (m *ShardMap) Open() []Shard {
	var out []Shard
	for _, s := range m.Shards {
		if !s.Closed {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}

func (m *ShardMap) nextID() string {
	n := 0
	for _, s := range m.Shards {
		if v, err := strconv.Atoi(s.ID); err == nil && v >= n {
			n = v + 1
		}
	}
	return strconv.Itoa(n)
}

// Split closes an open shard and opens two children, each with half its
// hash range.
func (m *ShardMap) Split(id string, now time.Time) ([]Shard, error) {
	s := m.Shard(id)
	if s == nil || s.Closed {
		return nil, fmt.Errorf("%w: %q", ErrNoShard, id)
	}
	if s.From == s.To {
		return nil, fmt.Errorf("shard %q covers one hash: it cannot split", id)
	}
	mid := s.From + (s.To-s.From)/2
	s.Closed = true
	a := Shard{ID: m.nextID(), From: s.From, To: mid, Parents: []string{id}, Created: now.UTC()}
	m.Shards = append(m.Shards, a)
	b := Shard{ID: m.nextID(), From: mid + 1, To: m.Shard(id).To, Parents: []string{id}, Created: now.UTC()}
	m.Shards = append(m.Shards, b)
	m.Version++
	return []Shard{a, b}, nil
}

// Merge closes two open shards with adjacent ranges and opens one child
// covering both.
func (m *ShardMap) Merge(id1, id2 string, now time.Time) (Shard, error) {
	a, b := m.Shard(id1), m.Shard(id2)
	if a == nil || a.Closed {
		return Shard{}, fmt.Errorf("%w: %q", ErrNoShard, id1)
	}
	if b == nil || b.Closed {
		return Shard{}, fmt.Errorf("%w: %q", ErrNoShard, id2)
	}
	if a.From > b.From {
		a, b = b, a
	}
	if a.To == math.MaxUint32 || a.To+1 != b.From {
		return Shard{}, fmt.Errorf("shards %q and %q are not adjacent", id1, id2)
	}
	a.Closed, b.Closed = true, true
	c := Shard{ID: m.nextID(), From: a.From, To: b.To, Parents: []string{a.ID, b.ID}, Created: now.UTC()}
	m.Shards = append(m.Shards, c)
	m.Version++
	return c, nil
}

// Shards reads and writes an archive's shard map.
type Shards struct {
	Store  archive.Store
	Layout archive.Layout
}

// Load returns the map and its ETag ("" when the archive has none yet:
// the default map).
func (ss *Shards) Load(ctx context.Context) (*ShardMap, string, error) {
	key, err := ss.Layout.SystemKey("shards.json")
	if err != nil {
		return nil, "", err
	}
	rc, info, err := ss.Store.Get(ctx, key, nil)
	if errors.Is(err, archive.ErrNotFound) {
		return DefaultShardMap(), "", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	var m ShardMap
	if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(&m); err != nil {
		return nil, "", fmt.Errorf("%s: %w", key, err)
	}
	return &m, info.ETag, nil
}

// Save writes the map if it has not changed since it was loaded with
// etag; ErrConflict otherwise.
func (ss *Shards) Save(ctx context.Context, m *ShardMap, etag string) error {
	key, err := ss.Layout.SystemKey("shards.json")
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	opts := archive.PutOptions{ContentType: "application/json", IfMatch: etag, IfNoneMatch: etag == ""}
	_, err = ss.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), opts)
	if errors.Is(err, archive.ErrPreconditionFailed) {
		return fmt.Errorf("shard map: %w", ErrConflict)
	}
	return err
}

// Update loads the map, applies change and saves it, again on a conflict
// (up to 5 times).
func (ss *Shards) Update(ctx context.Context, change func(*ShardMap) error) (*ShardMap, error) {
	for range 5 {
		m, etag, err := ss.Load(ctx)
		if err != nil {
			return nil, err
		}
		if err := change(m); err != nil {
			return nil, err
		}
		if err := ss.Save(ctx, m, etag); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf("shard map: %w, 5 times", ErrConflict)
}
