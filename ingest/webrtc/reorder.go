package webrtc

import "time"

// reorderSlots is how many packets past a gap the reorder buffer holds:
// at 4 Mbit/s (about 400 packets a second) 128 packets are 300 ms.
const reorderSlots = 128

// reorderer puts the RTP packets of one track back in sequence order. In
// order packets pass straight through without a copy; a packet after a
// gap is copied into a slot until the missing ones arrive (reordered, or
// retransmitted after a NACK), until the oldest held packet has waited
// maxDelay, or until the slots are full. Then the gap is given up as lost
// and the held packets go on in order. Slot buffers are kept, so steady
// state allocates nothing.
type reorderer struct {
	maxDelay time.Duration
	started  bool
	next     uint16 // sequence number expected next
	held     int    // packets in slots
	slots    [reorderSlots]slot
}

type slot struct {
	ok  bool
	seq uint16
	at  int64 // when it was held, unix ns
	b   []byte
}

// push takes packet b (sequence number seq) received at now and calls out
// for each packet that is next in order, b itself or held ones. It
// returns how many packets were given up as lost, and whether b was
// dropped as a duplicate or too late. out must not keep its argument.
func (r *reorderer) push(seq uint16, b []byte, now time.Time, out func([]byte)) (lost int, dropped bool) {
	if !r.started {
		r.started, r.next = true, seq
	}
	diff := int16(seq - r.next)
	switch {
	case diff <= -reorderSlots:
		// far behind (or half the sequence space ahead): the sender
		// restarted its numbering; what is held goes first
		lost = r.flush(out)
		r.next = seq + 1
		out(b)
		return lost, false
	case diff < 0:
		return 0, true // late (already given up) or a duplicate
	case diff == 0:
		out(b)
		r.next++
		r.drain(out)
		return 0, false
	case int(diff) >= reorderSlots:
		// a jump beyond the buffer: whatever is held goes first, the gap
		// up to seq is lost
		lost = r.flush(out)
		lost += int(seq - r.next)
		r.next = seq + 1
		out(b)
		return lost, false
	}
	s := &r.slots[seq%reorderSlots]
	if s.ok {
		return 0, true // a duplicate of a held packet
	}
	s.ok, s.seq, s.at = true, seq, now.UnixNano()
	s.b = append(s.b[:0], b...)
	r.held++
	// give up on the gap when the oldest held packet has waited enough
	if oldest := r.oldest(); oldest != nil && now.UnixNano()-oldest.at >= int64(r.maxDelay) {
		lost = r.skipToHeld(out)
	}
	return lost, false
}

// drain passes on the held packets that are next in order.
func (r *reorderer) drain(out func([]byte)) {
	for r.held > 0 {
		s := &r.slots[r.next%reorderSlots]
		if !s.ok || s.seq != r.next {
			return
		}
		out(s.b)
		s.ok = false
		r.held--
		r.next++
	}
}

// oldest returns the held packet first in order (the one held longest
// behind the gap).
func (r *reorderer) oldest() *slot {
	if r.held == 0 {
		return nil
	}
	for i := uint16(1); i < reorderSlots; i++ {
		if s := &r.slots[(r.next+i)%reorderSlots]; s.ok && s.seq == r.next+i {
			return s
		}
	}
	return nil
}

// skipToHeld gives up the gap before the first held packet and passes on
// what follows in order. It returns the number of packets given up.
func (r *reorderer) skipToHeld(out func([]byte)) int {
	s := r.oldest()
	if s == nil {
		return 0
	}
	lost := int(s.seq - r.next)
	r.next = s.seq
	r.drain(out)
	return lost
}

// flush passes on every held packet in order, counting the gaps.
func (r *reorderer) flush(out func([]byte)) (lost int) {
	for r.held > 0 {
		if r.oldest() == nil {
			// cannot happen: held packets are always within the window
			for i := range r.slots {
				r.slots[i].ok = false
			}
			r.held = 0
			break
		}
		lost += r.skipToHeld(out)
	}
	return lost
}
