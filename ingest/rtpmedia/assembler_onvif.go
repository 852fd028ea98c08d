package rtpmedia

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
)

// MaxONVIFDocument is the largest ONVIF metadata document kept (bytes):
// cameras send a few kilobytes a document; a larger one is dropped and
// counted as a decode error.
const MaxONVIFDocument = 1 << 20

var (
	errONVIFIncomplete = errors.New("ONVIF metadata document misses packets")
	errONVIFTooLarge   = errors.New("ONVIF metadata document over 1 MiB")
	errONVIFNotText    = errors.New("ONVIF metadata document is not UTF-8 XML")
)

// isONVIF reports whether a format is ONVIF metadata: RTP map
// vnd.onvif.metadata (any clock rate, 90 kHz in practice).
func isONVIF(f format.Format) bool {
	g, ok := f.(*format.Generic)
	if !ok || g.ClockRate() <= 0 {
		return false
	}
	name, _, _ := strings.Cut(g.RTPMap(), "/")
	return strings.EqualFold(name, "vnd.onvif.metadata")
}

// onvifAssembler puts together the XML documents of an ONVIF metadata
// stream (ONVIF Streaming Specification, 5.1.2.1): a document is a run of
// packets of one RTP timestamp, the marker bit set on its last. A document
// that misses a packet, outgrows MaxONVIFDocument or is not UTF-8 XML is
// dropped whole: a part of an XML document is of no use.
type onvifAssembler struct {
	buf     []byte // the document being assembled
	ts      uint32 // its RTP timestamp
	active  bool   // a document is in progress
	broken  bool   // it is dropped when it ends
	told    bool   // its drop was reported
	nextSeq uint16
	seqOK   bool
	lostSeq bool // packets were lost before the next one
}

// push adds a packet and returns a complete document (valid until the
// next push), or nil. err reports, once, a document dropped at this
// packet; a document may come with it.
func (a *onvifAssembler) push(seq uint16, ts uint32, marker bool, payload []byte) (doc []byte, err error) {
	// after a gap, the lost packets may have been the start of the
	// document this packet belongs to: it is dropped too
	gap := a.lostSeq || (a.seqOK && seq != a.nextSeq)
	a.nextSeq, a.seqOK, a.lostSeq = seq+1, true, false
	if a.active && (gap || ts != a.ts) {
		// the document in progress never got its last packet
		a.active = false
		if !a.told {
			err = errONVIFIncomplete
		}
	}
	if !a.active {
		// the rest of a document just reported is not reported again
		a.told = err != nil && ts == a.ts
		a.active, a.broken, a.ts = true, gap, ts
		a.buf = a.buf[:0]
	}
	if !a.broken {
		if len(a.buf)+len(payload) > MaxONVIFDocument {
			a.broken, a.told = true, true
			a.buf = nil // its memory goes
			err = errONVIFTooLarge
		} else {
			a.buf = append(a.buf, payload...)
		}
	}
	if !marker {
		return nil, err
	}
	a.active = false
	if a.broken {
		if !a.told {
			err = errONVIFIncomplete
		}
		return nil, err
	}
	d := trimXMLSpace(a.buf)
	if len(d) == 0 || d[0] != '<' || !utf8.Valid(d) {
		return nil, errONVIFNotText
	}
	return d, err
}

// lost tells the assembler that packets were lost before the next one.
func (a *onvifAssembler) lost() { a.lostSeq = true }

// trimXMLSpace trims the white space XML allows around a document (and NUL
// padding some cameras add).
func trimXMLSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0 }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
