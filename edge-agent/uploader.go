package edgeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/ingest/sensor"
)

// blockedRetry is how often a stream whose uploads hit an error retrying
// cannot fix (wrong credentials, a missing bucket) tries again, so that a
// fixed store is picked up without a restart.
const blockedRetry = time.Minute

// maxClientErrors is how many times the archive may refuse one fragment
// with a client error before it is given up (and counted as lost).
const maxClientErrors = 5

// liveWindow: the newest spooled fragment of a stream goes up first while
// it is this fresh, so live keeps flowing while a backlog drains.
const liveWindow = 10 * time.Second

// uploader moves spooled fragments to the archive with bounded concurrency
// and at most one upload per stream at a time, so each stream's fragments
// land in order (live first, backlog interleaved), writes the hour
// manifests of closed hours, and retries with backoff.
type uploader struct {
	spool   *spool
	store   archive.Store
	layout  archive.Layout
	workers int
	log     *slog.Logger
	// classify returns whether an error is worth retrying and its class.
	classify func(error) (retry bool, class string)
	// onUploaded is called after a fragment is in the archive.
	onUploaded func(m fragment.Metadata, latency time.Duration)
}

// uploadJob is one unit of a stream's upload work.
type uploadJob struct {
	st    *spoolStream
	e     *spoolEntry // the fragment to upload, if any
	info  []byte      // stream.json to upload, if any
	hours []int64     // closed hours whose manifest is due
}

// run runs the workers until ctx ends.
func (u *uploader) run(ctx context.Context) {
	var wg sync.WaitGroup
	if c, ok := u.store.(interface{ Check(context.Context) error }); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.probe(ctx, c.Check)
		}()
	}
	for i := 0; i < u.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.worker(ctx)
		}()
	}
	wg.Wait()
}

// probe watches a store that uploads found unreachable: once a second it
// asks the store (a HEAD of the bucket) and, when it answers again, ends
// every stream's backoff at once, so the backlog drains as soon as the
// store is back instead of when the longest backoff runs out.
func (u *uploader) probe(ctx context.Context, check func(context.Context) error) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !u.spool.waitingOnStore() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			u.log.Info("archive reachable again: resuming uploads")
			u.spool.endBackoff()
		}
	}
}

func (u *uploader) worker(ctx context.Context) {
	for ctx.Err() == nil {
		job, wait := u.spool.next()
		if job == nil {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-u.spool.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		u.spool.notify() // there may be more: let an idle worker look
		jctx, cancel := context.WithTimeout(ctx, uploadTimeout(job))
		err := u.do(jctx, job)
		cancel()
		if ctx.Err() != nil {
			u.spool.finish(job, ctx.Err(), false, "", u.log)
			return
		}
		retry, class := true, ""
		if err != nil {
			retry, class = u.classify(err)
		}
		m, ok := u.spool.finish(job, err, retry, class, u.log)
		if ok && u.onUploaded != nil {
			u.onUploaded(m, time.Since(m.ServerTime))
		}
	}
}

// uploadTimeout bounds a job: 30 s plus the time to send its fragment at
// 256 KiB/s, so a stalled connection ends in a retry, not a hang.
func uploadTimeout(j *uploadJob) time.Duration {
	d := 30 * time.Second
	if j.e != nil {
		d += time.Duration(j.e.rec.Meta.Size) * time.Second / (256 << 10)
	}
	return d
}

// do performs a job's requests.
func (u *uploader) do(ctx context.Context, j *uploadJob) error {
	st := j.st
	if j.info != nil {
		key, err := u.layout.StreamKey(st.name)
		if err != nil {
			return err
		}
		if _, err := u.store.Put(ctx, key, bytes.NewReader(j.info), int64(len(j.info)), archive.PutOptions{ContentType: "application/json"}); err != nil {
			return fmt.Errorf("stream.json: %w", err)
		}
		u.spool.infoUploaded(st, j.info)
	}
	if j.e != nil {
		m := j.e.rec.Meta
		if !u.spool.initUploaded(st, m.InitHash) {
			if err := u.putInit(ctx, st.name, m.InitHash, m.Container); err != nil {
				return err
			}
			u.spool.setInitUploaded(st, m.InitHash)
		}
		md, err := archive.EncodeMetadata(m)
		if err != nil {
			return err
		}
		f, err := os.Open(j.e.path)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		_, err = u.store.Put(ctx, m.Key, f, m.Size, archive.PutOptions{ContentType: contentType(m.Container), Metadata: md})
		f.Close()
		if err != nil {
			return fmt.Errorf("fragment %d: %w", m.Number, err)
		}
		if sensor.HasReadings(&m) {
			// after the fragment (putReadings); a failure that may pass
			// sends both again, another leaves the readings in the
			// fragment alone rather than holding it up
			data, err := os.ReadFile(j.e.path)
			if err == nil {
				err = putReadings(ctx, u.store, &m, data)
			}
			if err != nil {
				if retry, _ := u.classify(err); retry && !errors.Is(err, sensor.ErrBadFragment) {
					return err
				}
				u.log.Error("sensor fragment without its NDJSON readings", "stream", st.name, "number", m.Number, "err", err)
			}
		}
	}
	for _, h := range j.hours {
		if err := u.writeManifest(ctx, st.name, h); err != nil {
			return err
		}
	}
	return nil
}

func (u *uploader) putInit(ctx context.Context, stream, hash, container string) error {
	b, err := os.ReadFile(u.spool.initPath(stream, hash))
	if errors.Is(err, fs.ErrNotExist) && container == fragment.ContainerMKV {
		return nil // codecs fMP4 does not carry: MKV fragments need no init segment
	}
	if err != nil {
		return fmt.Errorf("spool: init segment %s: %w", hash, err)
	}
	key, err := u.layout.InitKey(stream, hash)
	if err != nil {
		return err
	}
	_, err = u.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), archive.PutOptions{ContentType: "video/mp4", IfNoneMatch: true})
	if err != nil && !errors.Is(err, archive.ErrPreconditionFailed) {
		return fmt.Errorf("init segment %s: %w", hash, err)
	}
	return nil
}

// writeManifest writes the manifest of a closed hour from the uploaded
// records the spool kept for it, then forgets them.
func (u *uploader) writeManifest(ctx context.Context, stream string, h int64) error {
	hour := time.Unix(h*3600, 0).UTC()
	known, keys := u.spool.uploadedIn(stream, h)
	// a manifest written before (a backfill into a closed hour) saves the
	// Stat of every fragment it already describes
	if old, err := archive.ReadHourIndex(ctx, u.store, u.layout, stream, hour); err == nil {
		known = append(old.Fragments, known...)
	}
	if err := archive.WriteHourIndexKnown(ctx, u.store, u.layout, stream, hour, known); err != nil {
		return fmt.Errorf("hour manifest %s: %w", hour.Format(time.RFC3339), err)
	}
	u.spool.forget(stream, h, keys)
	return nil
}

// ---- spool side of uploads ----

// next picks the next job: streams round-robin, one job per stream at a
// time; within a stream the newest fragment while it is fresh, else the
// oldest. With nothing to do it returns how long to wait.
func (s *spool) next() (*uploadJob, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	wait := time.Minute
	n := len(s.order)
	for i := 0; i < n; i++ {
		st := s.streams[s.order[(s.rr+i)%n]]
		if st.inflight {
			continue
		}
		if st.retryAt.After(now) {
			wait = min(wait, st.retryAt.Sub(now))
			continue
		}
		job := &uploadJob{st: st}
		if !st.infoUp && st.info != nil {
			job.info = st.info
		}
		if p := st.pending; len(p) > 0 {
			e := p[0]
			if last := p[len(p)-1]; len(p) > 1 && last.rec.Attempts == 0 && now.Sub(last.rec.StoredAt) < liveWindow {
				e = last
			}
			job.e = e
			e.rec.State = spoolUploading
		}
		for h := range st.closed {
			if st.hours[h] == 0 && (h < st.openHour || now.After(time.Unix((h+1)*3600, 0).Add(archive.MaxFragmentDuration))) {
				job.hours = append(job.hours, h)
			}
		}
		if job.info == nil && job.e == nil && len(job.hours) == 0 {
			continue
		}
		st.inflight = true
		s.rr = (s.rr + i + 1) % n
		return job, 0
	}
	return nil, wait
}

// finish records a job's outcome. It returns the uploaded fragment's
// metadata and true when a fragment reached the archive.
func (s *spool) finish(j *uploadJob, err error, retry bool, class string, log *slog.Logger) (fragment.Metadata, bool) {
	st := j.st
	var m fragment.Metadata
	if j.e != nil {
		m = j.e.rec.Meta
	}
	if err != nil {
		s.mu.Lock()
		st.inflight = false
		stopping := errors.Is(err, context.Canceled)
		if j.e != nil {
			j.e.rec.State = spoolStored
			if !stopping {
				j.e.rec.Attempts++
				j.e.rec.LastError = err.Error()
			}
		}
		if stopping {
			s.mu.Unlock()
			return m, false
		}
		st.errors[class]++
		st.lastErr, st.lastErrC = err.Error(), class
		giveUp := false
		switch {
		case retry:
			st.blocked = ""
			st.retryAt = s.now().Add(st.backoff.Next())
		case class == "client" && j.e != nil && j.e.rec.Attempts < maxClientErrors:
			st.retryAt = s.now().Add(st.backoff.Next())
		case class == "client" && j.e != nil:
			giveUp = true
		default:
			st.blocked = err.Error()
			st.retryAt = s.now().Add(blockedRetry)
		}
		var rec spoolRecord
		if j.e != nil {
			rec = j.e.rec
		}
		if giveUp {
			s.removePending(st, j.e)
			st.lost[LostArchive]++
		}
		s.mu.Unlock()
		if giveUp {
			log.Error("archive refused a fragment for good; dropped", "stream", st.name, "number", m.Number, "err", err)
			s.evict([]victim{{e: j.e, lost: true}})
		} else if j.e != nil {
			log.Warn("upload failed", "stream", st.name, "number", m.Number, "class", class, "retry", retry, "err", err)
			s.saveRecord(rec)
		} else {
			log.Warn("upload failed", "stream", st.name, "class", class, "err", err)
		}
		return m, false
	}

	if j.e == nil {
		s.mu.Lock()
		st.inflight = false
		st.blocked, st.lastErr = "", ""
		st.retryAt = time.Time{}
		s.mu.Unlock()
		return m, false
	}
	rec := j.e.rec
	rec.State = spoolUploaded
	rec.UploadedAt = s.now().UTC()
	rec.Kept = s.keep
	s.saveRecord(rec)
	if !s.keep {
		os.Remove(j.e.path)
	}
	s.mu.Lock()
	st.inflight = false
	st.blocked, st.lastErr = "", ""
	st.retryAt = time.Time{}
	st.backoff.Reset()
	j.e.rec = rec
	s.removePending(st, j.e)
	st.closed[unixHour(m.ProducerStart)] = true
	st.uploaded++
	if s.keep {
		st.kept = append(st.kept, j.e)
	} else {
		s.bytes -= m.Size
	}
	s.mu.Unlock()
	return m, true
}

// waitingOnStore reports whether a stream waits out a backoff after a
// retryable failure (the store was down or overloaded).
func (s *spool) waitingOnStore() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, st := range s.streams {
		if st.blocked == "" && st.retryAt.After(now) {
			return true
		}
	}
	return false
}

// endBackoff lets every stream that waits out a retryable failure try again now.
func (s *spool) endBackoff() {
	s.mu.Lock()
	for _, st := range s.streams {
		if st.blocked == "" {
			st.retryAt = time.Time{}
			st.backoff.Reset()
		}
	}
	s.mu.Unlock()
	s.notify()
}

// removePending takes e out of the stream's pending list. Call with mu held.
func (s *spool) removePending(st *spoolStream, e *spoolEntry) {
	for i, p := range st.pending {
		if p == e {
			st.pending = append(st.pending[:i], st.pending[i+1:]...)
			st.hours[unixHour(e.rec.Meta.ProducerStart)]--
			return
		}
	}
}

func (s *spool) saveRecord(rec spoolRecord) {
	v, err := json.Marshal(rec)
	if err != nil {
		return
	}
	if err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFragments).Put(recordKey(rec.Meta.Stream, rec.Meta.Number), v)
	}); err != nil {
		s.log.Error("spool database", "err", err)
	}
}

func (s *spool) infoUploaded(st *spoolStream, info []byte) {
	s.mu.Lock()
	if bytes.Equal(st.info, info) {
		st.infoUp = true
	}
	s.mu.Unlock()
}

func (s *spool) initUploaded(st *spoolStream, hash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return st.inits[hash]
}

func (s *spool) setInitUploaded(st *spoolStream, hash string) {
	s.mu.Lock()
	st.inits[hash] = true
	s.mu.Unlock()
}

// uploadedIn returns the metadata of a stream's uploaded fragments of hour
// h, and their record keys.
func (s *spool) uploadedIn(stream string, h int64) ([]fragment.Metadata, [][]byte) {
	var ms []fragment.Metadata
	var keys [][]byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFragments).Cursor()
		prefix := append([]byte(stream), 0)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec spoolRecord
			if json.Unmarshal(v, &rec) != nil || rec.State != spoolUploaded || unixHour(rec.Meta.ProducerStart) != h {
				continue
			}
			ms = append(ms, rec.Meta)
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	return ms, keys
}

// forget deletes the records of an hour whose manifest is written.
func (s *spool) forget(stream string, h int64, keys [][]byte) {
	if err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFragments)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		s.log.Error("spool database", "err", err)
		return
	}
	s.mu.Lock()
	if st := s.streams[stream]; st != nil && st.hours[h] == 0 {
		delete(st.closed, h)
		delete(st.hours, h)
	}
	s.mu.Unlock()
}
