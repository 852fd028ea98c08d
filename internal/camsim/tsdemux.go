package camsim

import (
	"fmt"
)

// A small MPEG-TS demuxer for the test clips (PAT, one PMT, PES with PTS/DTS).
// mediacommon's mpegts.Reader would do, but it depends on a module that this
// repository does not require; the clips are ours and well formed, so this is enough.

const (
	tsPacketSize = 188

	tsStreamTypeAAC     = 0x0f // ISO 13818-7 ADTS
	tsStreamTypeH264    = 0x1b
	tsStreamTypeH265    = 0x24
	tsStreamTypePrivate = 0x06 // Opus when the registration descriptor says "Opus"
)

// tsES is an elementary stream declared in the PMT.
type tsES struct {
	pid         uint16
	streamType  uint8
	descriptors []byte
	pes         []byte // PES being assembled
}

// tsPES is a complete PES packet.
type tsPES struct {
	es       *tsES
	pts, dts int64 // 33-bit values, not unwrapped; dts == pts when absent
	data     []byte
}

// demuxTS splits an MPEG-TS file into elementary streams. onPMT is called once, when
// the first PMT has been read; onPES for every complete PES of a declared stream, in
// file order.
func demuxTS(data []byte, onPMT func([]*tsES) error, onPES func(*tsPES) error) error {
	if len(data) < tsPacketSize || data[0] != 0x47 {
		return fmt.Errorf("not an MPEG-TS file")
	}
	pmtPID := -1
	var streams map[uint16]*tsES
	var order []*tsES

	flush := func(es *tsES) error {
		if len(es.pes) == 0 {
			return nil
		}
		buf := es.pes
		es.pes = nil
		p, err := parsePES(buf)
		if err != nil {
			return fmt.Errorf("PID %d: %w", es.pid, err)
		}
		p.es = es
		return onPES(p)
	}

	for off := 0; off+tsPacketSize <= len(data); off += tsPacketSize {
		pkt := data[off : off+tsPacketSize]
		if pkt[0] != 0x47 {
			return fmt.Errorf("lost sync at byte %d", off)
		}
		pusi := pkt[1]&0x40 != 0
		pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
		afc := (pkt[3] >> 4) & 3
		pos := 4
		if afc&2 != 0 {
			pos += 1 + int(pkt[4])
		}
		if afc&1 == 0 || pos >= tsPacketSize {
			continue
		}
		payload := pkt[pos:]

		switch {
		case pid == 0 && pmtPID < 0 && pusi:
			sec, err := psiSection(payload)
			if err != nil {
				return fmt.Errorf("PAT: %w", err)
			}
			// program loop: program_number(16) reserved(3) PID(13)
			for i := 8; i+4 <= len(sec)-4; i += 4 {
				if sec[i] != 0 || sec[i+1] != 0 {
					pmtPID = int(sec[i+2]&0x1f)<<8 | int(sec[i+3])
					break
				}
			}

		case int(pid) == pmtPID && streams == nil && pusi:
			sec, err := psiSection(payload)
			if err != nil {
				return fmt.Errorf("PMT: %w", err)
			}
			if len(sec) < 16 {
				return fmt.Errorf("PMT: too short")
			}
			streams = map[uint16]*tsES{}
			i := 12 + (int(sec[10]&0x0f)<<8 | int(sec[11]))
			for i+5 <= len(sec)-4 {
				esInfo := int(sec[i+3]&0x0f)<<8 | int(sec[i+4])
				if i+5+esInfo > len(sec)-4 {
					return fmt.Errorf("PMT: truncated ES info")
				}
				es := &tsES{
					pid:         uint16(sec[i+1]&0x1f)<<8 | uint16(sec[i+2]),
					streamType:  sec[i],
					descriptors: sec[i+5 : i+5+esInfo],
				}
				streams[es.pid] = es
				order = append(order, es)
				i += 5 + esInfo
			}
			if err := onPMT(order); err != nil {
				return err
			}

		default:
			es, ok := streams[pid]
			if !ok {
				continue
			}
			if pusi {
				if err := flush(es); err != nil {
					return err
				}
				es.pes = make([]byte, 0, 4096)
			} else if es.pes == nil {
				continue // continuation of a PES whose start we never saw
			}
			es.pes = append(es.pes, payload...)
		}
	}
	if streams == nil {
		return fmt.Errorf("no PMT found")
	}
	for _, es := range order {
		if err := flush(es); err != nil {
			return err
		}
	}
	return nil
}

// psiSection returns the section that starts in a PSI payload (with pointer field),
// from table_id to the end of its CRC. Sections of the clips fit in one TS packet.
func psiSection(payload []byte) ([]byte, error) {
	if len(payload) < 1 || 1+int(payload[0])+3 > len(payload) {
		return nil, fmt.Errorf("bad pointer field")
	}
	sec := payload[1+int(payload[0]):]
	n := 3 + (int(sec[1]&0x0f)<<8 | int(sec[2]))
	if n > len(sec) {
		return nil, fmt.Errorf("section spans several TS packets")
	}
	return sec[:n], nil
}

// parsePES parses a PES packet with its optional header.
func parsePES(b []byte) (*tsPES, error) {
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return nil, fmt.Errorf("bad PES start code")
	}
	if n := int(b[4])<<8 | int(b[5]); n != 0 && 6+n <= len(b) {
		b = b[:6+n]
	}
	flags := b[7] >> 6
	hdrLen := int(b[8])
	if 9+hdrLen > len(b) {
		return nil, fmt.Errorf("truncated PES header")
	}
	p := &tsPES{data: b[9+hdrLen:]}
	switch flags {
	case 2:
		if hdrLen < 5 {
			return nil, fmt.Errorf("truncated PTS")
		}
		p.pts = parseTSTimestamp(b[9:])
		p.dts = p.pts
	case 3:
		if hdrLen < 10 {
			return nil, fmt.Errorf("truncated PTS/DTS")
		}
		p.pts = parseTSTimestamp(b[9:])
		p.dts = parseTSTimestamp(b[14:])
	default:
		return nil, fmt.Errorf("PES without PTS")
	}
	return p, nil
}

func parseTSTimestamp(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// tsDescriptor returns the body of the first descriptor with the tag, or nil.
func tsDescriptor(descs []byte, tag byte) []byte {
	for i := 0; i+2 <= len(descs); {
		t, n := descs[i], int(descs[i+1])
		if i+2+n > len(descs) {
			return nil
		}
		if t == tag {
			return descs[i+2 : i+2+n]
		}
		i += 2 + n
	}
	return nil
}

// isOpus reports whether a private-data stream is Opus (registration descriptor "Opus").
func (es *tsES) isOpus() bool {
	reg := tsDescriptor(es.descriptors, 0x05)
	return es.streamType == tsStreamTypePrivate && len(reg) >= 4 && string(reg[:4]) == "Opus"
}

// timeUnwrapper turns 33-bit MPEG-TS timestamps into a continuous int64 time line
// (one shared by every stream, so they stay comparable).
type timeUnwrapper struct {
	init    bool
	prev    int64
	overall int64
}

func (u *timeUnwrapper) unwrap(ts int64) int64 {
	const mask = 1<<33 - 1
	if !u.init {
		u.init = true
		u.prev = ts
		u.overall = ts
		return ts
	}
	diff := (ts - u.prev) & mask
	if diff > mask/2 {
		diff -= mask + 1
	}
	u.prev = ts
	u.overall += diff
	return u.overall
}
