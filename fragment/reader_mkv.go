package fragment

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
)

// ErrInvalidMKV is wrapped by every error about malformed input.
var ErrInvalidMKV = errors.New("invalid Matroska")

// ErrMKVLimit is wrapped when input exceeds a size or count limit.
var ErrMKVLimit = errors.New("Matroska limit exceeded")

// Default limits of an MKVReader.
const (
	mrDefaultMaxBlockSize        = 64 << 20
	mrDefaultMaxHeaderSize       = 1 << 20
	mrDefaultMaxTracks           = 64
	mrDefaultMaxTags             = 1024
	mrDefaultMaxFramesPerCluster = 1 << 20
	mrDefaultMaxClusterBytes     = 256 << 20
)

// MKVReader reads clusters from a Matroska (or WebM) stream: one or many
// concatenated segments, each with its EBML header, as Kinesis Video
// Streams' GetMedia and Tributary's GetMedia return them (one segment per
// fragment, tagged with AWS_KINESISVIDEO_FRAGMENT_NUMBER and the server and
// producer timestamps), or one long segment with many clusters as ffmpeg,
// GStreamer's matroskamux and the KVS producer SDK push it.
//
// It reads element by element and never seeks, so it works on a network
// stream. Segments and clusters of unknown size (live streams) are handled:
// an unknown-size Cluster ends at the next element that cannot be its child
// (a Cluster, Tags, Cues or any other top-level element of a Segment, or an
// EBML header); an unknown-size Segment ends at the next EBML header or
// Segment. SeekHead, Cues, Chapters, Attachments, Void, CRC-32 and unknown
// elements are skipped without being held in memory. Info, Tracks and Tags
// may come anywhere in a segment, before or after clusters; they apply to the
// clusters that follow them.
//
// Laced blocks (Xiph, fixed-size and EBML lacing) are expanded into their
// frames; empty laced frames are dropped. Track-level content encodings
// (compression, encryption) are not applied: frames are returned as stored.
//
// The limits below bound what hostile input can make the reader allocate;
// zero means the default. Malformed input is an error wrapping ErrInvalidMKV
// (never a panic), input over a limit one wrapping ErrMKVLimit; both name the
// element (its ID in hex, and its name when known) and its byte offset.
//
// An MKVReader is not safe for concurrent use.
type MKVReader struct {
	// MaxBlockSize bounds one SimpleBlock or BlockGroup (its frames and
	// their headers). Default 64 MiB.
	MaxBlockSize int64
	// MaxHeaderSize bounds each of the EBML header, Info, Tracks and Tags
	// elements, which are read whole. Default 1 MiB.
	MaxHeaderSize int64
	// MaxTracks bounds the number of tracks of a segment. Default 64.
	MaxTracks int
	// MaxTags bounds the number of SimpleTags of a segment. Default 1024.
	MaxTags int
	// MaxFramesPerCluster bounds the frames (laced frames counted one by
	// one) of a cluster. Default 1<<20.
	MaxFramesPerCluster int
	// MaxClusterBytes bounds the sum of the block sizes of a cluster.
	// Default 256 MiB.
	MaxClusterBytes int64

	br  *bufio.Reader
	off int64
	err error // sticky: io.EOF or the first error

	pending bool     // ph was read but not handled yet
	ph      mrHeader // an element header pushed back by an unknown-size parent

	started  bool  // the first element was read
	ebmlSeen bool  // an EBML header not yet followed by a Segment
	ebmlOff  int64 // its offset
	inSeg    bool
	segOff   int64 // offset of the current Segment
	segEnd   int64 // end of the current Segment, mrUnknown if unknown
	segment  int   // index of the current Segment, -1 before the first
	scale    uint64
	tracks   []MKVTrack
	tags     map[string]string
	binary   map[string][]byte
	nTags    int

	buf       []byte     // frame data of the current cluster
	frames    []MKVFrame // frames of the current cluster
	lace      [256]int   // lace sizes of the current block
	lastTrack int        // index in tracks of the last block's track
}

// mrHeader is an element header read from the stream.
type mrHeader struct {
	id   uint32
	off  int64 // offset of the element's first byte
	hlen int   // length of ID and size
	size int64 // data size, mrUnknown if unknown
}

// end is the offset just past the element, or mrUnknown.
func (h mrHeader) end() int64 {
	if h.size < 0 {
		return mrUnknown
	}
	return h.off + int64(h.hlen) + h.size
}

// MKVCluster is one Matroska cluster with what is in effect for it.
//
// Frames (and their Data) are only valid until the next call to Next, which
// reuses their memory; Clone makes a copy that stays valid. Tracks, Tags and
// Binary are shared by the clusters of a segment and must not be modified.
type MKVCluster struct {
	// Segment is the index of the cluster's segment in the stream, from 0.
	// With KVS GetMedia every fragment is a segment.
	Segment int
	// TimecodeScale is the segment's nanoseconds per timecode unit
	// (default 1,000,000: timecodes in milliseconds).
	TimecodeScale uint64
	// Timecode is the cluster's timecode, in TimecodeScale units.
	Timecode int64
	// Tracks are the segment's tracks, in the order of its Tracks element.
	Tracks []MKVTrack
	// Tags are the segment's tags that apply to the whole segment (Tag
	// elements whose Targets name no track, edition, chapter or
	// attachment), by SimpleTag name, nested SimpleTags included: the
	// value of a TagString, or the raw bytes of a TagBinary as a string.
	// Later Tags elements of the segment add to and override earlier ones.
	// Tags that come after a cluster show in the clusters that follow it;
	// when the cluster has an unknown size, as in KVS GetMedia output, a
	// Tags element that ends it is read first and shows in the cluster (so
	// AWS_KINESISVIDEO_CONTINUATION_TOKEN and
	// AWS_KINESISVIDEO_MILLIS_BEHIND_NOW are on their fragment's cluster).
	Tags map[string]string
	// Binary holds the SimpleTags of Tags that carry a TagBinary.
	Binary map[string][]byte
	// Frames are the cluster's frames in stream order (decode order for
	// video), laced blocks expanded.
	Frames []MKVFrame
}

// MKVTrack is a Matroska track (a TrackEntry).
type MKVTrack struct {
	// Number is the track number blocks refer to (from 1).
	Number uint64
	// UID is the track's unique ID.
	UID uint64
	// Type is 1 for video, 2 for audio, 0x11 for subtitles, 0x21 for metadata.
	Type uint64
	// CodecID names the codec: V_MPEG4/ISO/AVC, V_MPEGH/ISO/HEVC, A_AAC, A_OPUS…
	CodecID string
	// CodecPrivate is the codec configuration: avcC, hvcC, the AAC
	// AudioSpecificConfig, the OpusHead…
	CodecPrivate []byte
	// Name is the track's human-readable name.
	Name string
	// DefaultDuration is the duration of a frame in ns, 0 when not given.
	DefaultDuration uint64
	// CodecDelay is the ns of decoded samples to drop at the start (Opus).
	CodecDelay uint64
	// SeekPreRoll is the ns to decode before a seek point (Opus).
	SeekPreRoll uint64
	// PixelWidth and PixelHeight are the video frame size.
	PixelWidth, PixelHeight uint64
	// SamplingFrequency is the audio sample rate in Hz (8000 when an audio
	// track does not say).
	SamplingFrequency float64
	// Channels is the number of audio channels (1 when an audio track does
	// not say).
	Channels uint64
	// BitDepth is the bits per audio sample, 0 when not given.
	BitDepth uint64
}

// MKVFrame is one frame of a cluster.
type MKVFrame struct {
	// Track is the number of the frame's track (MKVTrack.Number).
	Track uint64
	// Time is the frame's absolute presentation timestamp in ns: (cluster
	// timecode + block relative timecode) × TimecodeScale. Laced frames
	// after the first of their block add the track's DefaultDuration (or the
	// block's duration split evenly) per frame. With B-frames, video frames
	// come in decode order, so Time is not monotonic.
	Time int64
	// Duration is the frame's duration in ns, from the BlockDuration (split
	// evenly between laced frames) or the track's DefaultDuration; 0 when
	// unknown.
	Duration int64
	// Keyframe is the SimpleBlock keyframe flag, or true for a BlockGroup
	// without ReferenceBlock. It is what the stream says: GStreamer's
	// matroskamux, for one, leaves it unset on audio frames (which ffmpeg
	// nevertheless treats as keyframes, AAC and Opus frames being
	// independently decodable).
	Keyframe bool
	// Data is the frame as stored: for H.264 and H.265, length-prefixed NAL
	// units. It is valid until the next call to Next; its capacity is its
	// length, so appending to it never overwrites another frame.
	Data []byte
}

// Clone returns a deep copy of c's frames (in one new buffer) that stays
// valid after the next call to Next. Tracks, Tags and Binary are shared.
func (c *MKVCluster) Clone() *MKVCluster {
	n := *c
	total := 0
	for i := range c.Frames {
		total += len(c.Frames[i].Data)
	}
	buf := make([]byte, 0, total)
	n.Frames = make([]MKVFrame, len(c.Frames))
	for i, f := range c.Frames {
		s := len(buf)
		buf = append(buf, f.Data...)
		f.Data = buf[s:len(buf):len(buf)]
		n.Frames[i] = f
	}
	return &n
}

// NewMKVReader returns a reader of the Matroska stream r with the default
// limits. It buffers r.
func NewMKVReader(r io.Reader) *MKVReader {
	return &MKVReader{
		MaxBlockSize:        mrDefaultMaxBlockSize,
		MaxHeaderSize:       mrDefaultMaxHeaderSize,
		MaxTracks:           mrDefaultMaxTracks,
		MaxTags:             mrDefaultMaxTags,
		MaxFramesPerCluster: mrDefaultMaxFramesPerCluster,
		MaxClusterBytes:     mrDefaultMaxClusterBytes,
		br:                  bufio.NewReaderSize(r, 64<<10),
		segment:             -1,
		segEnd:              mrUnknown,
	}
}

// Offset is how many bytes of the stream have been consumed (parsed), for
// errors and progress.
func (r *MKVReader) Offset() int64 { return r.off }

// Next returns the next cluster, with the tracks and tags of its segment in
// effect. It returns io.EOF at a clean end of the stream (between elements,
// or where an unknown-size Segment or Cluster may end), and an error
// wrapping io.ErrUnexpectedEOF (and ErrInvalidMKV) when the stream ends
// inside an element. After an error every call returns the same error.
//
// The returned cluster's Frames are valid until the next call to Next.
func (r *MKVReader) Next() (*MKVCluster, error) {
	if r.err != nil {
		return nil, r.err
	}
	c, err := r.next()
	if err != nil {
		r.err = err
	}
	return c, err
}

func (r *MKVReader) limits() {
	if r.MaxBlockSize <= 0 {
		r.MaxBlockSize = mrDefaultMaxBlockSize
	}
	if r.MaxHeaderSize <= 0 {
		r.MaxHeaderSize = mrDefaultMaxHeaderSize
	}
	if r.MaxTracks <= 0 {
		r.MaxTracks = mrDefaultMaxTracks
	}
	if r.MaxTags <= 0 {
		r.MaxTags = mrDefaultMaxTags
	}
	if r.MaxFramesPerCluster <= 0 {
		r.MaxFramesPerCluster = mrDefaultMaxFramesPerCluster
	}
	if r.MaxClusterBytes <= 0 {
		r.MaxClusterBytes = mrDefaultMaxClusterBytes
	}
}

func (r *MKVReader) next() (*MKVCluster, error) {
	if r.br == nil {
		return nil, errors.New("fragment: MKVReader not made by NewMKVReader")
	}
	r.limits()
	for {
		if r.inSeg && r.segEnd >= 0 && r.off >= r.segEnd {
			r.inSeg = false
		}
		h, err := r.header()
		if err == io.EOF {
			switch {
			case r.inSeg && r.segEnd >= 0:
				return nil, mrTruncated(mkvSegment, r.segOff)
			case r.ebmlSeen:
				return nil, mrTruncated(mkvEBML, r.ebmlOff)
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if !r.started {
			r.started = true
			if h.id != mkvEBML {
				return nil, mrErr(ErrInvalidMKV, h.id, h.off, "the stream does not start with an EBML header (0x1A45DFA3)")
			}
		}
		if !r.inSeg {
			if err := r.topLevel(h); err != nil {
				return nil, err
			}
			continue
		}
		// A child of a Segment.
		switch h.id {
		case mkvEBML, mkvSegment:
			if r.segEnd >= 0 {
				return nil, mrErr(ErrInvalidMKV, h.id, h.off, "inside the Segment of known size at offset %d", r.segOff)
			}
			r.inSeg = false // it ends the unknown-size Segment
			r.pushBack(h)
			continue
		case mkvCluster:
			if err := r.fitsSegment(h); err != nil {
				return nil, err
			}
			return r.cluster(h)
		}
		if h.size < 0 {
			return nil, mrErr(ErrInvalidMKV, h.id, h.off, "unknown size (only a Segment or a Cluster may have one)")
		}
		if err := r.fitsSegment(h); err != nil {
			return nil, err
		}
		switch h.id {
		case mkvInfo, mkvTracks, mkvTags:
			if err := r.header1(h); err != nil {
				return nil, err
			}
		default: // SeekHead, Cues, Chapters, Attachments, Void, CRC-32, unknown
			if err := r.skip(h); err != nil {
				return nil, err
			}
		}
	}
}

// fitsSegment checks that h fits in the current Segment.
func (r *MKVReader) fitsSegment(h mrHeader) error {
	if r.segEnd >= 0 && h.size >= 0 && h.end() > r.segEnd {
		return mrErr(ErrInvalidMKV, h.id, h.off, "size %d larger than what is left of its parent Segment (%d bytes)", h.size, r.segEnd-h.off-int64(h.hlen))
	}
	return nil
}

// topLevel handles an element outside any Segment.
func (r *MKVReader) topLevel(h mrHeader) error {
	switch h.id {
	case mkvEBML:
		if h.size < 0 {
			return mrErr(ErrInvalidMKV, h.id, h.off, "unknown size")
		}
		if r.ebmlSeen {
			return mrErr(ErrInvalidMKV, h.id, h.off, "a second EBML header without a Segment after the first at offset %d", r.ebmlOff)
		}
		b, err := r.readWhole(h, r.MaxHeaderSize)
		if err != nil {
			return err
		}
		if err := mrParseEBMLHeader(mrElem{id: h.id, off: h.off, dataOff: h.off + int64(h.hlen), data: b}); err != nil {
			return err
		}
		r.ebmlSeen, r.ebmlOff = true, h.off
		return nil
	case mkvSegment:
		r.segment++
		r.inSeg, r.ebmlSeen = true, false
		r.segOff, r.segEnd = h.off, h.end()
		r.scale = 1000000
		r.tracks, r.tags, r.binary, r.nTags, r.lastTrack = nil, nil, nil, 0, 0
		return nil
	case mkvVoid, mkvCRC32:
		if h.size < 0 {
			return mrErr(ErrInvalidMKV, h.id, h.off, "unknown size")
		}
		return r.skip(h)
	}
	return mrErr(ErrInvalidMKV, h.id, h.off, "unexpected at the top level (an EBML header or a Segment must come here)")
}

// header1 reads and applies an Info, Tracks or Tags element.
func (r *MKVReader) header1(h mrHeader) error {
	b, err := r.readWhole(h, r.MaxHeaderSize)
	if err != nil {
		return err
	}
	e := mrElem{id: h.id, off: h.off, dataOff: h.off + int64(h.hlen), data: b}
	switch h.id {
	case mkvInfo:
		return r.parseInfo(e)
	case mkvTracks:
		return r.parseTracks(e)
	}
	return r.parseTags(e)
}

// pushBack makes h the next header header returns.
func (r *MKVReader) pushBack(h mrHeader) {
	r.pending, r.ph = true, h
}

// header reads the next element header. It returns io.EOF when the stream
// ends cleanly before the header's first byte.
func (r *MKVReader) header() (mrHeader, error) {
	if r.pending {
		r.pending = false
		return r.ph, nil
	}
	h := mrHeader{off: r.off}
	var b [8]byte
	c, err := r.br.ReadByte()
	if err != nil {
		if err == io.EOF {
			return h, io.EOF
		}
		return h, fmt.Errorf("reading an element header at offset %d: %w", h.off, err)
	}
	r.off++
	n := mrIDLen(c)
	if n == 0 {
		return h, fmt.Errorf("%w: element header at offset %d: element ID longer than 4 bytes (first byte 0x%02X)", ErrInvalidMKV, h.off, c)
	}
	b[0] = c
	if err := r.readN(b[1:n], 0, h.off); err != nil {
		return h, err
	}
	for _, c := range b[:n] {
		h.id = h.id<<8 | uint32(c)
	}
	if !mrIDValid(h.id, n) {
		return h, fmt.Errorf("%w: element header at offset %d: reserved element ID 0x%X", ErrInvalidMKV, h.off, h.id)
	}
	if err := r.readN(b[:1], h.id, h.off); err != nil {
		return h, err
	}
	m := mrSizeLen(b[0])
	if m == 0 {
		return h, mrErr(ErrInvalidMKV, h.id, h.off, "size longer than 8 bytes")
	}
	if err := r.readN(b[1:m], h.id, h.off); err != nil {
		return h, err
	}
	h.hlen = n + m
	h.size = mrSizeValue(b[:m])
	return h, nil
}

// readN fills b from the stream, inside element id at off. b is short (an
// element header or an integer): reading byte by byte from the bufio.Reader
// keeps b on the caller's stack.
func (r *MKVReader) readN(b []byte, id uint32, off int64) error {
	for i := range b {
		c, err := r.br.ReadByte()
		if err != nil {
			return r.readErr(err, id, off)
		}
		r.off++
		b[i] = c
	}
	return nil
}

// readErr maps a read error inside element id at off.
func (r *MKVReader) readErr(err error, id uint32, off int64) error {
	switch {
	case err == nil:
		return nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if id == 0 {
			return fmt.Errorf("%w: %w: element header at offset %d: the stream ends inside it", ErrInvalidMKV, io.ErrUnexpectedEOF, off)
		}
		return mrTruncated(id, off)
	}
	return fmt.Errorf("reading %s at offset %d: %w", mrDescribe(id), off, err)
}

// appendData appends the n bytes of element h's data to dst, growing dst by
// at most what was actually read (so a huge size on a short stream does not
// allocate it).
func (r *MKVReader) appendData(dst []byte, n int64, h mrHeader) ([]byte, error) {
	for n > 0 {
		if len(dst) == cap(dst) {
			g := max(int64(cap(dst)), 64<<10)
			dst = slices.Grow(dst, int(min(g, n)))
		}
		m := min(int64(cap(dst)-len(dst)), n)
		k, err := io.ReadFull(r.br, dst[len(dst):len(dst)+int(m)])
		r.off += int64(k)
		dst = dst[:len(dst)+k]
		if err != nil {
			return dst, r.readErr(err, h.id, h.off)
		}
		n -= m
	}
	return dst, nil
}

// readWhole reads the data of h (of known size) into a new slice, after
// checking it against limit.
func (r *MKVReader) readWhole(h mrHeader, limit int64) ([]byte, error) {
	if h.size > limit {
		return nil, mrErr(ErrMKVLimit, h.id, h.off, "size %d over the limit of %d bytes", h.size, limit)
	}
	b, err := r.appendData(nil, h.size, h)
	if err != nil {
		return nil, err
	}
	return b[:len(b):len(b)], nil
}

// skip discards the data of h (of known size).
func (r *MKVReader) skip(h mrHeader) error {
	n := h.size
	for n > 0 {
		k, err := r.br.Discard(int(min(n, 1<<30)))
		r.off += int64(k)
		n -= int64(k)
		if err != nil {
			return r.readErr(err, h.id, h.off)
		}
	}
	return nil
}

// mrEndsCluster reports whether id ends a Cluster of unknown size: it is a
// top-level element or a child of a Segment other than a Cluster's children.
func mrEndsCluster(id uint32) bool {
	switch id {
	case mkvCluster, mkvTags, mkvCues, mkvEBML, mkvSegment, mkvInfo, mkvTracks, mkvSeekHead, mkvChapters, mkvAttachments:
		return true
	}
	return false
}

// cluster reads the Cluster h.
func (r *MKVReader) cluster(h mrHeader) (*MKVCluster, error) {
	c := &MKVCluster{Segment: r.segment, TimecodeScale: r.scale, Tracks: r.tracks}
	end := h.end()
	r.buf, r.frames = r.buf[:0], r.frames[:0]
	var tc uint64
	haveTC := false
	var bytes int64
	for {
		if end >= 0 && r.off >= end {
			break
		}
		if end < 0 && r.segEnd >= 0 && r.off >= r.segEnd {
			break
		}
		ch, err := r.header()
		if err == io.EOF {
			if end < 0 && r.segEnd < 0 {
				break // a live stream that ends after a whole block
			}
			if end < 0 {
				return nil, mrTruncated(mkvSegment, r.segOff)
			}
			return nil, mrTruncated(h.id, h.off)
		}
		if err != nil {
			return nil, err
		}
		if mrEndsCluster(ch.id) {
			if end >= 0 {
				return nil, mrErr(ErrInvalidMKV, ch.id, ch.off, "inside the Cluster of known size at offset %d", h.off)
			}
			if ch.id == mkvTags && ch.size >= 0 {
				// Tags that end an unknown-size cluster belong to it (KVS
				// GetMedia writes the continuation token there).
				if err := r.fitsSegment(ch); err != nil {
					return nil, err
				}
				if err := r.header1(ch); err != nil {
					return nil, err
				}
			} else {
				r.pushBack(ch)
			}
			break
		}
		if ch.size < 0 {
			return nil, mrErr(ErrInvalidMKV, ch.id, ch.off, "unknown size inside the Cluster at offset %d", h.off)
		}
		if pe := end; pe >= 0 || r.segEnd >= 0 {
			if pe < 0 {
				pe = r.segEnd
			}
			if ch.end() > pe {
				return nil, mrErr(ErrInvalidMKV, ch.id, ch.off, "size %d larger than what is left of its parent Cluster at offset %d (%d bytes)", ch.size, h.off, pe-ch.off-int64(ch.hlen))
			}
		}
		switch ch.id {
		case mkvTimecode:
			if ch.size > 8 {
				return nil, mrErr(ErrInvalidMKV, ch.id, ch.off, "unsigned integer of %d bytes (at most 8)", ch.size)
			}
			var b [8]byte
			if err := r.readN(b[:ch.size], ch.id, ch.off); err != nil {
				return nil, err
			}
			tc = 0
			for _, c := range b[:ch.size] {
				tc = tc<<8 | uint64(c)
			}
			if tc > math.MaxInt64/2 {
				return nil, mrErr(ErrInvalidMKV, ch.id, ch.off, "timecode %d out of range", tc)
			}
			haveTC = true
		case mkvSimpleBlock, mkvBlockGroup:
			if !haveTC {
				return nil, mrErr(ErrInvalidMKV, ch.id, ch.off, "block before the Timecode of its Cluster at offset %d", h.off)
			}
			if ch.size > r.MaxBlockSize {
				return nil, mrErr(ErrMKVLimit, ch.id, ch.off, "size %d over the limit of %d bytes (MaxBlockSize)", ch.size, r.MaxBlockSize)
			}
			if bytes += ch.size; bytes > r.MaxClusterBytes {
				return nil, mrErr(ErrMKVLimit, ch.id, ch.off, "the Cluster at offset %d holds more than %d bytes of blocks (MaxClusterBytes)", h.off, r.MaxClusterBytes)
			}
			start := len(r.buf)
			r.buf, err = r.appendData(r.buf, ch.size, ch)
			if err != nil {
				return nil, err
			}
			blk := mrElem{id: ch.id, off: ch.off, dataOff: ch.off + int64(ch.hlen), data: r.buf[start:len(r.buf):len(r.buf)]}
			if ch.id == mkvSimpleBlock {
				err = r.block(blk, tc, true, false, -1)
			} else {
				err = r.blockGroup(blk, tc)
			}
			if err != nil {
				return nil, err
			}
		default: // Position, PrevSize, Void, CRC-32, SilentTracks, unknown
			if end < 0 && ch.size > r.MaxBlockSize {
				return nil, mrErr(ErrMKVLimit, ch.id, ch.off, "size %d over the limit of %d bytes (MaxBlockSize)", ch.size, r.MaxBlockSize)
			}
			if err := r.skip(ch); err != nil {
				return nil, err
			}
		}
	}
	c.Timecode = int64(tc)
	c.Frames = r.frames
	c.Tags, c.Binary = r.tags, r.binary
	return c, nil
}

// blockGroup parses a BlockGroup held in memory.
func (r *MKVReader) blockGroup(g mrElem, tc uint64) error {
	it := mrChildren(g.id, g.off, g.data, g.dataOff)
	var blk mrElem
	haveBlock, key := false, true
	dur := int64(-1)
	for it.next() {
		e := it.cur
		switch e.id {
		case mkvBlock:
			if haveBlock {
				return mrErr(ErrInvalidMKV, e.id, e.off, "a second Block in the BlockGroup at offset %d", g.off)
			}
			blk, haveBlock = e, true
		case mkvBlockDuration:
			v, err := e.uint()
			if err != nil {
				return err
			}
			if v > math.MaxInt64/2 {
				return mrErr(ErrInvalidMKV, e.id, e.off, "duration %d out of range", v)
			}
			dur = int64(v)
		case mkvReferenceBlock:
			if _, err := e.int(); err != nil {
				return err
			}
			key = false
		}
	}
	if it.err != nil {
		return it.err
	}
	if !haveBlock {
		return mrErr(ErrInvalidMKV, g.id, g.off, "no Block")
	}
	return r.block(blk, tc, false, key, dur)
}

// block parses a SimpleBlock or a Block held in memory and appends its
// frames. For a Block, key and dur (in timecode units, -1 when absent) come
// from its BlockGroup.
func (r *MKVReader) block(b mrElem, tc uint64, simple, key bool, dur int64) error {
	d := b.data
	tn, n, ok := mrReadVint(d)
	if !ok || len(d) < n+3 {
		return mrErr(ErrInvalidMKV, b.id, b.off, "block header truncated (%d bytes)", len(d))
	}
	tr := r.track(tn)
	if tr == nil {
		return mrErr(ErrInvalidMKV, b.id, b.off, "block for unknown track %d", tn)
	}
	rel := int64(int16(uint16(d[n])<<8 | uint16(d[n+1])))
	flags := d[n+2]
	if simple {
		key = flags&0x80 != 0
	}
	data := d[n+3:]
	p := 0 // start of the first frame in data
	count := 1
	switch flags & 0x06 {
	case 0:
		r.lace[0] = len(data)
	case 0x02, 0x06:
		if len(data) < 1 {
			return mrErr(ErrInvalidMKV, b.id, b.off, "laced block without a lace count")
		}
		count = int(data[0]) + 1
		p = 1
		total := 0
		for i := 0; i < count-1; i++ {
			var s int
			if flags&0x06 == 0x02 { // Xiph
				for {
					if p >= len(data) {
						return mrErr(ErrInvalidMKV, b.id, b.off, "Xiph lace sizes run past the end of the block (%d frames)", count)
					}
					c := data[p]
					p++
					s += int(c)
					if c != 255 {
						break
					}
				}
			} else { // EBML
				v, m, ok := mrReadVint(data[p:])
				if !ok || m == 8 && v == 1<<56-1 {
					return mrErr(ErrInvalidMKV, b.id, b.off, "bad EBML lace size of frame %d (%d frames)", i, count)
				}
				p += m
				if v > uint64(len(data)) && i == 0 {
					return mrErr(ErrInvalidMKV, b.id, b.off, "EBML lace size %d larger than the block (%d bytes)", v, len(data))
				}
				if i == 0 {
					s = int(v)
				} else {
					// signed difference from the previous size
					bias := int64(1)<<(7*m-1) - 1
					diff := int64(v) - bias
					s64 := int64(r.lace[i-1]) + diff
					if s64 < 0 || s64 > int64(len(data)) {
						return mrErr(ErrInvalidMKV, b.id, b.off, "EBML lace size of frame %d out of range (%d)", i, s64)
					}
					s = int(s64)
				}
			}
			r.lace[i] = s
			total += s
			if total > len(data) {
				return mrErr(ErrInvalidMKV, b.id, b.off, "lace sizes (%d bytes and more) exceed the block (%d bytes)", total, len(data))
			}
		}
		last := len(data) - p - total
		if last < 0 {
			return mrErr(ErrInvalidMKV, b.id, b.off, "lace sizes (%d bytes) exceed the block (%d bytes of frames)", total, len(data)-p)
		}
		r.lace[count-1] = last
	case 0x04: // fixed-size
		if len(data) < 1 {
			return mrErr(ErrInvalidMKV, b.id, b.off, "laced block without a lace count")
		}
		count = int(data[0]) + 1
		p = 1
		rest := len(data) - 1
		if rest%count != 0 {
			return mrErr(ErrInvalidMKV, b.id, b.off, "fixed-size lacing: %d bytes do not split into %d equal frames", rest, count)
		}
		for i := range count {
			r.lace[i] = rest / count
		}
	}
	if len(r.frames)+count > r.MaxFramesPerCluster {
		return mrErr(ErrMKVLimit, b.id, b.off, "more than %d frames in the cluster (MaxFramesPerCluster)", r.MaxFramesPerCluster)
	}

	// Timing, with overflow checks: tc < 2^62, |rel| < 2^15.
	scale := int64(r.scale)
	t := int64(tc) + rel
	if t > math.MaxInt64/scale || t < math.MinInt64/scale {
		return mrErr(ErrInvalidMKV, b.id, b.off, "timestamp %d × TimecodeScale %d overflows int64 nanoseconds", t, scale)
	}
	t *= scale
	var fdur, step int64
	if dur >= 0 {
		if dur > math.MaxInt64/scale {
			return mrErr(ErrInvalidMKV, b.id, b.off, "duration %d × TimecodeScale %d overflows int64 nanoseconds", dur, scale)
		}
		fdur = dur * scale / int64(count)
		step = fdur
	} else {
		fdur = int64(tr.DefaultDuration) // bounded when parsed
	}
	if tr.DefaultDuration > 0 {
		step = int64(tr.DefaultDuration)
	}
	if step > 0 && t > math.MaxInt64-step*int64(count-1) {
		return mrErr(ErrInvalidMKV, b.id, b.off, "timestamp of the last laced frame overflows int64 nanoseconds")
	}
	for i := range count {
		s := r.lace[i]
		if s == 0 && count > 1 {
			continue // an empty laced frame carries nothing (and would let 5 bytes make 256 frames)
		}
		r.frames = append(r.frames, MKVFrame{
			Track:    tn,
			Time:     t + int64(i)*step,
			Duration: fdur,
			Keyframe: key,
			Data:     data[p : p+s : p+s],
		})
		p += s
	}
	return nil
}

// track returns the track numbered n, or nil.
func (r *MKVReader) track(n uint64) *MKVTrack {
	if r.lastTrack < len(r.tracks) && r.tracks[r.lastTrack].Number == n {
		return &r.tracks[r.lastTrack]
	}
	for i := range r.tracks {
		if r.tracks[i].Number == n {
			r.lastTrack = i
			return &r.tracks[i]
		}
	}
	return nil
}

// mrParseEBMLHeader checks an EBML header: a Matroska or WebM document that
// this reader can read.
func mrParseEBMLHeader(e mrElem) error {
	it, err := e.children(1)
	if err != nil {
		return err
	}
	docType := "matroska" // the EBML default is "matroska"
	for it.next() {
		c := it.cur
		switch c.id {
		case mkvDocType:
			docType = c.str()
		case mkvEBMLReadVersion, mkvEBMLMaxIDLength, mkvEBMLMaxSizeLength:
			v, err := c.uint()
			if err != nil {
				return err
			}
			switch {
			case c.id == mkvEBMLReadVersion && v > 1:
				return mrErr(ErrInvalidMKV, c.id, c.off, "EBML read version %d (this reader knows 1)", v)
			case c.id == mkvEBMLMaxIDLength && v > 4:
				return mrErr(ErrInvalidMKV, c.id, c.off, "element IDs of up to %d bytes (Matroska allows 4)", v)
			case c.id == mkvEBMLMaxSizeLength && (v > 8 || v == 0):
				return mrErr(ErrInvalidMKV, c.id, c.off, "sizes of up to %d bytes (1 to 8 allowed)", v)
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if docType != "matroska" && docType != "webm" {
		return mrErr(ErrInvalidMKV, e.id, e.off, "DocType %q is neither matroska nor webm", docType)
	}
	return nil
}

// parseInfo applies an Info element: its TimecodeScale.
func (r *MKVReader) parseInfo(e mrElem) error {
	it, err := e.children(2)
	if err != nil {
		return err
	}
	for it.next() {
		if c := it.cur; c.id == mkvTimecodeScale {
			v, err := c.uint()
			if err != nil {
				return err
			}
			if v == 0 || v > 1<<40 {
				return mrErr(ErrInvalidMKV, c.id, c.off, "TimecodeScale %d out of range", v)
			}
			r.scale = v
		}
	}
	return it.err
}

// parseTracks replaces the segment's tracks with those of a Tracks element.
func (r *MKVReader) parseTracks(e mrElem) error {
	it, err := e.children(2)
	if err != nil {
		return err
	}
	var tracks []MKVTrack
	for it.next() {
		c := it.cur
		if c.id != mkvTrackEntry {
			continue
		}
		if len(tracks) >= r.MaxTracks {
			return mrErr(ErrMKVLimit, c.id, c.off, "more than %d tracks (MaxTracks)", r.MaxTracks)
		}
		t, err := mrParseTrackEntry(c)
		if err != nil {
			return err
		}
		for i := range tracks {
			if tracks[i].Number == t.Number {
				return mrErr(ErrInvalidMKV, c.id, c.off, "a second track numbered %d", t.Number)
			}
		}
		tracks = append(tracks, t)
	}
	if it.err != nil {
		return it.err
	}
	r.tracks, r.lastTrack = tracks, 0
	return nil
}

func mrParseTrackEntry(e mrElem) (MKVTrack, error) {
	var t MKVTrack
	it, err := e.children(3)
	if err != nil {
		return t, err
	}
	for it.next() {
		c := it.cur
		var err error
		switch c.id {
		case mkvTrackNumber:
			t.Number, err = c.uint()
		case mkvTrackUID:
			t.UID, err = c.uint()
		case mkvTrackType:
			t.Type, err = c.uint()
		case mkvCodecID:
			t.CodecID = c.str()
		case mkvCodecPrivate:
			t.CodecPrivate = c.data
		case mkvName:
			t.Name = c.str()
		case mkvDefaultDuration:
			t.DefaultDuration, err = c.uint()
			if err == nil && t.DefaultDuration > 1<<50 {
				err = mrErr(ErrInvalidMKV, c.id, c.off, "DefaultDuration %d ns out of range", t.DefaultDuration)
			}
		case mkvCodecDelay:
			t.CodecDelay, err = c.uint()
		case mkvSeekPreRoll:
			t.SeekPreRoll, err = c.uint()
		case mkvVideo, mkvAudio:
			err = mrParseTrackMedia(c, &t)
		}
		if err != nil {
			return t, err
		}
	}
	if it.err != nil {
		return t, it.err
	}
	if t.Number == 0 {
		return t, mrErr(ErrInvalidMKV, e.id, e.off, "no TrackNumber (or 0)")
	}
	if t.Type == mkvTrackAudio {
		if t.SamplingFrequency == 0 {
			t.SamplingFrequency = 8000
		}
		if t.Channels == 0 {
			t.Channels = 1
		}
	}
	return t, nil
}

// mrParseTrackMedia reads a Video or an Audio element into t.
func mrParseTrackMedia(e mrElem, t *MKVTrack) error {
	it, err := e.children(4)
	if err != nil {
		return err
	}
	for it.next() {
		c := it.cur
		var err error
		switch c.id {
		case mkvPixelWidth:
			t.PixelWidth, err = c.uint()
		case mkvPixelHeight:
			t.PixelHeight, err = c.uint()
		case mkvSamplingFrequency:
			t.SamplingFrequency, err = c.float()
			if err == nil && (math.IsNaN(t.SamplingFrequency) || t.SamplingFrequency < 0) {
				err = mrErr(ErrInvalidMKV, c.id, c.off, "sampling frequency %v", t.SamplingFrequency)
			}
		case mkvChannels:
			t.Channels, err = c.uint()
		case mkvBitDepth:
			t.BitDepth, err = c.uint()
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

// parseTags adds the SimpleTags of a Tags element that apply to the whole
// segment to the segment's tags. The maps are copied, not modified, so the
// clusters returned before keep the tags they had.
func (r *MKVReader) parseTags(e mrElem) error {
	it, err := e.children(2)
	if err != nil {
		return err
	}
	tags := maps.Clone(r.tags)
	bin := maps.Clone(r.binary)
	if tags == nil {
		tags = map[string]string{}
	}
	for it.next() {
		c := it.cur
		if c.id != mkvTag {
			continue
		}
		if err := r.parseTag(c, tags, &bin); err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	r.tags, r.binary = tags, bin
	return nil
}

// parseTag adds the SimpleTags of a Tag that targets the whole segment.
func (r *MKVReader) parseTag(e mrElem, tags map[string]string, bin *map[string][]byte) error {
	it, err := e.children(3)
	if err != nil {
		return err
	}
	// Targets may come after the SimpleTags: look at them first.
	for it.next() {
		c := it.cur
		if c.id != mkvTargets {
			continue
		}
		t, err := c.children(4)
		if err != nil {
			return err
		}
		for t.next() {
			switch t.cur.id {
			case mkvTagTrackUID, mrTagEditionUID, mrTagChapterUID, mrTagAttachmentUID:
				v, err := t.cur.uint()
				if err != nil {
					return err
				}
				if v != 0 {
					return nil // a tag of a track, an edition, a chapter or an attachment
				}
			}
		}
		if t.err != nil {
			return t.err
		}
	}
	if it.err != nil {
		return it.err
	}
	it, _ = e.children(3)
	for it.next() {
		if c := it.cur; c.id == mkvSimpleTag {
			if err := r.parseSimpleTag(c, 4, tags, bin); err != nil {
				return err
			}
		}
	}
	return it.err
}

// parseSimpleTag adds a SimpleTag (at nesting level depth) and the
// SimpleTags nested in it.
func (r *MKVReader) parseSimpleTag(e mrElem, depth int, tags map[string]string, bin *map[string][]byte) error {
	it, err := e.children(depth)
	if err != nil {
		return err
	}
	if r.nTags++; r.nTags > r.MaxTags {
		return mrErr(ErrMKVLimit, e.id, e.off, "more than %d SimpleTags in the segment (MaxTags)", r.MaxTags)
	}
	var name, value string
	var binary []byte
	isBinary := false
	for it.next() {
		c := it.cur
		switch c.id {
		case mkvTagName:
			name = c.str()
		case mkvTagString:
			value, binary, isBinary = c.str(), nil, false
		case mkvTagBinary:
			value, binary, isBinary = string(c.data), c.data, true
		case mkvSimpleTag:
			if err := r.parseSimpleTag(c, depth+1, tags, bin); err != nil {
				return err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if name == "" {
		return nil
	}
	tags[name] = value
	if isBinary {
		if *bin == nil {
			*bin = map[string][]byte{}
		}
		(*bin)[name] = binary
	} else if *bin != nil {
		delete(*bin, name)
	}
	return nil
}
