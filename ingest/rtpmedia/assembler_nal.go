package rtpmedia

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/tributary-io/tributary/fragment"
)

// Errors of the access-unit assemblers. errNoStart and errIncomplete are
// expected at the start of a stream and after loss; the others are
// malformed input.
var (
	errNoStart      = errors.New("fragment without its start (stream joined mid-unit)")
	errIncomplete   = errors.New("fragmented unit lost a packet")
	errShortPayload = errors.New("RTP payload too short")
	errAUTooLarge   = fmt.Errorf("access unit larger than %d bytes", h264.MaxAccessUnitSize)
	errTooManyNALUs = fmt.Errorf("more than %d NAL units in an access unit", h264.MaxNALUsPerAccessUnit)
)

// accessUnit is a complete access unit: its NAL units, views into the
// assembler's buffer, each behind its 4-byte length.
type accessUnit struct {
	ts    uint32
	buf   *nalBuf
	nalus [][]byte
}

// nalBuf holds one access unit being built: NAL units, each behind a
// 4-byte big-endian length (the MP4 sample format).
type nalBuf struct {
	b     []byte // in mem
	mem   fragment.Buffer
	count int
	nalus [][]byte
}

// reset empties the buffer; memory that grew past one chunk for a large
// unit goes back to the allocator.
func (n *nalBuf) reset() {
	n.count = 0
	if n.mem.Shrink() {
		n.b = nil
	} else {
		n.b = n.b[:0]
	}
}

// room makes room for k more bytes.
func (n *nalBuf) room(k int) { n.b = n.mem.Reserve(n.b, k) }

// nalAssembler rebuilds the access units of an H.264 (RFC 6184: single NAL
// unit, STAP-A, FU-A) or H.265 (RFC 7798: single, AP, FU) RTP stream. NAL
// units are copied out of each packet at once, so packet buffers can be
// reused, and nothing is allocated per packet once its two buffers have
// grown to the largest access unit. An access unit ends at the marker bit,
// or, for cameras that do not set it, where a packet with another
// timestamp begins. NAL units sent in Annex-B form inside an RTP payload
// are split at their start codes. It is used by one goroutine.
type nalAssembler struct {
	h265 bool

	bufs    [2]nalBuf
	cur     int    // index of the buffer being built
	done    bool   // it holds the unit the last call returned
	ts      uint32 // its timestamp
	fu      int    // offset in it of the length of the NAL unit a fragmentation unit builds; -1 if none
	fuNext  uint16 // sequence number the next fragment must carry
	out     [2]accessUnit
	scratch []byte
	// units counts the access units finished, up to scanUnits; embeds is
	// set once a coded slice held a start code
	units  int
	embeds bool
}

// scanUnits is how many access units have every NAL unit searched for
// start codes before non-key slices are searched only for cameras seen
// embedding them (see splitAnnexB).
const scanUnits = 300

func newNALAssembler(h265 bool) *nalAssembler { return &nalAssembler{h265: h265, fu: -1} }

// push adds one RTP payload and returns the access units it completed (at
// most two: the previous one on a timestamp change, and its own on the
// marker bit), valid until the next call. On error, the unit being built is
// dropped; units returned with the error are complete and good.
func (a *nalAssembler) push(seq uint16, ts uint32, marker bool, p []byte) ([]accessUnit, error) {
	out := a.out[:0]
	cur := &a.bufs[a.cur]
	if a.done {
		cur.reset()
		a.done = false
	}
	if ts != a.ts && (cur.count > 0 || a.fu >= 0) {
		if a.fu >= 0 {
			// the unit's last fragment never came: what it holds is
			// incomplete, whatever came before it
			a.drop()
			a.ts = ts
			if err := a.add(seq, p); err != nil {
				a.drop()
				return out, err
			}
			return a.finishOn(marker, out), errIncomplete
		}
		// the new unit goes to the other buffer while this one is out:
		// only cameras that do not set the marker bit grow both
		out = a.finish(out)
		a.done = false
		a.cur ^= 1
		a.bufs[a.cur].reset()
	}
	a.ts = ts
	if err := a.add(seq, p); err != nil {
		a.drop()
		return out, err
	}
	return a.finishOn(marker, out), nil
}

func (a *nalAssembler) finishOn(marker bool, out []accessUnit) []accessUnit {
	if marker && a.fu < 0 && a.bufs[a.cur].count > 0 {
		return a.finish(out)
	}
	return out
}

// drop forgets the unit being built.
func (a *nalAssembler) drop() {
	if a.done {
		return // the unit in the buffer was handed out: it stays valid
	}
	a.bufs[a.cur].reset()
	a.fu = -1
}

// finish appends the unit being built to out; its buffer is emptied at the
// next call.
func (a *nalAssembler) finish(out []accessUnit) []accessUnit {
	nb := &a.bufs[a.cur]
	a.splitAnnexB(nb)
	nb.nalus = nb.nalus[:0]
	for b := nb.b; len(b) >= 4; {
		n := int(binary.BigEndian.Uint32(b))
		nb.nalus = append(nb.nalus, b[4:4+n])
		b = b[4+n:]
	}
	out = append(out, accessUnit{ts: a.ts, buf: nb, nalus: nb.nalus})
	a.done = true
	a.fu = -1
	return out
}

// add copies the NAL units (or the fragment of one) of payload p.
func (a *nalAssembler) add(seq uint16, p []byte) error {
	hdr := 1
	if a.h265 {
		hdr = 2
	}
	if len(p) < hdr {
		return errShortPayload
	}
	var typ byte
	var aggregate, fragment bool
	if a.h265 {
		typ = (p[0] >> 1) & 0x3f
		switch {
		case typ < 48:
		case typ == 48:
			aggregate = true
		case typ == 49:
			fragment = true
		default:
			return fmt.Errorf("H.265 RTP packet type %d not supported", typ)
		}
	} else {
		typ = p[0] & 0x1f
		switch {
		case typ >= 1 && typ <= 23:
		case typ == 24:
			aggregate = true
		case typ == 28:
			fragment = true
		default:
			return fmt.Errorf("H.264 RTP packet type %d not supported", typ)
		}
	}
	switch {
	case fragment:
		return a.addFragment(seq, p)
	case aggregate:
		if a.fu >= 0 {
			return errIncomplete
		}
		q := p[hdr:]
		for len(q) > 0 {
			if len(q) < 2 {
				return fmt.Errorf("aggregation packet: truncated size")
			}
			n := int(binary.BigEndian.Uint16(q))
			q = q[2:]
			if n == 0 || n > len(q) {
				return fmt.Errorf("aggregation packet: NAL unit size %d, %d bytes left", n, len(q))
			}
			if err := a.appendNAL(q[:n]); err != nil {
				return err
			}
			q = q[n:]
		}
		return nil
	default:
		if a.fu >= 0 {
			return errIncomplete
		}
		return a.appendNAL(p)
	}
}

func (a *nalAssembler) addFragment(seq uint16, p []byte) error {
	nb := &a.bufs[a.cur]
	var fuh byte
	var data []byte
	var header [2]byte
	hlen := 1
	if a.h265 {
		if len(p) < 3 {
			return errShortPayload
		}
		fuh, data = p[2], p[3:]
		header = [2]byte{p[0]&0x81 | (fuh&0x3f)<<1, p[1]}
		hlen = 2
	} else {
		if len(p) < 2 {
			return errShortPayload
		}
		fuh, data = p[1], p[2:]
		header[0] = p[0]&0xe0 | fuh&0x1f
	}
	start, end := fuh&0x80 != 0, fuh&0x40 != 0
	if start {
		if end {
			return fmt.Errorf("fragmentation unit with both start and end bits")
		}
		if a.fu >= 0 {
			return errIncomplete
		}
		if nb.count >= h264.MaxNALUsPerAccessUnit {
			return errTooManyNALUs
		}
		a.fu = len(nb.b)
		nb.room(4 + hlen + len(data))
		nb.b = append(nb.b, 0, 0, 0, 0)
		nb.b = append(nb.b, header[:hlen]...)
	} else {
		if a.fu < 0 {
			return errNoStart
		}
		if seq != a.fuNext {
			return errIncomplete
		}
	}
	if len(nb.b)+len(data) > h264.MaxAccessUnitSize {
		return errAUTooLarge
	}
	nb.room(len(data))
	nb.b = append(nb.b, data...)
	a.fuNext = seq + 1
	if end {
		binary.BigEndian.PutUint32(nb.b[a.fu:], uint32(len(nb.b)-a.fu-4))
		nb.count++
		a.fu = -1
	}
	return nil
}

func (a *nalAssembler) appendNAL(n []byte) error {
	nb := &a.bufs[a.cur]
	if nb.count >= h264.MaxNALUsPerAccessUnit {
		return errTooManyNALUs
	}
	if len(nb.b)+4+len(n) > h264.MaxAccessUnitSize {
		return errAUTooLarge
	}
	nb.room(4 + len(n))
	nb.b = binary.BigEndian.AppendUint32(nb.b, uint32(len(n)))
	nb.b = append(nb.b, n...)
	nb.count++
	return nil
}

var startCode = []byte{0, 0, 1}

// nonKeySlice reports whether a NAL unit is a coded slice of a picture
// that is not a random access point (H.264 types 1-4, H.265 0-15).
func (a *nalAssembler) nonKeySlice(nal []byte) bool {
	if len(nal) == 0 {
		return false
	}
	if a.h265 {
		return (nal[0]>>1)&0x3f < 16
	}
	t := nal[0] & 0x1f
	return t >= 1 && t <= 4
}

// hasStartCode reports whether b holds 00 00 01. It looks for the 01s
// (as rare as any byte in coded slice data) rather than for the zeros
// (common in it, and bytes.Index stops at each).
func hasStartCode(b []byte) bool {
	for i := 2; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], 1)
		if j < 0 {
			return false
		}
		i += j
		if b[i-1] == 0 && b[i-2] == 0 {
			return true
		}
	}
	return false
}

// splitAnnexB splits NAL units that carry Annex-B start codes (some
// cameras send several NAL units, start codes included, as one). A valid
// NAL unit never holds 00 00 01: emulation prevention forbids it.
//
// Searching costs a pass over all the video, a tenth of the ingest's CPU.
// Cameras that embed start codes do it from their first frames, so the
// coded slices of non-keyframes are searched during the first scanUnits
// access units, then only for a camera seen embedding them; parameter
// sets, SEI and keyframe slices always are.
func (a *nalAssembler) splitAnnexB(nb *nalBuf) {
	a.units = min(a.units+1, scanUnits)
	all := a.embeds || a.units < scanUnits
	found := false
	for b := nb.b; len(b) >= 4; {
		n := int(binary.BigEndian.Uint32(b))
		nal := b[4 : 4+n]
		b = b[4+n:]
		slice := a.nonKeySlice(nal)
		if (all || !slice) && hasStartCode(nal) {
			found = true
			a.embeds = a.embeds || slice
			break
		}
	}
	if !found {
		return
	}
	out := a.scratch[:0]
	count := 0
	for b := nb.b; len(b) >= 4; {
		n := int(binary.BigEndian.Uint32(b))
		rest := b[4 : 4+n]
		b = b[4+n:]
		for len(rest) > 0 {
			var piece []byte
			if i := bytes.Index(rest, startCode); i >= 0 {
				piece, rest = rest[:i], rest[i+3:]
			} else {
				piece, rest = rest, nil
			}
			piece = bytes.TrimRight(piece, "\x00") // the 4-byte start code's extra zero, trailing zeros
			if len(piece) == 0 || count >= h264.MaxNALUsPerAccessUnit {
				continue
			}
			out = binary.BigEndian.AppendUint32(out, uint32(len(piece)))
			out = append(out, piece...)
			count++
		}
	}
	a.scratch = out[:0]
	nb.b = nb.b[:0]
	nb.room(len(out))
	nb.b = append(nb.b, out...)
	nb.count = count
}

// release gives the buffers' memory back at the end of a session.
func (a *nalAssembler) release() {
	for i := range a.bufs {
		a.bufs[i].mem.Release()
		a.bufs[i].b = nil
		a.bufs[i].count = 0
	}
	a.fu = -1
}
