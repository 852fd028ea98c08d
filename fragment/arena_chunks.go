package fragment

import "sync"

// chunkSize is the unit of sample memory. Every Cutter of the process takes
// its chunks from one allocator and gives them back when a fragment closes,
// so a stream holds about the bytes of its open fragment. Chunks are small
// so that the free tail of each stream's last chunk is small; a sample
// larger than a chunk (a keyframe, often) gets a buffer of its own, of the
// next power of two times chunkSize.
const chunkSize = 64 << 10

// chunkClasses are the sizes the allocator keeps for reuse: chunkSize << i
// for i below it (up to 16 MiB). Larger samples get memory of their own,
// returned when their fragment closes.
const chunkClasses = 9

// minResident is the number of free chunkSize chunks the allocator always
// keeps in memory for reuse (fewer of larger classes).
const minResident = 64

// chunk is sample memory: outside the Go heap where the platform allows
// (mapped), so that it neither counts towards the garbage collector's
// target, which would let the heap grow to twice the samples held, nor
// waits for a collection to be reused.
type chunk struct {
	b      []byte
	mapped bool
}

// chunkAllocator keeps free chunks for reuse, per size class: up to a
// eighth of those in use (at least minResident, less for large classes)
// stay in memory, and the pages of the rest go back to the operating
// system until they are needed again.
type chunkAllocator struct {
	mu      sync.Mutex
	classes [chunkClasses]chunkClass
}

type chunkClass struct {
	resident []*chunk // free, pages in memory
	dropped  []*chunk // free, pages returned to the system
	inUse    int
}

var chunks chunkAllocator

// classOf returns the class of a buffer of n bytes and its size; class -1
// is unpooled.
func classOf(n int) (int, int) {
	for i, size := 0, chunkSize; i < chunkClasses; i, size = i+1, size<<1 {
		if n <= size {
			return i, size
		}
	}
	return -1, (n + chunkSize - 1) / chunkSize * chunkSize
}

// get returns an empty chunk with room for n bytes.
func (a *chunkAllocator) get(n int) *chunk {
	i, size := classOf(n)
	if i < 0 {
		return newChunk(size)
	}
	a.mu.Lock()
	cl := &a.classes[i]
	cl.inUse++
	var c *chunk
	if k := len(cl.resident); k > 0 {
		c, cl.resident = cl.resident[k-1], cl.resident[:k-1]
	} else if k := len(cl.dropped); k > 0 {
		c, cl.dropped = cl.dropped[k-1], cl.dropped[:k-1]
	}
	a.mu.Unlock()
	if c == nil {
		c = newChunk(size)
	}
	return c
}

// put takes back a chunk from get. Nothing may use its bytes afterwards.
func (a *chunkAllocator) put(c *chunk) {
	c.b = c.b[:0]
	i, size := classOf(cap(c.b))
	if i < 0 || size != cap(c.b) {
		c.free()
		return
	}
	a.mu.Lock()
	cl := &a.classes[i]
	cl.inUse--
	if len(cl.resident) < max(minResident>>i, cl.inUse/8) {
		cl.resident = append(cl.resident, c)
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	c.drop() // before another goroutine can take it
	a.mu.Lock()
	cl.dropped = append(cl.dropped, c)
	a.mu.Unlock()
}

// residentBytes reports the memory of the chunks in use and of the free
// ones kept in memory.
func (a *chunkAllocator) residentBytes() (inUse, free int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.classes {
		cl := &a.classes[i]
		inUse += int64(cl.inUse) * chunkSize << i
		free += int64(len(cl.resident)) * chunkSize << i
	}
	return inUse, free
}

// SampleMemory reports the process's sample memory (the chunks every
// Cutter and depacketizer take from one allocator): the bytes in use, and
// the free bytes kept in memory for reuse. Chunks larger than the largest
// class, held by a very large sample for its fragment's life, are not
// counted.
func SampleMemory() (inUse, free int64) {
	return chunks.residentBytes()
}

// Buffer is growable memory for an access unit being assembled (by a
// depacketizer), from the same allocator as the Cutter's chunks: outside
// the Go heap, and handed back when it grew past one chunk, so that a
// stream does not keep its largest keyframe's worth between keyframes.
// The zero value is empty. A Buffer is used by one goroutine.
type Buffer struct {
	c *chunk
}

// Reserve makes room for n more bytes after b, the buffer's contents (nil
// or a slice of what it returned before), and returns b, moved into larger
// memory if needed: appending n bytes to the result does not reallocate.
func (buf *Buffer) Reserve(b []byte, n int) []byte {
	if buf.c != nil && cap(buf.c.b)-len(b) >= n {
		return buf.c.b[:len(b)]
	}
	c := chunks.get(len(b) + n)
	c.b = append(c.b[:0], b...)
	if buf.c != nil {
		chunks.put(buf.c)
	}
	buf.c = c
	return c.b
}

// Shrink gives the memory back if it grew past one chunk, and reports
// whether it did: slices of it must not be used afterwards.
func (buf *Buffer) Shrink() bool {
	if buf.c != nil && cap(buf.c.b) > chunkSize {
		chunks.put(buf.c)
		buf.c = nil
		return true
	}
	return false
}

// Release gives the memory back; slices of it must not be used afterwards.
func (buf *Buffer) Release() {
	if buf.c != nil {
		chunks.put(buf.c)
		buf.c = nil
	}
}
