//go:build !linux

package fragment

// newChunk takes size bytes from the Go heap.
func newChunk(size int) *chunk { return &chunk{b: make([]byte, 0, size)} }

// drop keeps the chunk's memory: the garbage collector cannot reclaim
// part of a live buffer.
func (c *chunk) drop() {}

// free leaves the chunk to the garbage collector.
func (c *chunk) free() { c.b = nil }
