package playback

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LiveRing holds the live edge of one stream for low-latency HLS: the parts
// of the segment in progress and of the last few segments, those segments
// whole, and the init segment. An agent's pipeline fills it as its cutter
// hands out parts; the playback server serves it with blocking playlist
// reloads. It only holds data while someone watches (Active).
type LiveRing struct {
	// PartTarget is the longest part. Default 500 ms.
	PartTarget time.Duration
	// Keep is how many segments are kept. Default 4.
	Keep int

	mu       sync.Mutex
	cond     *sync.Cond
	lastUse  time.Time
	initHash string
	init     []byte
	segs     []*liveSeg // oldest first; the last may be open
	disc     bool       // the next segment follows a discontinuity
	gen      uint64
}

type liveSeg struct {
	msn      uint64
	start    time.Time // producer time
	initHash string
	parts    []livePart
	closed   bool
	dur      time.Duration
	full     []byte
	disc     bool
}

type livePart struct {
	data        []byte
	dur         time.Duration
	independent bool
}

// activeFor is how long a ring keeps collecting after its last viewer.
const activeFor = 30 * time.Second

func (r *LiveRing) lock() {
	r.mu.Lock()
	if r.cond == nil {
		r.cond = sync.NewCond(&r.mu)
	}
}

// touch marks the ring as watched.
func (r *LiveRing) touch() {
	r.lock()
	r.lastUse = time.Now()
	r.mu.Unlock()
}

// Active reports whether someone watched in the last 30 s: parts are only
// worth encoding then.
func (r *LiveRing) Active() bool {
	r.lock()
	defer r.mu.Unlock()
	return time.Since(r.lastUse) < activeFor
}

// SetInit sets the init segment of the parts that follow.
func (r *LiveRing) SetInit(hash string, b []byte) {
	r.lock()
	r.initHash, r.init = hash, b
	r.mu.Unlock()
}

// Discontinuity marks the next segment as following a gap (a reconnect).
func (r *LiveRing) Discontinuity() {
	r.lock()
	r.disc = true
	r.mu.Unlock()
}

// AddPart adds part idx of segment msn, which starts at producer time
// start. A part 0 opens the segment; a later part of a segment the ring
// did not see open is ignored.
func (r *LiveRing) AddPart(msn uint64, idx int, start time.Time, data []byte, dur time.Duration, independent bool) {
	r.lock()
	defer r.mu.Unlock()
	var seg *liveSeg
	if n := len(r.segs); n > 0 && r.segs[n-1].msn == msn && !r.segs[n-1].closed {
		seg = r.segs[n-1]
	}
	if seg == nil {
		if idx != 0 {
			return
		}
		if n := len(r.segs); n > 0 && !r.segs[n-1].closed {
			r.segs = r.segs[:n-1] // an open segment that never closed (dropped)
		}
		seg = &liveSeg{msn: msn, start: start, initHash: r.initHash, disc: r.disc}
		r.disc = false
		if n := len(r.segs); n > 0 && r.segs[n-1].msn+1 != msn {
			seg.disc = true
		}
		r.segs = append(r.segs, seg)
		keep := r.Keep
		if keep <= 0 {
			keep = 4
		}
		if len(r.segs) > keep {
			r.segs = append(r.segs[:0], r.segs[len(r.segs)-keep:]...)
		}
	}
	if idx != len(seg.parts) {
		return // out of order: cannot happen with one cutter, but never corrupt the list
	}
	seg.parts = append(seg.parts, livePart{data: data, dur: dur, independent: independent})
	r.gen++
	r.cond.Broadcast()
}

// CloseSegment closes segment msn with its whole bytes and duration.
func (r *LiveRing) CloseSegment(msn uint64, dur time.Duration, full []byte) {
	r.lock()
	defer r.mu.Unlock()
	if n := len(r.segs); n > 0 && r.segs[n-1].msn == msn && !r.segs[n-1].closed {
		seg := r.segs[n-1]
		seg.closed, seg.dur, seg.full = true, dur, full
		r.gen++
		r.cond.Broadcast()
	}
}

// Abort drops the open segment (its GOP was dropped).
func (r *LiveRing) Abort() {
	r.lock()
	defer r.mu.Unlock()
	if n := len(r.segs); n > 0 && !r.segs[n-1].closed {
		r.segs = r.segs[:n-1]
		r.disc = true
		r.gen++
		r.cond.Broadcast()
	}
}

// has reports whether part p of segment msn (p < 0: the whole segment)
// exists. Call with mu held.
func (r *LiveRing) has(msn uint64, p int) bool {
	for _, s := range r.segs {
		if s.msn == msn {
			if p < 0 {
				return s.closed
			}
			return p < len(s.parts) || s.closed
		}
		if s.msn > msn {
			return true // long gone, or skipped: answer at once
		}
	}
	return false
}

// wait blocks until part p of segment msn exists, ctx ends or d passes.
func (r *LiveRing) wait(ctx context.Context, msn uint64, p int, d time.Duration) bool {
	return r.waitUntil(ctx, d, func() bool { return r.has(msn, p) })
}

// waitUntil blocks until ready (called with mu held) reports true, ctx
// ends or d passes, and reports whether ready did.
func (r *LiveRing) waitUntil(ctx context.Context, d time.Duration, ready func() bool) bool {
	r.lock()
	defer r.mu.Unlock()
	deadline := time.Now().Add(d)
	wake := func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	}
	defer context.AfterFunc(ctx, wake)()
	defer time.AfterFunc(d, wake).Stop()
	for !ready() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		r.cond.Wait()
	}
	return true
}

// playlist writes the low-latency media playlist. Call with mu held.
func (r *LiveRing) playlist(session string) string {
	pt := r.PartTarget
	if pt <= 0 {
		pt = 500 * time.Millisecond
	}
	target := 2.0
	for _, s := range r.segs {
		target = math.Max(target, math.Ceil(s.dur.Seconds()))
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(target))
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%.3f\n", pt.Seconds())
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f\n", 3*pt.Seconds())
	if len(r.segs) == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", r.segs[0].msn)
	lastInit := ""
	for i, s := range r.segs {
		if i > 0 && (s.disc || s.initHash != lastInit) {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.initHash != lastInit {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", withSession("ll/init/"+s.initHash+".mp4", session))
			lastInit = s.initHash
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.start.UTC().Format("2006-01-02T15:04:05.000Z"))
		if i >= len(r.segs)-3 {
			for j, p := range s.parts {
				fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%.3f,URI=%q", p.dur.Seconds(), withSession(fmt.Sprintf("ll/part/%d.%d.m4s", s.msn, j), session))
				if p.independent {
					b.WriteString(",INDEPENDENT=YES")
				}
				b.WriteByte('\n')
			}
		}
		if s.closed {
			fmt.Fprintf(&b, "#EXTINF:%.3f,\n", s.dur.Seconds())
			b.WriteString(withSession(fmt.Sprintf("ll/seg/%d.m4s", s.msn), session))
			b.WriteByte('\n')
		}
	}
	last := r.segs[len(r.segs)-1]
	next := fmt.Sprintf("ll/part/%d.%d.m4s", last.msn, len(last.parts))
	if last.closed {
		next = fmt.Sprintf("ll/part/%d.0.m4s", last.msn+1)
	}
	fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=%q\n", withSession(next, session))
	return b.String()
}

// ---- handlers ----

// llRing returns the stream's live ring, or nil outside an agent.
func (s *Server) llRing(stream string) *LiveRing {
	if s.Live == nil {
		return nil
	}
	return s.Live.Ring(stream)
}

// hlsLL serves the low-latency playlist, blocking until the part asked for
// with _HLS_msn and _HLS_part exists.
func (s *Server) hlsLL(w http.ResponseWriter, r *http.Request, req request) {
	ring := s.llRing(req.stream)
	if ring == nil {
		s.fail(w, fmt.Errorf("%w: %q is not a live stream of this agent", errNoStream, req.stream))
		return
	}
	ring.touch()
	q := r.URL.Query()
	if v := q.Get("_HLS_msn"); v != "" {
		msn, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(w, badParam("_HLS_msn", "%q is not a number", v))
			return
		}
		part := -1
		if pv := q.Get("_HLS_part"); pv != "" {
			if part, err = strconv.Atoi(pv); err != nil || part < 0 {
				s.fail(w, badParam("_HLS_part", "%q is not a number", pv))
				return
			}
		}
		ring.wait(r.Context(), msn, part, 3*time.Second)
	} else if ring.closedSegments() == 0 {
		// the ring starts collecting when the first viewer comes: wait for
		// a whole segment of parts to start from (at most a GOP past the
		// target duration)
		ring.waitClosed(r.Context(), 8*time.Second)
	}
	ring.lock()
	body := ring.playlist(req.session)
	ring.mu.Unlock()
	servePlaylist(w, body, true)
}

func (r *LiveRing) closedSegments() int {
	r.lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.segs {
		if s.closed {
			n++
		}
	}
	return n
}

// waitClosed blocks until the ring holds a closed segment.
func (r *LiveRing) waitClosed(ctx context.Context, d time.Duration) {
	r.waitUntil(ctx, d, func() bool {
		for _, s := range r.segs {
			if s.closed {
				return true
			}
		}
		return false
	})
}

// hlsLLPart serves a part, waiting for it when it is the next one to come
// (a preload hint).
func (s *Server) hlsLLPart(w http.ResponseWriter, r *http.Request, req request) {
	ring := s.llRing(req.stream)
	if ring == nil {
		s.fail(w, fmt.Errorf("%w: %q", errNoStream, req.stream))
		return
	}
	name := strings.TrimSuffix(r.PathValue("name"), ".m4s")
	ms, ps, ok := strings.Cut(name, ".")
	msn, err1 := strconv.ParseUint(ms, 10, 64)
	part, err2 := strconv.Atoi(ps)
	if !ok || err1 != nil || err2 != nil || part < 0 {
		s.fail(w, badParam("part", "%q is not MSN.PART.m4s", r.PathValue("name")))
		return
	}
	ring.wait(r.Context(), msn, part, 3*time.Second)
	ring.lock()
	var data []byte
	for _, sg := range ring.segs {
		if sg.msn == msn && part < len(sg.parts) {
			data = sg.parts[part].data
		}
	}
	ring.mu.Unlock()
	if data == nil {
		WriteError(w, http.StatusNotFound, "not_found", "no such part (any more)")
		return
	}
	w.Header().Set("Content-Type", "video/iso.segment")
	w.Header().Set("Cache-Control", "max-age=60")
	_, _ = w.Write(data)
}

func (s *Server) hlsLLSegment(w http.ResponseWriter, r *http.Request, req request) {
	ring := s.llRing(req.stream)
	msn, err := strconv.ParseUint(strings.TrimSuffix(r.PathValue("name"), ".m4s"), 10, 64)
	if ring == nil || err != nil {
		s.fail(w, badParam("segment", "%q is not MSN.m4s", r.PathValue("name")))
		return
	}
	ring.lock()
	var data []byte
	for _, sg := range ring.segs {
		if sg.msn == msn && sg.closed {
			data = sg.full
		}
	}
	ring.mu.Unlock()
	if data == nil {
		WriteError(w, http.StatusNotFound, "not_found", "no such segment (any more)")
		return
	}
	w.Header().Set("Content-Type", "video/iso.segment")
	w.Header().Set("Cache-Control", "max-age=60")
	_, _ = w.Write(data)
}

func (s *Server) hlsLLInit(w http.ResponseWriter, r *http.Request, req request) {
	ring := s.llRing(req.stream)
	hash := strings.TrimSuffix(r.PathValue("hash"), ".mp4")
	if ring != nil {
		ring.lock()
		h, b := ring.initHash, ring.init
		ring.mu.Unlock()
		if h == hash && b != nil {
			w.Header().Set("Content-Type", "video/mp4")
			w.Header().Set("Cache-Control", "max-age=31536000, immutable")
			_, _ = w.Write(b)
			return
		}
	}
	s.hlsInit(w, r, req)
}
