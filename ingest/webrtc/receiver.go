package webrtc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/tributary-io/tributary/ingest"
	"github.com/tributary-io/tributary/ingest/rtpmedia"
)

// Errors of a WebRTC session.
var (
	// ErrNoSupportedTracks: the peer offers no codec Tributary records.
	ErrNoSupportedTracks = errors.New("no supported track (H264, H265, VP8, VP9, AV1, Opus, G711)")
	// ErrNoMedia: the connection was made but no track arrived in time.
	ErrNoMedia = errors.New("no media track arrived")
	// ErrConnection: ICE or DTLS failed, or the peer went away.
	ErrConnection = errors.New("WebRTC connection failed")
	// ErrStalled: media stopped.
	ErrStalled = errors.New("no media from the WebRTC peer")
)

// Defaults of a receiver.
const (
	DefaultStallTimeout = 5 * time.Second
	DefaultTimeout      = 10 * time.Second
	// DefaultReorderDelay is how long a gap in sequence numbers is waited
	// for (reordering, a retransmission after a NACK) before it is given
	// up as lost.
	DefaultReorderDelay = 150 * time.Millisecond
	// DefaultKeyframeInterval: with no keyframe for this long, a PLI asks
	// for one. Browsers and OBS send keyframes rarely (minutes apart)
	// unless asked, and fragments are cut at keyframes: the agent sets it
	// to the stream's fragment target.
	DefaultKeyframeInterval = 2 * time.Second
	// pliInterval is the least time between two PLIs of a track.
	pliInterval = 300 * time.Millisecond
	// trackWait is how long the other tracks may come after the first.
	trackWait = 2 * time.Second
)

// receiver runs the incoming media of one peer connection into a sink.
// attach it to the connection before negotiating, then run it.
type receiver struct {
	counters     *ingest.Counters
	log          *slog.Logger
	stall        time.Duration
	timeout      time.Duration
	reorderDelay time.Duration
	maxSkew      time.Duration
	keyInterval  time.Duration

	pc     *webrtc.PeerConnection
	tracks chan remoteTrack
	failed chan error
	wg     sync.WaitGroup
	medias []*rtpmedia.Media
}

type remoteTrack struct {
	track *webrtc.TrackRemote
	recv  *webrtc.RTPReceiver
}

func (r *receiver) attach(pc *webrtc.PeerConnection) {
	if r.stall <= 0 {
		r.stall = DefaultStallTimeout
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.reorderDelay <= 0 {
		r.reorderDelay = DefaultReorderDelay
	}
	if r.keyInterval <= 0 {
		r.keyInterval = DefaultKeyframeInterval
	}
	if r.counters == nil {
		r.counters = &ingest.Counters{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.pc = pc
	r.tracks = make(chan remoteTrack, 8)
	r.failed = make(chan error, 1)
	pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		select {
		case r.tracks <- remoteTrack{t, recv}:
		default: // more than 8 tracks: not read, pion drops its packets
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		var err error
		switch s {
		case webrtc.PeerConnectionStateFailed:
			err = fmt.Errorf("%w (ICE or DTLS)", ErrConnection)
		case webrtc.PeerConnectionStateClosed:
			err = fmt.Errorf("%w: closed", ErrConnection)
		default:
			return
		}
		select {
		case r.failed <- err:
		default:
		}
	})
}

// run waits for the peer's tracks (want of them, from the SDP), feeds the
// sink until ctx ends, the connection fails or media stalls, and returns
// why (nil for ctx). The caller closes the connection, then calls close.
func (r *receiver) run(ctx context.Context, want int, sink ingest.Sink, started func()) error {
	var got []remoteTrack
	first := time.NewTimer(r.timeout)
	defer first.Stop()
	var rest <-chan time.Time
wait:
	for len(got) < max(want, 1) {
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.failed:
			return err
		case <-first.C:
			return fmt.Errorf("%w within %v", ErrNoMedia, r.timeout)
		case <-rest:
			break wait
		case t := <-r.tracks:
			got = append(got, t)
			if rest == nil {
				first.Stop()
				rest = time.After(trackWait)
			}
		}
	}
	// video first, then audio: the same track numbers whatever order the
	// tracks' first packets came in
	slices.SortStableFunc(got, func(a, b remoteTrack) int {
		return cmp.Compare(b.track.Kind(), a.track.Kind()) // video (2) before audio (1)
	})
	desc := &description.Session{}
	byMedia := map[*description.Media]remoteTrack{}
	var ignored []string
	for _, t := range got {
		c := t.track.Codec()
		f, err := codecFormat(t.track.Kind(), c)
		if err != nil {
			ignored = append(ignored, c.MimeType)
			continue
		}
		m := &description.Media{Type: description.MediaType(t.track.Kind().String()), Formats: []format.Format{f}}
		desc.Medias = append(desc.Medias, m)
		byMedia[m] = t
	}
	tracks, medias, more := rtpmedia.Build(desc, r.counters, rtpmedia.Options{})
	r.medias = medias
	ignored = append(ignored, more...)
	if len(medias) == 0 {
		// not permanent: a WHEP source may offer another codec next time
		return fmt.Errorf("%w; offered: %s", ErrNoSupportedTracks, strings.Join(ignored, ", "))
	}
	ss := &rtpmedia.Session{Counters: r.counters, Logger: r.log, MaxClockSkew: r.maxSkew, Stalled: ErrStalled}
	ss.Init(tracks, sink, started, ingest.Session{Tracks: tracks, Ignored: ignored, Transport: "webrtc", Started: time.Now()})
	names := make([]string, len(tracks))
	for i := range tracks {
		names[i] = tracks[i].String()
	}
	r.log.Info("WebRTC peer connected", "tracks", names, "ignored", ignored)
	for _, d := range medias {
		t := byMedia[d.Desc()]
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			r.read(ss, d, t.track)
		}()
		go func() {
			defer r.wg.Done()
			r.readRTCP(ss, d, t.recv)
		}()
	}
	// a track that comes after the session started is not recorded: say so
	late := make(chan struct{})
	defer close(late)
	go func() {
		for {
			select {
			case t := <-r.tracks:
				r.log.Warn("a track arrived after the session started and is not recorded", "kind", t.track.Kind().String(), "codec", t.track.Codec().MimeType)
				r.counters.DecodeErrors.Add(1)
			case <-late:
				return
			}
		}
	}()
	err := ss.Wait(ctx, r.failed, r.stall, func(err error) error { return err })
	if ss.Stop() {
		sink.EndSession(err)
	}
	return err
}

// close waits for the readers (after the connection closed) and frees the
// depacketizers.
func (r *receiver) close() {
	r.wg.Wait()
	for _, d := range r.medias {
		d.Release()
	}
	r.medias = nil
}

// read takes the RTP packets of one track, puts them in order and
// depacketizes them. It ends when the connection closes.
func (r *receiver) read(ss *rtpmedia.Session, d *rtpmedia.Media, t *webrtc.TrackRemote) {
	ctr := r.counters
	buf := make([]byte, 1600)
	ro := reorderer{maxDelay: r.reorderDelay}
	var hdr, pkt rtp.Packet
	var now time.Time
	var lastPLI, lastKey time.Time
	var keys uint64
	var expect uint16 // sequence number of the next packet to deliver
	started := false
	pt := d.Format().PayloadType()
	ssrc := uint32(t.SSRC())
	deliver := func(b []byte) {
		if rtpmedia.ParseRTP(&pkt, b) != nil {
			return
		}
		if started && pkt.SequenceNumber != expect {
			// packets given up as lost: what they belonged to is dropped
			// and video waits for a keyframe (a PLI follows)
			d.Lost(pkt.Timestamp)
		}
		started, expect = true, pkt.SequenceNumber+1
		ss.Packet(d, &pkt, now)
		if k := d.Keyframes(); k != keys || lastKey.IsZero() {
			keys, lastKey = k, now
		}
		want := d.WaitingForKeyframe() && now.Sub(lastPLI) >= pliInterval
		// a keyframe for the next fragment: asked when the target is
		// reached, so that it comes just after it (the cutter cuts at the
		// first keyframe at or after the target)
		if d.IsVideo() && now.Sub(lastKey) >= r.keyInterval && now.Sub(lastPLI) >= r.keyInterval/2 {
			want = true
		}
		if want {
			lastPLI = now
			if err := r.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err == nil {
				ctr.KeyframeRequests.Add(1)
			}
		}
	}
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		now = time.Now()
		ctr.Packets.Add(1)
		ctr.Bytes.Add(uint64(n))
		if rtpmedia.ParseRTP(&hdr, buf[:n]) != nil {
			ctr.DecodeErrors.Add(1)
			continue
		}
		if hdr.PayloadType != pt {
			continue // another negotiated format; the first one is recorded
		}
		lost, _ := ro.push(hdr.SequenceNumber, buf[:n], now, deliver)
		if lost > 0 {
			ctr.PacketsLost.Add(uint64(lost))
		}
	}
}

// readRTCP drains a track's RTCP (pion needs it read) and keeps the sender
// reports that map RTP time to the publisher's clock.
func (r *receiver) readRTCP(ss *rtpmedia.Session, d *rtpmedia.Media, recv *webrtc.RTPReceiver) {
	for {
		pkts, _, err := recv.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				ss.SenderReport(d, sr.NTPTime, sr.RTPTime)
			}
		}
	}
}

// codecFormat turns a negotiated WebRTC codec into a gortsplib format.
func codecFormat(kind webrtc.RTPCodecType, c webrtc.RTPCodecParameters) (format.Format, error) {
	name := c.MimeType
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	rtpmap := fmt.Sprintf("%d %s/%d", c.PayloadType, name, c.ClockRate)
	if c.Channels > 0 {
		rtpmap += "/" + strconv.Itoa(int(c.Channels))
	}
	md := &sdp.MediaDescription{
		MediaName:  sdp.MediaName{Media: kind.String(), Protos: []string{"UDP", "TLS", "RTP", "SAVPF"}, Formats: []string{strconv.Itoa(int(c.PayloadType))}},
		Attributes: []sdp.Attribute{{Key: "rtpmap", Value: rtpmap}},
	}
	if c.SDPFmtpLine != "" {
		md.Attributes = append(md.Attributes, sdp.Attribute{Key: "fmtp", Value: fmt.Sprintf("%d %s", c.PayloadType, c.SDPFmtpLine)})
	}
	return format.Unmarshal(md, strconv.Itoa(int(c.PayloadType)))
}

// supportedCodecs are the codecs (lower-case SDP encoding names) that
// Tributary records.
var supportedCodecs = map[string]bool{"h264": true, "h265": true, "vp8": true, "vp9": true, "av1": true, "opus": true, "pcmu": true, "pcma": true}

// sendingTracks reads an SDP (an offer from a publisher, or a WHEP
// server's answer) and returns how many of its audio and video sections
// send media that Tributary can record, and the codecs offered.
func sendingTracks(raw string) (n int, offered []string, err error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(raw); err != nil {
		return 0, nil, err
	}
	for _, m := range s.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		if _, bundled := m.Attribute("bundle-only"); m.MediaName.Port.Value == 0 && !bundled {
			continue // rejected (port 0 with bundle-only is a bundled section)
		}
		sends := true
		for _, a := range m.Attributes {
			if a.Key == "recvonly" || a.Key == "inactive" {
				sends = false
			}
		}
		if !sends {
			continue
		}
		ok := false
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			_, enc, _ := strings.Cut(a.Value, " ")
			enc, _, _ = strings.Cut(enc, "/")
			enc = strings.ToLower(enc)
			switch enc {
			case "rtx", "red", "ulpfec", "flexfec-03":
				continue
			}
			if !containsFold(offered, enc) {
				offered = append(offered, enc)
			}
			if supportedCodecs[enc] {
				ok = true
			}
		}
		if ok {
			n++
		}
	}
	return n, offered, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
