package edgeagent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

// sequenceBlock is how many fragment numbers are reserved per durable
// write. A crash skips at most this many numbers; none is ever reused.
const sequenceBlock = 32

// sequence hands out a stream's fragment numbers: monotonic, never reused,
// surviving restarts. Numbers are reserved in blocks with a durable write
// (temp file, fsync, rename, fsync of the directory); Close records the
// exact next number. It is used by one goroutine.
type sequence struct {
	path     string
	next     uint64
	reserved uint64 // numbers below this are reserved on disk
	state    sequenceState
	unclean  bool
}

type sequenceState struct {
	// Next is the first number not yet handed out (or reserved).
	Next uint64 `json:"next"`
	// LastEnd is the producer end of the stream's last fragment.
	LastEnd time.Time `json:"last_end,omitzero"`
	// Running is set while an agent runs the stream; found set at start,
	// it says the last run ended without a clean stop (kill -9, power loss).
	Running bool `json:"running,omitempty"`
}

func openSequence(dir, stream string) (*sequence, error) {
	if err := fragment.ValidateStreamName(stream); err != nil {
		return nil, err // the name is a file name here
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &sequence{path: filepath.Join(dir, stream+".json")}
	b, err := os.ReadFile(s.path)
	switch {
	case os.IsNotExist(err):
		s.state.Next = 1
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &s.state); err != nil {
			return nil, fmt.Errorf("fragment numbering state %s is damaged: %w", s.path, err)
		}
		if s.state.Next == 0 {
			s.state.Next = 1
		}
	}
	s.next = s.state.Next
	s.reserved = s.state.Next
	s.unclean = s.state.Running
	s.state.Running = true
	if err := s.save(); err != nil {
		return nil, err
	}
	return s, nil
}

// Unclean reports whether the previous run ended without a clean stop: the
// fragment it had in progress then was lost.
func (s *sequence) Unclean() bool { return s.unclean }

// Next returns the next fragment number.
func (s *sequence) Next() (uint64, error) {
	if s.next >= s.reserved {
		s.state.Next = s.next + sequenceBlock
		if err := s.save(); err != nil {
			return 0, err
		}
		s.reserved = s.state.Next
	}
	n := s.next
	s.next++
	return n, nil
}

// LastEnd is the producer end of the last fragment before this run.
func (s *sequence) LastEnd() time.Time { return s.state.LastEnd }

// SetLastEnd records the end of the latest fragment (saved on Close).
func (s *sequence) SetLastEnd(t time.Time) { s.state.LastEnd = t }

// Close records the exact next number and a clean stop.
func (s *sequence) Close() error {
	s.state.Next = s.next
	s.state.Running = false
	return s.save()
}

func (s *sequence) save() error {
	b, err := json.Marshal(s.state)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, b)
}

// writeFileAtomic writes b to path durably: temp file, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := ensureDir(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ensureDir creates dir and its missing parents durably (each new entry's
// parent directory is fsynced).
func ensureDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := ensureDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	d, err := os.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
