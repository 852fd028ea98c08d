package rtpmedia

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// packetize encodes access units with gortsplib's encoders, as a camera
// would: small NAL units aggregated, large ones fragmented.
func packetize(t testing.TB, h265 bool, aus [][][]byte, mtu int) []*rtp.Packet {
	var out []*rtp.Packet
	var seq uint16
	for i, au := range aus {
		var pkts []*rtp.Packet
		var err error
		if h265 {
			enc, e := (&format.H265{PayloadTyp: 96}).CreateEncoder()
			if e != nil {
				t.Fatal(e)
			}
			enc.PayloadMaxSize = mtu
			if err = enc.Init(); err == nil {
				pkts, err = enc.Encode(au)
			}
		} else {
			enc, e := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateEncoder()
			if e != nil {
				t.Fatal(e)
			}
			enc.PayloadMaxSize = mtu
			if err = enc.Init(); err == nil {
				pkts, err = enc.Encode(au)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * 3000)
			p.SequenceNumber = seq
			seq++
		}
		out = append(out, pkts...)
	}
	return out
}

func nal(typ byte, h265 bool, size int, seed byte) []byte {
	b := make([]byte, size)
	if h265 {
		b[0], b[1] = typ<<1, 1
	} else {
		b[0] = 0x60 | typ
	}
	for i := 2; i < size; i++ {
		b[i] = byte(i)*7 + seed + 1 // never 00 00 01
	}
	return b
}

// reassemble feeds packets to an assembler, scribbling over each packet
// after the call (the assembler must have copied what it keeps).
func reassemble(a *nalAssembler, pkts []*rtp.Packet) (got [][][]byte, errs []error) {
	for _, p := range pkts {
		payload := bytes.Clone(p.Payload)
		aus, err := a.push(p.SequenceNumber, p.Timestamp, p.Marker, payload)
		for _, au := range aus {
			var c [][]byte
			for _, n := range au.nalus {
				c = append(c, bytes.Clone(n))
			}
			got = append(got, c)
		}
		if err != nil {
			errs = append(errs, err)
		}
		for i := range payload {
			payload[i] = 0xee
		}
	}
	return got, errs
}

func TestNALAssemblerRoundTrip(t *testing.T) {
	for _, h265 := range []bool{false, true} {
		idr, slice, sps, pps := byte(5), byte(1), byte(7), byte(8)
		if h265 {
			idr, slice, sps, pps = 19, 1, 33, 34
		}
		cases := []struct {
			name string
			aus  [][][]byte
		}{
			{"single", [][][]byte{{nal(slice, h265, 100, 1)}}},
			{"aggregated", [][][]byte{{nal(sps, h265, 20, 1), nal(pps, h265, 6, 2), nal(idr, h265, 300, 3)}}},
			{"fragmented", [][][]byte{{nal(sps, h265, 20, 1), nal(pps, h265, 6, 2), nal(idr, h265, 50000, 3)}, {nal(slice, h265, 3000, 4)}}},
			{"slices", [][][]byte{{nal(idr, h265, 5000, 1), nal(idr, h265, 5000, 2), nal(idr, h265, 700, 3)}}},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("h265=%v/%s", h265, c.name), func(t *testing.T) {
				got, errs := reassemble(newNALAssembler(h265), packetize(t, h265, c.aus, 1200))
				if len(errs) != 0 {
					t.Fatal(errs)
				}
				if fmt.Sprint(got) != fmt.Sprint(c.aus) {
					t.Fatalf("got %d units, want %d", len(got), len(c.aus))
				}
			})
		}
	}
}

func TestNALAssemblerLossAndMarkers(t *testing.T) {
	aus := [][][]byte{{nal(5, false, 5000, 1)}, {nal(1, false, 5000, 2)}, {nal(1, false, 200, 3)}}
	pkts := packetize(t, false, aus, 1200)

	// a middle fragment of the first unit lost: that unit is dropped,
	// counted once, and the next ones come out whole
	lossy := append(append([]*rtp.Packet{}, pkts[:2]...), pkts[3:]...)
	got, errs := reassemble(newNALAssembler(false), lossy)
	if len(got) != 2 || !bytes.Equal(got[0][0], aus[1][0]) || len(errs) == 0 || !errors.Is(errs[0], errIncomplete) {
		t.Fatalf("after loss: %d units, errs %v", len(got), errs)
	}

	// joined mid-unit: the first fragments are skipped quietly
	got, errs = reassemble(newNALAssembler(false), pkts[2:])
	for _, err := range errs {
		if !errors.Is(err, errNoStart) {
			t.Fatalf("joined mid-unit: %v", err)
		}
	}
	if len(got) != 2 || len(errs) != 3 {
		t.Fatalf("joined mid-unit: %d units, errs %v", len(got), errs)
	}

	// a camera that never sets the marker: units end on timestamp changes
	var nomark []*rtp.Packet
	for _, p := range pkts {
		c := *p
		c.Marker = false
		nomark = append(nomark, &c)
	}
	got, errs = reassemble(newNALAssembler(false), nomark)
	if len(got) != 2 || len(errs) != 0 || !bytes.Equal(got[1][0], aus[1][0]) {
		t.Fatalf("no markers: %d units, errs %v", len(got), errs)
	}
}

func TestNALAssemblerAnnexB(t *testing.T) {
	sps, pps, idr := nal(7, false, 20, 1), nal(8, false, 6, 2), nal(5, false, 300, 3)
	var b []byte
	b = append(b, sps...)
	b = append(b, 0, 0, 0, 1)
	b = append(b, pps...)
	b = append(b, 0, 0, 1)
	b = append(b, idr...)
	got, errs := reassemble(newNALAssembler(false), []*rtp.Packet{{Header: rtp.Header{Marker: true}, Payload: b}})
	if len(errs) != 0 || len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint([][]byte{sps, pps, idr}) {
		t.Fatalf("got %v, errs %v", got, errs)
	}
}

// TestNALAssemblerAnnexBLater: a camera that packs two slices of a
// non-keyframe into one NAL unit with a start code between them, now and
// then, has them split for as long as it streams once it was seen doing
// it in its first scanUnits access units; past those, a camera never seen
// doing it has its non-key slices taken whole (not searched), its
// keyframes and parameter sets still searched.
func TestNALAssemblerAnnexBLater(t *testing.T) {
	s1, s2 := nal(1, false, 200, 4), nal(1, false, 150, 5)
	packed := append(append(append([]byte(nil), s1...), 0, 0, 1), s2...)
	sps, idr := nal(7, false, 20, 1), nal(5, false, 300, 3)
	packedKey := append(append(append([]byte(nil), sps...), 0, 0, 1), idr...)
	run := func(a *nalAssembler, from, n int, payload func(i int) []byte) [][][]byte {
		var pkts []*rtp.Packet
		for i := from; i < from+n; i++ {
			pkts = append(pkts, &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: uint32(i * 3000), Marker: true}, Payload: payload(i)})
		}
		got, errs := reassemble(a, pkts)
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		return got
	}
	// seen early: split ever after
	a := newNALAssembler(false)
	got := run(a, 0, 2*scanUnits, func(i int) []byte {
		if i == 5 || i >= scanUnits {
			return packed
		}
		return s1
	})
	for i, au := range got {
		if (i == 5 || i >= scanUnits) && len(au) != 2 {
			t.Fatalf("access unit %d: %d NAL units, want the 2 it packs", i, len(au))
		}
	}
	// never seen: past scanUnits, non-key slices are taken whole; packed
	// keyframes are still split
	a = newNALAssembler(false)
	run(a, 0, scanUnits, func(int) []byte { return s1 })
	got = run(a, scanUnits, 2, func(i int) []byte {
		if i == scanUnits {
			return packed
		}
		return packedKey
	})
	if len(got) != 2 || len(got[0]) != 1 || fmt.Sprint(got[1]) != fmt.Sprint([][]byte{sps, idr}) {
		t.Fatalf("past the first access units: %d units, %d and %d NAL units", len(got), len(got[0]), len(got[1]))
	}
}

func TestNALAssemblerMalformed(t *testing.T) {
	cases := []struct {
		name    string
		h265    bool
		payload []byte
	}{
		{"empty", false, nil},
		{"STAP-A size past the end", false, []byte{24, 0, 9, 0x67}},
		{"STAP-A zero size", false, []byte{24, 0, 0}},
		{"FU-A start and end", false, []byte{28, 0xc5, 1}},
		{"FU-A too short", false, []byte{28}},
		{"STAP-B", false, []byte{25, 1, 2}},
		{"H.265 one byte", true, []byte{2}},
		{"H.265 PACI", true, []byte{50 << 1, 1, 0, 0}},
		{"H.265 AP truncated", true, []byte{48 << 1, 1, 0}},
	}
	for _, c := range cases {
		a := newNALAssembler(c.h265)
		if aus, err := a.push(0, 0, true, c.payload); err == nil || len(aus) != 0 {
			t.Errorf("%s: %d units, err %v", c.name, len(aus), err)
		}
		// and the assembler goes on
		good := nal(1, c.h265, 10, 1)
		if aus, err := a.push(1, 3000, true, good); err != nil || len(aus) != 1 || !bytes.Equal(aus[0].nalus[0], good) {
			t.Errorf("%s: then %d units, err %v", c.name, len(aus), err)
		}
	}
}

func TestAACAssembler(t *testing.T) {
	conf := &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}
	f := &format.MPEG4Audio{PayloadTyp: 97, Config: conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	enc, err := f.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{1, 2, 3}, 1000) // over the MTU: fragmented
	in := [][][]byte{{{1, 2, 3}, {4, 5, 6, 7}}, {big}, {{9}}}
	a := &aacAssembler{sizeLen: 13, indexLen: 3, deltaLen: 3}
	var got [][]byte
	var seq uint16
	for _, aus := range in {
		pkts, err := enc.Encode(aus)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			out, err := a.push(seq, p.Marker, p.Payload)
			seq++
			if err != nil {
				t.Fatal(err)
			}
			for _, au := range out {
				got = append(got, bytes.Clone(au))
			}
		}
	}
	want := [][]byte{{1, 2, 3}, {4, 5, 6, 7}, big, {9}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %d AUs, want %d", len(got), len(want))
	}

	// ADTS-wrapped AUs are unwrapped
	adts := &aacAssembler{sizeLen: 13, indexLen: 3, deltaLen: 3}
	raw := []byte{0x21, 0x10, 0x05}
	hdr := []byte{0xff, 0xf1, 0x4c, 0x80, 0, 0, 0xfc}
	fl := len(hdr) + len(raw)
	hdr[3] |= byte(fl >> 11)
	hdr[4] = byte(fl >> 3)
	hdr[5] = byte(fl<<5) | 0x1f
	pkt := []byte{0, 16, byte(fl >> 5), byte(fl << 3)}
	pkt = append(append(pkt, hdr...), raw...)
	out, err := adts.push(0, true, pkt)
	if err != nil || len(out) != 1 || !bytes.Equal(out[0], raw) {
		t.Fatalf("ADTS: %x, %v", out, err)
	}

	for _, bad := range [][]byte{{0}, {0, 0}, {0, 16, 0}, {0, 16, 0, 0}, {0, 16, 0xff, 0xf8, 1}} {
		if _, err := (&aacAssembler{sizeLen: 13, indexLen: 3, deltaLen: 3}).push(0, true, bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

// FuzzNALAssembler checks the assembler against gortsplib's packetizer:
// whatever access units go in come out, for any payload sizes and MTU,
// and arbitrary packets never panic it.
func FuzzNALAssembler(f *testing.F) {
	f.Add(false, []byte{5, 200, 1, 7}, uint16(1200), []byte{0x7c, 0x85, 1})
	f.Add(true, []byte{19, 255, 255, 1}, uint16(500), []byte{0x62, 0x01, 0x93, 1, 2})
	f.Add(false, []byte{7, 20, 8, 6, 5, 255}, uint16(100), []byte{0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 1})
	f.Fuzz(func(t *testing.T, h265 bool, spec []byte, mtu uint16, garbage []byte) {
		if mtu < 50 {
			return
		}
		var aus [][][]byte
		for i := 0; i+1 < len(spec) && len(aus) < 8; i += 2 {
			typ := spec[i] % 24
			if h265 {
				typ = spec[i] % 40
			}
			if typ == 0 || (h265 && typ >= 32 && typ <= 34 && spec[i+1] < 3) {
				typ = 1
			}
			aus = append(aus, [][]byte{nal(typ, h265, 3+int(spec[i+1])*40, spec[i])})
		}
		if len(aus) == 0 {
			return
		}
		got, errs := reassemble(newNALAssembler(h265), packetize(t, h265, aus, int(mtu)))
		if len(errs) != 0 || fmt.Sprint(got) != fmt.Sprint(aus) {
			t.Fatalf("round trip: %d units of %d, errs %v", len(got), len(aus), errs)
		}
		a := newNALAssembler(h265)
		for i := 0; i < 3; i++ {
			aus, _ := a.push(uint16(i), uint32(i/2), i == 2, garbage)
			for _, au := range aus {
				for _, n := range au.nalus {
					if len(n) == 0 {
						t.Fatal("empty NAL unit")
					}
				}
			}
		}
	})
}

// FuzzHasStartCode: hasStartCode agrees with bytes.Contains.
func FuzzHasStartCode(f *testing.F) {
	for _, s := range [][]byte{nil, {0, 0, 1}, {1, 0, 0, 1}, {0, 1, 0, 0}, {0, 0, 0, 1, 5}, {1, 1, 1}, {0, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := hasStartCode(b), bytes.Contains(b, startCode); got != want {
			t.Fatalf("hasStartCode(% x) = %v", b, got)
		}
	})
}
