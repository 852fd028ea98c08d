package rtpmedia

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// maxAUsPerPacket bounds the AU headers of one RFC 3640 packet.
const maxAUsPerPacket = 64

// aacAssembler extracts AAC access units from an RFC 3640 (mpeg4-generic)
// RTP stream: several AUs per packet, or one AU fragmented over several,
// and AUs some cameras wrap in ADTS headers. Unfragmented AUs are returned
// as views into the packet; fragments are gathered into a buffer it owns.
// Nothing is allocated per packet. It is used by one goroutine.
type aacAssembler struct {
	sizeLen, indexLen, deltaLen int

	frag     []byte // the fragmented AU so far
	fragging bool
	fragNext uint16
	checked  bool // the first AU was looked at for ADTS
	adts     bool

	sizes [maxAUsPerPacket]int
	aus   [maxAUsPerPacket][]byte
}

// push returns the AUs that payload p completes, valid until the next call
// and until p is reused.
func (a *aacAssembler) push(seq uint16, marker bool, p []byte) ([][]byte, error) {
	if len(p) < 2 {
		a.fragging = false
		return nil, errShortPayload
	}
	hbits := int(p[0])<<8 | int(p[1])
	if hbits == 0 {
		a.fragging = false
		return nil, errors.New("AAC: AU-headers-length is 0")
	}
	hbytes := (hbits + 7) / 8
	if len(p) < 2+hbytes {
		a.fragging = false
		return nil, errShortPayload
	}
	n, err := a.readHeaders(p[2:2+hbytes], hbits)
	if err != nil {
		a.fragging = false
		return nil, err
	}
	data := p[2+hbytes:]

	if a.fragging || !marker {
		// one AU over several packets: each carries one AU header whose
		// size is the fragment's or, as RFC 3640 puts it, the whole AU's
		if n != 1 {
			a.fragging = false
			return nil, errors.New("AAC: a fragmented AU's packet has several AU headers")
		}
		if a.fragging && seq != a.fragNext {
			a.fragging = false
			return nil, errIncomplete
		}
		if !a.fragging {
			a.frag = a.frag[:0]
			a.fragging = true
		}
		chunk := data
		if a.sizes[0] < len(chunk) {
			chunk = chunk[:a.sizes[0]]
		}
		if len(a.frag)+len(chunk) > mpeg4audio.MaxAccessUnitSize {
			a.fragging = false
			return nil, fmt.Errorf("AAC: access unit larger than %d bytes", mpeg4audio.MaxAccessUnitSize)
		}
		a.frag = append(a.frag, chunk...)
		a.fragNext = seq + 1
		if !marker {
			return nil, nil
		}
		a.fragging = false
		a.aus[0] = a.frag
		return a.unwrap(a.aus[:1])
	}

	for i := 0; i < n; i++ {
		if a.sizes[i] > len(data) {
			return nil, fmt.Errorf("AAC: AU of %d bytes, %d left in the packet", a.sizes[i], len(data))
		}
		a.aus[i] = data[:a.sizes[i]]
		data = data[a.sizes[i]:]
	}
	return a.unwrap(a.aus[:n])
}

// readHeaders reads the AU headers' sizes into a.sizes.
func (a *aacAssembler) readHeaders(h []byte, nbits int) (int, error) {
	pos, n := 0, 0
	for nbits-pos > 0 {
		idx := a.deltaLen
		if n == 0 {
			idx = a.indexLen
		}
		if pos+a.sizeLen+idx > nbits || a.sizeLen == 0 {
			return 0, errors.New("AAC: truncated AU header")
		}
		if n == maxAUsPerPacket {
			return 0, fmt.Errorf("AAC: more than %d AUs in a packet", maxAUsPerPacket)
		}
		size := readBits(h, pos, a.sizeLen)
		pos += a.sizeLen
		if readBits(h, pos, idx) != 0 {
			return 0, errors.New("AAC: interleaved AUs (AU-index not 0) are not supported")
		}
		pos += idx
		if size == 0 {
			return 0, errors.New("AAC: AU of size 0")
		}
		a.sizes[n] = size
		n++
	}
	return n, nil
}

// readBits reads n (≤ 32) bits of b from bit pos; the caller checked the
// bounds.
func readBits(b []byte, pos, n int) int {
	v := 0
	for i := 0; i < n; i++ {
		bit := (b[(pos+i)/8] >> (7 - uint((pos+i)%8))) & 1
		v = v<<1 | int(bit)
	}
	return v
}

// unwrap strips ADTS headers when the camera sends them (decided on the
// first AU, as gortsplib does).
func (a *aacAssembler) unwrap(aus [][]byte) ([][]byte, error) {
	if !a.checked {
		a.checked = true
		a.adts = len(aus) == 1 && len(aus[0]) >= 7 && aus[0][0] == 0xff && aus[0][1]&0xf0 == 0xf0
	}
	if !a.adts {
		return aus, nil
	}
	for i, au := range aus {
		if len(au) < 7 || au[0] != 0xff || au[1]&0xf0 != 0xf0 {
			return nil, errors.New("AAC: ADTS header expected")
		}
		hl := 7
		if au[1]&1 == 0 {
			hl = 9 // with a CRC
		}
		fl := int(au[3]&3)<<11 | int(au[4])<<3 | int(au[5])>>5
		if fl < hl || fl > len(au) {
			return nil, fmt.Errorf("AAC: ADTS frame length %d in %d bytes", fl, len(au))
		}
		aus[i] = au[hl:fl]
	}
	return aus, nil
}
