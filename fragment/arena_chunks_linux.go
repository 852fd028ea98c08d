package fragment

import "syscall"

// newChunk maps size bytes of anonymous memory, or takes them from the Go
// heap if the system refuses.
func newChunk(size int) *chunk {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return &chunk{b: make([]byte, 0, size)}
	}
	return &chunk{b: b[:0], mapped: true}
}

// drop returns the chunk's pages to the system; the mapping stays, and
// the next write faults in zeroed pages.
func (c *chunk) drop() {
	if c.mapped {
		_ = syscall.Madvise(c.b[:cap(c.b)], syscall.MADV_DONTNEED)
	}
}

// free unmaps a chunk that will not be reused.
func (c *chunk) free() {
	if c.mapped {
		_ = syscall.Munmap(c.b[:cap(c.b)])
		c.b, c.mapped = nil, false
	}
}
