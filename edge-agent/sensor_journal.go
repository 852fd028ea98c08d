package edgeagent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary-io/tributary/ingest/sensor"
)

// Journal tuning: segments are sealed every journalRotate or
// journalSegmentBytes; appends are written and fsynced in groups.
const (
	journalRotate       = 10 * time.Second
	journalSegmentBytes = 16 << 20
	journalGroup        = 2 * time.Millisecond
)

// journal makes a sensor stream's readings durable before they are
// acknowledged (an MQTT PUBACK, a POST's 200): each is written, as its
// stored line, to an append-only segment file and fsynced, in groups,
// before it goes to the fragmenter. A segment is deleted once every
// reading in it is in a stored fragment (or was dropped as a repeat). The
// segments left at start are read back (old): the caller appends what of
// them is not stored again, then removes them, so a reading acknowledged
// before a crash is stored after it. One goroutine (run) owns the files.
type journal struct {
	dir string
	log *slog.Logger
	in  chan journalEntry
	out chan<- sensor.Reading // the fragmenter's queue

	mu       sync.Mutex
	segments []*journalSegment // oldest first; the last is being written
	nextSeq  uint64
	memory   bool     // no files (the journal could not be opened)
	old      []string // the last run's segments, read at open
}

type journalSegment struct {
	path        string
	first, last uint64 // sequence numbers of its readings
	outstanding int    // readings not yet in a stored fragment
	sealed      bool
	bytes       int
	opened      time.Time
	f           *os.File
}

type journalEntry struct {
	readings []sensor.Reading
	done     func(error) // told once they are durable
}

func openJournal(dir string, out chan<- sensor.Reading, log *slog.Logger) (*journal, []sensor.Reading, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	j := &journal{dir: dir, log: log, in: make(chan journalEntry, 1024), out: out, nextSeq: 1}
	// what the last run acknowledged but did not store
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	var replay []sensor.Reading
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, nil, err
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			r, err := sensor.ParseLine(line)
			if err != nil {
				// a torn last write (the crash came mid-append): it was
				// never acknowledged
				log.Warn("sensor journal: a torn record is skipped", "file", n, "err", err)
				continue
			}
			replay = append(replay, r)
		}
		// new segments are named after numbers past the old ones'
		if s, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".wal"), 10, 64); err == nil && s >= j.nextSeq {
			j.nextSeq = s + 1
		}
	}
	j.old = names
	return j, replay, nil
}

// removeOld deletes the last run's segments, once what of them was not
// stored is in this run's journal.
func (j *journal) removeOld() {
	for _, n := range j.old {
		if err := os.Remove(n); err != nil && !os.IsNotExist(err) {
			j.log.Warn("sensor journal", "err", err)
		}
	}
	j.old = nil
}

// append makes readings durable, then hands them to the fragmenter and
// calls done; it waits while the journal is busy, until ctx ends.
func (j *journal) append(ctx context.Context, stop <-chan struct{}, rs []sensor.Reading, done func(error)) error {
	select {
	case j.in <- journalEntry{readings: rs, done: done}:
		return nil
	case <-stop:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run writes the journal until ctx ends (then the entries queued are
// written, and the current segment closed).
func (j *journal) run(ctx context.Context) {
	var batch []journalEntry
	var buf []byte
	flush := func() {
		if len(batch) == 0 {
			return
		}
		var seg *journalSegment
		var err error
		if !j.memory {
			seg, err = j.current()
		}
		if !j.memory && err == nil {
			buf = buf[:0]
			for _, e := range batch {
				for i := range e.readings {
					e.readings[i].Seq = j.nextSeq
					j.nextSeq++
					buf = sensor.AppendLine(buf, &e.readings[i])
					buf = append(buf, '\n')
				}
			}
			if _, err = seg.f.Write(buf); err == nil {
				err = seg.f.Sync()
			}
			j.mu.Lock()
			seg.bytes += len(buf)
			for _, e := range batch {
				seg.outstanding += len(e.readings)
			}
			seg.last = j.nextSeq - 1
			j.mu.Unlock()
		}
		for _, e := range batch {
			if err == nil {
				for _, r := range e.readings {
					j.out <- r
				}
			}
			if e.done != nil {
				e.done(err)
			}
		}
		if err != nil {
			j.log.Error("sensor journal: readings not made durable", "err", err)
		}
		batch = batch[:0]
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case e := <-j.in:
			batch = append(batch, e)
			// a group: what comes within journalGroup goes in one fsync
			timer := time.NewTimer(journalGroup)
		group:
			for len(batch) < 256 {
				select {
				case e := <-j.in:
					batch = append(batch, e)
				case <-timer.C:
					break group
				}
			}
			timer.Stop()
			flush()
		case <-tick.C:
			j.rotate(false)
			j.trim()
		case <-ctx.Done():
			for {
				select {
				case e := <-j.in:
					batch = append(batch, e)
					continue
				default:
				}
				break
			}
			flush()
			j.rotate(true)
			return
		}
	}
}

// current returns the segment being written, opening one if needed.
func (j *journal) current() (*journalSegment, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if n := len(j.segments); n > 0 && !j.segments[n-1].sealed {
		return j.segments[n-1], nil
	}
	path := filepath.Join(j.dir, fmt.Sprintf("%020d.wal", j.nextSeq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if d, err := os.Open(j.dir); err == nil { // the new file's name is durable
		d.Sync()
		d.Close()
	}
	s := &journalSegment{path: path, first: j.nextSeq, last: j.nextSeq - 1, f: f, opened: time.Now()}
	j.segments = append(j.segments, s)
	return s, nil
}

// rotate seals the current segment when it is old or large (or always).
func (j *journal) rotate(always bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := len(j.segments)
	if n == 0 || j.segments[n-1].sealed {
		return
	}
	s := j.segments[n-1]
	if always || time.Since(s.opened) >= journalRotate || s.bytes >= journalSegmentBytes {
		s.f.Close()
		s.f = nil
		s.sealed = true
	}
}

// stored tells the journal that the readings of seqs are in a stored
// fragment (or were dropped as repeats): their segments may go.
func (j *journal) stored(seqs []uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, q := range seqs {
		if q == 0 {
			continue // not journaled
		}
		for _, s := range j.segments {
			if q >= s.first && q <= s.last {
				s.outstanding--
				break
			}
		}
	}
}

// trim deletes the sealed segments whose readings are all stored.
func (j *journal) trim() {
	j.mu.Lock()
	defer j.mu.Unlock()
	keep := j.segments[:0]
	for _, s := range j.segments {
		if s.sealed && s.outstanding <= 0 {
			if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
				j.log.Warn("sensor journal", "err", err)
			}
			continue
		}
		keep = append(keep, s)
	}
	j.segments = keep
}
