package edgeagent

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest"
)

// Spool states of a fragment.
const (
	spoolStored    = "stored"    // durable on local disk, not in the archive
	spoolUploading = "uploading" // an upload is under way (or was, at a crash)
	spoolUploaded  = "uploaded"  // in the archive; kept until its hour manifest is written
)

// Causes of lost fragments.
const (
	LostSpoolFull  = "spool_full"  // delete_oldest evicted a fragment not yet uploaded
	LostDenied     = "deny_new"    // deny_new refused a fragment: the spool was full
	LostExpired    = "expired"     // local retention passed before the upload
	LostCrash      = "crash"       // found incomplete after a crash or power loss
	LostWriteError = "write_error" // the spool could not write it
	LostArchive    = "archive"     // the archive refused it for good
	LostQueueFull  = "queue_full"  // the stream's writer could not keep up
)

// ErrSpoolFull is returned by Add under the deny_new strategy.
var ErrSpoolFull = errors.New("spool full: recording paused (strategy deny_new)")

var (
	bucketFragments = []byte("fragments")
	bucketInfo      = []byte("info")
)

// spoolRecord is what the spool's database keeps of a fragment.
type spoolRecord struct {
	Meta       fragment.Metadata `json:"meta"`
	State      string            `json:"state"`
	Attempts   int               `json:"attempts,omitempty"`
	LastError  string            `json:"last_error,omitempty"`
	StoredAt   time.Time         `json:"stored_at"`
	UploadedAt time.Time         `json:"uploaded_at,omitzero"`
	Kept       bool              `json:"kept,omitempty"` // file kept after upload
}

// spoolEntry is a fragment the spool holds on disk.
type spoolEntry struct {
	rec  spoolRecord
	path string
}

// spoolStream is the spool's view of one stream. Guarded by spool.mu.
type spoolStream struct {
	name     string
	pending  []*spoolEntry // not uploaded, by number
	kept     []*spoolEntry // uploaded, file kept (delete_after_upload false), by number
	inflight bool
	retryAt  time.Time
	backoff  ingest.Backoff
	blocked  string // a permanent upload error, retried slowly
	lastErr  string
	lastErrC string // its class
	info     []byte // stream.json
	infoUp   bool   // info uploaded
	inits    map[string]bool
	hours    map[int64]int  // pending fragments per hour (Unix hour)
	closed   map[int64]bool // hours with uploaded records waiting for a manifest
	openHour int64          // hour of the newest fragment
	lost     map[string]uint64
	uploaded uint64
	errors   map[string]uint64 // upload errors by class
}

// spool is the durable edge buffer: fragment files under dir, their states
// in a bbolt database. It is shared by the streams' store goroutines (Add)
// and the upload workers; its in-memory state is guarded by mu, and bbolt
// serialises (and batches) the commits.
type spool struct {
	dir      string
	db       *bolt.DB
	maxBytes int64
	strategy string
	keep     bool // keep files after upload
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	streams map[string]*spoolStream
	bytes   int64 // fragment bytes on disk
	full    bool  // deny_new is refusing fragments
	wake    chan struct{}
	order   []string // streams, for round-robin
	rr      int
}

func openSpool(dir string, maxBytes int64, strategy string, keep bool, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "spool.db"), 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("spool database %s: %w", filepath.Join(dir, "spool.db"), err)
	}
	s := &spool{
		dir: dir, db: db, maxBytes: maxBytes, strategy: strategy, keep: keep, log: log, now: time.Now,
		streams: map[string]*spoolStream{}, wake: make(chan struct{}, 1),
	}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *spool) close() error { return s.db.Close() }

func recordKey(stream string, number uint64) []byte {
	k := make([]byte, 0, len(stream)+9)
	k = append(k, stream...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, number)
}

func (s *spool) fragmentPath(stream string, number uint64) string {
	return filepath.Join(s.dir, stream, fmt.Sprintf("%020d.m4s", number))
}

func (s *spool) initPath(stream, hash string) string {
	return filepath.Join(s.dir, stream, "init", hash+".mp4")
}

func unixHour(t time.Time) int64 { return t.Unix() / 3600 }

// stream returns the stream's state, creating it. Call with mu held.
func (s *spool) stream(name string) *spoolStream {
	st := s.streams[name]
	if st == nil {
		st = &spoolStream{name: name, inits: map[string]bool{}, hours: map[int64]int{}, closed: map[int64]bool{},
			lost: map[string]uint64{}, errors: map[string]uint64{}}
		s.streams[name] = st
		s.order = append(s.order, name)
		sort.Strings(s.order)
	}
	return st
}

// recover rebuilds the in-memory state from the database after a start:
// a fragment whose file is missing, short or damaged (the one being written
// at a kill or power loss) is dropped and counted; fragments caught
// mid-upload are uploaded again, to the same key.
func (s *spool) recover() error {
	// temp files of interrupted writes
	_ = filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp-") {
			os.Remove(p)
		}
		return nil
	})
	type bad struct {
		key []byte
		rec spoolRecord
		why string
	}
	var drop []bad
	known := map[string]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		fb, err := tx.CreateBucketIfNotExists(bucketFragments)
		if err != nil {
			return err
		}
		ib, err := tx.CreateBucketIfNotExists(bucketInfo)
		if err != nil {
			return err
		}
		if err := ib.ForEach(func(k, v []byte) error {
			st := s.stream(string(k))
			st.info = append([]byte(nil), v...)
			return nil
		}); err != nil {
			return err
		}
		// the newest records of each stream are checked byte for byte: a
		// stream's fragments are written one after another, so only its
		// last one can have been cut short
		newest := map[string][]byte{}
		c := fb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var rec spoolRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				drop = append(drop, bad{key: append([]byte(nil), k...), why: "unreadable record"})
				continue
			}
			newest[rec.Meta.Stream] = append([]byte(nil), k...)
		}
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var rec spoolRecord
			if json.Unmarshal(v, &rec) != nil {
				continue
			}
			st := s.stream(rec.Meta.Stream)
			path := s.fragmentPath(rec.Meta.Stream, rec.Meta.Number)
			known[path] = true
			if rec.State == spoolUploaded {
				st.closed[unixHour(rec.Meta.ProducerStart)] = true
				if rec.Kept {
					if fi, err := os.Stat(path); err == nil && fi.Size() == rec.Meta.Size {
						st.kept = append(st.kept, &spoolEntry{rec: rec, path: path})
						s.bytes += rec.Meta.Size
					}
				}
				continue
			}
			full := bytes.Equal(newest[rec.Meta.Stream], k)
			if why := checkFile(path, rec.Meta, full); why != "" {
				drop = append(drop, bad{key: append([]byte(nil), k...), rec: rec, why: why})
				continue
			}
			if rec.State == spoolUploading {
				rec.State = spoolStored // uploaded again, to the same key
			}
			st.pending = append(st.pending, &spoolEntry{rec: rec, path: path})
			st.hours[unixHour(rec.Meta.ProducerStart)]++
			s.bytes += rec.Meta.Size
			if h := unixHour(rec.Meta.ProducerStart); h > st.openHour {
				st.openHour = h
			}
		}
		for _, d := range drop {
			if err := fb.Delete(d.key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool recovery: %w", err)
	}
	for _, d := range drop {
		if d.rec.Meta.Stream == "" {
			continue
		}
		os.Remove(s.fragmentPath(d.rec.Meta.Stream, d.rec.Meta.Number))
		st := s.stream(d.rec.Meta.Stream)
		st.lost[LostCrash]++
		s.log.Warn("spool: dropped a fragment cut short by a crash or power loss",
			"stream", d.rec.Meta.Stream, "number", d.rec.Meta.Number, "producer_start", d.rec.Meta.ProducerStart, "why", d.why)
	}
	// files without a record are leftovers of an eviction or deletion cut short
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(s.dir, e.Name()))
		for _, f := range files {
			p := filepath.Join(s.dir, e.Name(), f.Name())
			if !f.IsDir() && strings.HasSuffix(f.Name(), ".m4s") && !known[p] {
				os.Remove(p)
			}
		}
	}
	n := 0
	for _, st := range s.streams {
		n += len(st.pending)
	}
	if n > 0 {
		s.log.Info("spool: fragments waiting for upload", "fragments", n, "bytes", s.bytes)
	}
	return nil
}

// checkFile reports why a spooled file does not hold its fragment ("" when
// it does). With full, the content is checked against the sha256.
func checkFile(path string, m fragment.Metadata, full bool) string {
	f, err := os.Open(path)
	if err != nil {
		return "file missing"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != m.Size {
		return "file short"
	}
	if !full {
		return ""
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "file unreadable"
	}
	if hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return "file damaged"
	}
	return ""
}

// maxNumber returns the largest fragment number the spool knows of a stream.
func (s *spool) maxNumber(stream string) uint64 {
	var n uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFragments).Cursor()
		prefix := append([]byte(stream), 0)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if v := binary.BigEndian.Uint64(k[len(prefix):]); v > n {
				n = v
			}
		}
		return nil
	})
	return n
}

// setInfo records the stream's stream.json, to be uploaded.
func (s *spool) setInfo(stream string, info []byte) error {
	if err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInfo).Put([]byte(stream), info)
	}); err != nil {
		return err
	}
	s.mu.Lock()
	st := s.stream(stream)
	st.info, st.infoUp = info, false
	s.mu.Unlock()
	s.notify()
	return nil
}

func (s *spool) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// add makes a closed fragment durable in the spool: its record is
// committed, then its file is written and fsynced; only then does it count
// as stored. tracks are the fragment's codec configuration, whose init
// segment is spooled once. When the spool is full, delete_oldest evicts
// (uploaded fragments first, then the oldest not uploaded, counted as
// lost) and deny_new refuses the fragment with ErrSpoolFull.
func (s *spool) add(m fragment.Metadata, data []byte, tracks []fragment.Track) error {
	if err := s.makeRoom(m.Stream, m.Size); err != nil {
		return err
	}
	ip := s.initPath(m.Stream, m.InitHash)
	if !fragment.FMP4CarriesMedia(tracks) {
		// MKV fragments of codecs fMP4 does not carry here need no init
		// segment (one with a data track needs that of its audio and video)
	} else if _, err := os.Stat(ip); err != nil {
		b, err := fragment.MarshalInit(tracks)
		if err != nil {
			s.release(m.Size)
			return err
		}
		if err := writeFileAtomic(ip, b); err != nil {
			s.release(m.Size)
			return fmt.Errorf("spool init segment: %w", err)
		}
	}
	rec := spoolRecord{Meta: m, State: spoolStored, StoredAt: s.now().UTC()}
	v, err := json.Marshal(rec)
	if err != nil {
		s.release(m.Size)
		return err
	}
	if err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFragments).Put(recordKey(m.Stream, m.Number), v)
	}); err != nil {
		s.release(m.Size)
		return fmt.Errorf("spool database: %w", err)
	}
	path := s.fragmentPath(m.Stream, m.Number)
	if err := writeFileAtomic(path, data); err != nil {
		_ = s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketFragments).Delete(recordKey(m.Stream, m.Number)) })
		s.release(m.Size)
		return fmt.Errorf("spool: %w", err)
	}
	s.mu.Lock()
	st := s.stream(m.Stream)
	st.pending = append(st.pending, &spoolEntry{rec: rec, path: path})
	h := unixHour(m.ProducerStart)
	st.hours[h]++
	if h > st.openHour {
		st.openHour = h
	}
	s.mu.Unlock()
	s.notify()
	return nil
}

// makeRoom reserves size bytes, evicting or refusing as the strategy says.
func (s *spool) makeRoom(stream string, size int64) error {
	var victims []victim
	s.mu.Lock()
	for s.bytes+size > s.maxBytes {
		// uploaded fragments kept locally go first: nothing is lost
		var oldest *spoolStream
		for _, st := range s.streams {
			if len(st.kept) > 0 && (oldest == nil || st.kept[0].rec.StoredAt.Before(oldest.kept[0].rec.StoredAt)) {
				oldest = st
			}
		}
		if oldest != nil {
			e := oldest.kept[0]
			oldest.kept = oldest.kept[1:]
			s.bytes -= e.rec.Meta.Size
			victims = append(victims, victim{e: e})
			continue
		}
		if s.strategy == StrategyDenyNew {
			if !s.full {
				s.full = true
				s.log.Warn("spool full: recording paused until uploads make room", "bytes", s.bytes, "max", s.maxBytes)
			}
			s.stream(stream).lost[LostDenied]++
			s.mu.Unlock()
			s.evict(victims)
			return ErrSpoolFull
		}
		// delete_oldest: the oldest fragment not uploaded and not in flight
		var from *spoolStream
		idx := -1
		for _, st := range s.streams {
			for i, e := range st.pending {
				if st.inflight && i == st.inflightIndex() {
					continue
				}
				if from == nil || e.rec.StoredAt.Before(from.pending[idx].rec.StoredAt) {
					from, idx = st, i
				}
				break
			}
		}
		if from == nil {
			s.stream(stream).lost[LostSpoolFull]++
			s.mu.Unlock()
			s.evict(victims)
			return fmt.Errorf("spool full and nothing to evict: %w", ErrSpoolFull)
		}
		e := from.pending[idx]
		from.pending = append(from.pending[:idx], from.pending[idx+1:]...)
		from.hours[unixHour(e.rec.Meta.ProducerStart)]--
		from.lost[LostSpoolFull]++
		s.bytes -= e.rec.Meta.Size
		victims = append(victims, victim{e: e, lost: true})
	}
	if s.full {
		s.full = false
		s.log.Info("spool has room again: recording resumed")
	}
	s.bytes += size
	s.mu.Unlock()
	s.evict(victims)
	return nil
}

// inflightIndex is the index in pending of the fragment being uploaded.
// Uploads take pending[uploadIdx]; see next().
func (st *spoolStream) inflightIndex() int {
	for i, e := range st.pending {
		if e.rec.State == spoolUploading {
			return i
		}
	}
	return -1
}

// victim is a fragment leaving the spool; lost when it was not uploaded.
type victim struct {
	e    *spoolEntry
	lost bool
}

// evict deletes evicted fragments' files and records.
func (s *spool) evict(victims []victim) {
	if len(victims) == 0 {
		return
	}
	_ = s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFragments)
		for _, v := range victims {
			if v.lost {
				if err := b.Delete(recordKey(v.e.rec.Meta.Stream, v.e.rec.Meta.Number)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, v := range victims {
		os.Remove(v.e.path)
		if v.lost {
			m := v.e.rec.Meta
			s.log.Warn("spool full: deleted a fragment that was not uploaded", "stream", m.Stream, "number", m.Number,
				"producer_start", m.ProducerStart)
		}
	}
}

func (s *spool) release(size int64) {
	s.mu.Lock()
	s.bytes -= size
	s.mu.Unlock()
}

// countLost counts a fragment lost before it reached the spool.
func (s *spool) countLost(stream, cause string) {
	s.mu.Lock()
	s.stream(stream).lost[cause]++
	s.mu.Unlock()
}

// expire drops local fragments older than retention: uploaded ones
// silently, the others counted as lost.
func (s *spool) expire(retention time.Duration) {
	if retention <= 0 {
		return
	}
	cut := s.now().Add(-retention)
	var victims []victim
	s.mu.Lock()
	for _, st := range s.streams {
		for len(st.kept) > 0 && st.kept[0].rec.StoredAt.Before(cut) {
			victims = append(victims, victim{e: st.kept[0]})
			s.bytes -= st.kept[0].rec.Meta.Size
			st.kept = st.kept[1:]
		}
		keep := st.pending[:0]
		for _, e := range st.pending {
			if e.rec.StoredAt.Before(cut) && e.rec.State != spoolUploading {
				victims = append(victims, victim{e: e, lost: true})
				s.bytes -= e.rec.Meta.Size
				st.hours[unixHour(e.rec.Meta.ProducerStart)]--
				st.lost[LostExpired]++
				continue
			}
			keep = append(keep, e)
		}
		st.pending = keep
	}
	s.mu.Unlock()
	s.evict(victims)
}

// SpoolStatus is the spool's state in /v1/status.
type SpoolStatus struct {
	Path      string `json:"path"`
	Bytes     int64  `json:"bytes"`
	MaxBytes  int64  `json:"max_bytes"`
	Fragments int    `json:"fragments"`
	Strategy  string `json:"strategy"`
	// Paused is set while deny_new refuses fragments.
	Paused bool `json:"paused"`
}

// StreamUpload is a stream's upload state in /v1/status.
type StreamUpload struct {
	// BacklogFragments and BacklogBytes are what waits for the archive.
	BacklogFragments int   `json:"backlog_fragments"`
	BacklogBytes     int64 `json:"backlog_bytes"`
	// OldestPendingAgeMS is the age of the oldest fragment not uploaded.
	OldestPendingAgeMS int64  `json:"oldest_pending_age_ms"`
	Uploaded           uint64 `json:"uploaded"`
	// State: idle, uploading, retrying or blocked (an error retrying cannot
	// fix, such as wrong credentials, retried every minute).
	State         string            `json:"state"`
	LastError     string            `json:"last_error,omitempty"`
	ErrorsByClass map[string]uint64 `json:"errors_by_class,omitempty"`
	LostByCause   map[string]uint64 `json:"lost_by_cause,omitempty"`
}

func (s *spool) status() SpoolStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.streams {
		n += len(st.pending)
	}
	return SpoolStatus{Path: s.dir, Bytes: s.bytes, MaxBytes: s.maxBytes, Fragments: n, Strategy: s.strategy, Paused: s.full}
}

func (s *spool) streamStatus(name string) StreamUpload {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil {
		return StreamUpload{State: "idle"}
	}
	u := StreamUpload{BacklogFragments: len(st.pending), Uploaded: st.uploaded, LastError: st.lastErr,
		ErrorsByClass: copyCounts(st.errors), LostByCause: copyCounts(st.lost)}
	for _, e := range st.pending {
		u.BacklogBytes += e.rec.Meta.Size
	}
	if len(st.pending) > 0 {
		u.OldestPendingAgeMS = s.now().Sub(st.pending[0].rec.Meta.ServerTime).Milliseconds()
	}
	switch {
	case st.blocked != "":
		u.State = "blocked"
	case !st.retryAt.IsZero() && st.retryAt.After(s.now()):
		u.State = "retrying"
	case st.inflight:
		u.State = "uploading"
	default:
		u.State = "idle"
	}
	return u
}

func copyCounts(m map[string]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// uploadable reports whether some stream's uploads are not held back by a
// retry delay or a blocking error.
func (s *spool) uploadable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, st := range s.streams {
		if len(st.pending) > 0 && st.blocked == "" && !st.retryAt.After(now) {
			return true
		}
		if st.inflight {
			return true
		}
	}
	return false
}
