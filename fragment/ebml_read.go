package fragment

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// EBML decoding helpers of the Matroska reader (reader_mkv.go). Everything
// here works on bytes already in memory and never allocates in proportion to
// a size read from the input.

// IDs the reader needs that mkv_ids.go does not name.
const (
	mrTagEditionUID     = 0x63C9
	mrTagChapterUID     = 0x63C4
	mrTagAttachmentUID  = 0x63C6
	mrTargetType        = 0x63CA
	mrSilentTracks      = 0x5854
	mrEncryptedBlock    = 0xAF
	mrReferencePriority = 0xFA
	mrCodecState        = 0xA4
	mrContentEncodings  = 0x6D80
)

// mrMaxDepth bounds how deep master elements nest (the EBML header and the
// Segment count as level 1). Matroska needs 6 at most except for nested
// SimpleTags.
const mrMaxDepth = 16

// mrNames names the elements that show up in error messages.
var mrNames = map[uint32]string{
	mkvEBML: "EBML header", mkvEBMLVersion: "EBMLVersion", mkvEBMLReadVersion: "EBMLReadVersion",
	mkvEBMLMaxIDLength: "EBMLMaxIDLength", mkvEBMLMaxSizeLength: "EBMLMaxSizeLength", mkvDocType: "DocType",
	mkvDocTypeVersion: "DocTypeVersion", mkvDocTypeReadVersion: "DocTypeReadVersion", mkvVoid: "Void", mkvCRC32: "CRC-32",
	mkvSegment: "Segment", mkvSeekHead: "SeekHead", mkvInfo: "Info", mkvTimecodeScale: "TimecodeScale",
	mkvDuration: "Duration", mkvTracks: "Tracks", mkvTrackEntry: "TrackEntry", mkvTrackNumber: "TrackNumber",
	mkvTrackUID: "TrackUID", mkvTrackType: "TrackType", mkvDefaultDuration: "DefaultDuration", mkvName: "Name",
	mkvCodecID: "CodecID", mkvCodecPrivate: "CodecPrivate", mkvCodecDelay: "CodecDelay", mkvSeekPreRoll: "SeekPreRoll",
	mkvVideo: "Video", mkvPixelWidth: "PixelWidth", mkvPixelHeight: "PixelHeight", mkvAudio: "Audio",
	mkvSamplingFrequency: "SamplingFrequency", mkvChannels: "Channels", mkvBitDepth: "BitDepth",
	mkvTags: "Tags", mkvTag: "Tag", mkvTargets: "Targets", mkvTagTrackUID: "TagTrackUID", mkvSimpleTag: "SimpleTag",
	mkvTagName: "TagName", mkvTagString: "TagString", mkvTagBinary: "TagBinary", mkvCues: "Cues",
	mkvChapters: "Chapters", mkvAttachments: "Attachments", mkvCluster: "Cluster", mkvTimecode: "Timecode",
	mkvPosition: "Position", mkvPrevSize: "PrevSize", mkvSimpleBlock: "SimpleBlock", mkvBlockGroup: "BlockGroup",
	mkvBlock: "Block", mkvBlockDuration: "BlockDuration", mkvReferenceBlock: "ReferenceBlock",
	mkvBlockAdditions: "BlockAdditions", mkvDiscardPadding: "DiscardPadding", mrEncryptedBlock: "EncryptedBlock",
	mrSilentTracks: "SilentTracks", mrContentEncodings: "ContentEncodings",
}

// mrDescribe names an element for an error message: "Cluster (0x1F43B675)",
// or "element 0x4321" when the ID is not one the reader knows.
func mrDescribe(id uint32) string {
	if n, ok := mrNames[id]; ok {
		return fmt.Sprintf("%s (0x%X)", n, id)
	}
	return fmt.Sprintf("element 0x%X", id)
}

// mrErr returns an error wrapping sentinel that names the element id at
// byte offset off.
func mrErr(sentinel error, id uint32, off int64, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d: %s", sentinel, mrDescribe(id), off, fmt.Sprintf(format, args...))
}

// mrTruncated is the error for a stream that ends inside element id (which
// starts at off): it wraps both ErrInvalidMKV and io.ErrUnexpectedEOF.
func mrTruncated(id uint32, off int64) error {
	return fmt.Errorf("%w: %w: %s at offset %d: the stream ends inside the element", ErrInvalidMKV, io.ErrUnexpectedEOF, mrDescribe(id), off)
}

// mrIDLen returns the length of the element ID that starts with byte b0, or
// 0 when it would be longer than 4 bytes.
func mrIDLen(b0 byte) int {
	n := bits.LeadingZeros8(b0) + 1
	if n > 4 {
		return 0
	}
	return n
}

// mrIDValid reports whether an n-byte ID is neither all-zero nor all-one in
// its value bits (both are reserved).
func mrIDValid(id uint32, n int) bool {
	mask := uint32(1)<<(7*n) - 1
	v := id & mask
	return v != 0 && v != mask
}

// mrSizeLen returns the length of the size vint that starts with b0, or 0
// when it would be longer than 8 bytes.
func mrSizeLen(b0 byte) int {
	if b0 == 0 {
		return 0
	}
	return bits.LeadingZeros8(b0) + 1
}

// mrUnknown marks an element of unknown size.
const mrUnknown = -1

// mrSizeValue finishes decoding a size vint of n bytes whose bytes are b:
// mrUnknown when all its value bits are ones.
func mrSizeValue(b []byte) int64 {
	n := len(b)
	v := uint64(b[0]) & (0xFF >> n)
	for _, c := range b[1:] {
		v = v<<8 | uint64(c)
	}
	if v == uint64(1)<<(7*n)-1 {
		return mrUnknown
	}
	return int64(v) // at most 2^56-2
}

// mrElem is an element found in memory by mrIter.
type mrElem struct {
	id      uint32
	off     int64 // absolute offset of the element's first byte
	dataOff int64 // absolute offset of data
	data    []byte
}

// mrIter walks the children of a master element held in memory.
type mrIter struct {
	b      []byte
	pos    int
	base   int64  // absolute offset of b[0]
	parent uint32 // for error messages
	poff   int64
	err    error
	cur    mrElem
}

func mrChildren(parent uint32, poff int64, data []byte, base int64) mrIter {
	return mrIter{b: data, base: base, parent: parent, poff: poff}
}

// next advances to the next child; false at the end or on error (it.err).
func (it *mrIter) next() bool {
	if it.err != nil || it.pos >= len(it.b) {
		return false
	}
	b := it.b[it.pos:]
	off := it.base + int64(it.pos)
	n := mrIDLen(b[0])
	if n == 0 {
		it.err = mrErr(ErrInvalidMKV, it.parent, it.poff, "child at offset %d: element ID longer than 4 bytes (first byte 0x%02X)", off, b[0])
		return false
	}
	if len(b) < n {
		it.err = mrErr(ErrInvalidMKV, it.parent, it.poff, "child at offset %d: element ID runs past the parent's end", off)
		return false
	}
	var id uint32
	for _, c := range b[:n] {
		id = id<<8 | uint32(c)
	}
	if !mrIDValid(id, n) {
		it.err = mrErr(ErrInvalidMKV, it.parent, it.poff, "child at offset %d: reserved element ID 0x%X", off, id)
		return false
	}
	if len(b) == n {
		it.err = mrErr(ErrInvalidMKV, id, off, "size runs past the end of its parent %s", mrDescribe(it.parent))
		return false
	}
	m := mrSizeLen(b[n])
	if m == 0 {
		it.err = mrErr(ErrInvalidMKV, id, off, "size longer than 8 bytes")
		return false
	}
	if len(b) < n+m {
		it.err = mrErr(ErrInvalidMKV, id, off, "size runs past the end of its parent %s", mrDescribe(it.parent))
		return false
	}
	size := mrSizeValue(b[n : n+m])
	if size == mrUnknown {
		it.err = mrErr(ErrInvalidMKV, id, off, "unknown size inside %s", mrDescribe(it.parent))
		return false
	}
	if size > int64(len(b)-n-m) {
		it.err = mrErr(ErrInvalidMKV, id, off, "size %d larger than what is left of its parent %s (%d bytes)", size, mrDescribe(it.parent), len(b)-n-m)
		return false
	}
	it.cur = mrElem{id: id, off: off, dataOff: off + int64(n+m), data: b[n+m : n+m+int(size) : n+m+int(size)]}
	it.pos += n + m + int(size)
	return true
}

// children returns an iterator over e's children; depth is e's level.
func (e mrElem) children(depth int) (mrIter, error) {
	if depth > mrMaxDepth {
		return mrIter{}, mrErr(ErrMKVLimit, e.id, e.off, "elements nested deeper than %d levels", mrMaxDepth)
	}
	return mrChildren(e.id, e.off, e.data, e.dataOff), nil
}

// uint decodes an unsigned integer element (0-8 bytes).
func (e mrElem) uint() (uint64, error) {
	if len(e.data) > 8 {
		return 0, mrErr(ErrInvalidMKV, e.id, e.off, "unsigned integer of %d bytes (at most 8)", len(e.data))
	}
	var v uint64
	for _, c := range e.data {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// int decodes a signed integer element (0-8 bytes).
func (e mrElem) int() (int64, error) {
	if len(e.data) > 8 {
		return 0, mrErr(ErrInvalidMKV, e.id, e.off, "signed integer of %d bytes (at most 8)", len(e.data))
	}
	if len(e.data) == 0 {
		return 0, nil
	}
	v := int64(int8(e.data[0]))
	for _, c := range e.data[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// float decodes a float element (0, 4 or 8 bytes).
func (e mrElem) float() (float64, error) {
	switch len(e.data) {
	case 0:
		return 0, nil
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(e.data))), nil
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(e.data)), nil
	}
	return 0, mrErr(ErrInvalidMKV, e.id, e.off, "float of %d bytes (0, 4 or 8)", len(e.data))
}

// str decodes a string element: EBML strings may be padded with NUL bytes
// (GStreamer NUL-terminates every string), which are dropped.
func (e mrElem) str() string {
	return string(mrTrimNUL(e.data))
}

func mrTrimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// mrReadVint decodes an EBML-lacing vint from b: its value, its length, and
// whether its value bits are all ones.
func mrReadVint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false
	}
	n = bits.LeadingZeros8(b[0]) + 1
	if len(b) < n {
		return 0, 0, false
	}
	v = uint64(b[0]) & (0xFF >> n)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, true
}
