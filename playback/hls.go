package playback

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
)

// HLS modes.
const (
	ModeLive       = "live"
	ModeLiveReplay = "live_replay"
	ModeOnDemand   = "on_demand"
)

// liveWindow is how many fragments a live playlist holds.
const liveWindow = 6

// codecsOf returns the RFC 6381 CODECS string of the tracks browsers can
// play (G.711 is left out: no browser plays it).
func codecsOf(tracks []fragment.Track) string {
	var cs []string
	for _, t := range tracks {
		if c := codecString(t); c != "" {
			cs = append(cs, c)
		}
	}
	return strings.Join(cs, ",")
}

func codecString(t fragment.Track) string {
	switch t.Codec {
	case fragment.CodecH264:
		if len(t.SPS) >= 4 {
			return fmt.Sprintf("avc1.%02x%02x%02x", t.SPS[1], t.SPS[2], t.SPS[3])
		}
		return "avc1.640028"
	case fragment.CodecH265:
		var sps h265.SPS
		if err := sps.Unmarshal(t.SPS); err == nil {
			ptl := sps.ProfileTierLevel
			// compatibility flags, bit-reversed, in hex
			var compat uint32
			for i := 0; i < 32; i++ {
				if ptl.GeneralProfileCompatibilityFlag[i] {
					compat |= 1 << i
				}
			}
			tier := "L"
			if ptl.GeneralTierFlag != 0 {
				tier = "H"
			}
			return fmt.Sprintf("hvc1.%d.%X.%s%d.B0", ptl.GeneralProfileIdc, compat, tier, ptl.GeneralLevelIdc)
		}
		return "hvc1.1.6.L93.B0"
	case fragment.CodecAAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(t.Config); err == nil {
			return fmt.Sprintf("mp4a.40.%d", asc.Type)
		}
		return "mp4a.40.2"
	case fragment.CodecOpus:
		return "opus"
	}
	return ""
}

// hlsParams are the parameters of a playlist request.
type hlsParams struct {
	mode       string
	start, end time.Time
}

func parseHLS(q url.Values) (hlsParams, error) {
	p := hlsParams{mode: q.Get("mode")}
	switch p.mode {
	case "":
		p.mode = ModeLive
	case ModeLive, ModeLiveReplay, ModeOnDemand:
	default:
		return p, badParam("mode", "%q is not one of live, live_replay, on_demand", p.mode)
	}
	var err error
	if p.start, p.end, err = timeRange(q); err != nil {
		return p, err
	}
	switch p.mode {
	case ModeLiveReplay:
		if p.start.IsZero() {
			return p, badParam("start", "live_replay needs a start")
		}
	case ModeOnDemand:
		if p.start.IsZero() {
			return p, badParam("start", "on_demand needs a start")
		}
		if p.end.IsZero() {
			p.end = p.start.Add(time.Hour)
		}
		if p.end.Sub(p.start) > 7*24*time.Hour {
			return p, badParam("end", "an on_demand range is at most 7 days")
		}
	}
	return p, nil
}

func (p hlsParams) query() string {
	v := url.Values{"mode": {p.mode}}
	if !p.start.IsZero() {
		v.Set("start", p.start.Format(time.RFC3339Nano))
	}
	if !p.end.IsZero() {
		v.Set("end", p.end.Format(time.RFC3339Nano))
	}
	return v.Encode()
}

func (s *Server) hlsMaster(w http.ResponseWriter, r *http.Request, req request) {
	p, err := parseHLS(r.URL.Query())
	if err != nil {
		s.fail(w, err)
		return
	}
	si, err := s.info(r.Context(), req.stream)
	if err != nil {
		s.fail(w, err)
		return
	}
	var bw float64
	if last, err := s.latest(r.Context(), req.stream, 3); err == nil {
		var bytes, secs float64
		for _, m := range last {
			bytes += float64(m.Size)
			secs += m.Duration.Seconds()
		}
		if secs > 0 {
			bw = bytes * 8 / secs
		}
	}
	if bw <= 0 {
		bw = 2e6
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", int64(bw*1.2))
	if c := codecsOf(si.Tracks); c != "" {
		fmt.Fprintf(&b, ",CODECS=%q", c)
	}
	for _, t := range si.Tracks {
		if t.Kind == fragment.KindVideo && t.Width > 0 {
			fmt.Fprintf(&b, ",RESOLUTION=%dx%d", t.Width, t.Height)
			break
		}
	}
	b.WriteString("\n")
	if ring := s.llRing(req.stream); ring != nil && p.mode == ModeLive {
		// inside an agent, live is low-latency HLS from the live edge
		ring.touch()
		b.WriteString(withSession("ll.m3u8", req.session))
	} else {
		b.WriteString(withSession("media.m3u8?"+p.query(), req.session))
	}
	b.WriteString("\n")
	servePlaylist(w, b.String(), p.mode != ModeOnDemand)
}

func servePlaylist(w http.ResponseWriter, body string, live bool) {
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	if live {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", "max-age=60")
	}
	_, _ = io.WriteString(w, body)
}

func (s *Server) hlsMedia(w http.ResponseWriter, r *http.Request, req request) {
	p, err := parseHLS(r.URL.Query())
	if err != nil {
		s.fail(w, err)
		return
	}
	if _, err := s.info(r.Context(), req.stream); err != nil {
		s.fail(w, err)
		return
	}
	var frags []fragment.Metadata
	switch p.mode {
	case ModeLive:
		frags, err = s.latest(r.Context(), req.stream, liveWindow)
		frags = contiguousTail(frags)
	case ModeLiveReplay:
		frags, err = s.fragmentsIn(r.Context(), req.stream, p.start, time.Time{})
	case ModeOnDemand:
		frags, err = s.fragmentsIn(r.Context(), req.stream, p.start, p.end)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	body, err := s.mediaPlaylist(req, p, frags)
	if err != nil {
		s.fail(w, err)
		return
	}
	servePlaylist(w, body, p.mode != ModeOnDemand)
}

// contiguousTail keeps the tail of a live window whose fragment numbers
// follow one another, so that media sequence numbers stay positional.
func contiguousTail(frags []fragment.Metadata) []fragment.Metadata {
	i := len(frags) - 1
	for i > 0 && frags[i-1].Number+1 == frags[i].Number {
		i--
	}
	if i < 0 {
		return frags
	}
	return frags[i:]
}

// mediaPlaylist writes an fMP4 media playlist of frags.
func (s *Server) mediaPlaylist(req request, p hlsParams, frags []fragment.Metadata) (string, error) {
	prefix, err := s.Layout.FragmentsPrefix(req.stream)
	if err != nil {
		return "", err
	}
	target := 2.0
	for _, m := range frags {
		target = math.Max(target, math.Ceil(m.Duration.Seconds()))
	}
	var b strings.Builder
	b.Grow(len(frags)*(128+len(req.session)) + 256)
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(target))
	seq := uint64(0)
	if p.mode == ModeLive && len(frags) > 0 {
		seq = frags[0].Number
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
	if p.mode == ModeOnDemand {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	} else if p.mode == ModeLiveReplay {
		// an EVENT playlist: players would start at the live edge
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n")
	}
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	lastInit := ""
	var lastEnd time.Time
	line := make([]byte, 0, 128)
	for i, m := range frags {
		gap := i > 0 && (m.ProducerStart.Sub(lastEnd) > fragment.DiscontinuityThreshold || lastEnd.Sub(m.ProducerStart) > fragment.DiscontinuityThreshold)
		if i > 0 && (m.InitHash != lastInit || gap || m.Discontinuity) {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if m.InitHash != lastInit {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", withSession("init/"+m.InitHash+".mp4", req.session))
			lastInit = m.InitHash
		}
		line = append(line[:0], "#EXT-X-PROGRAM-DATE-TIME:"...)
		line = m.ProducerStart.UTC().AppendFormat(line, "2006-01-02T15:04:05.000Z")
		line = append(line, "\n#EXTINF:"...)
		line = strconv.AppendFloat(line, m.Duration.Seconds(), 'f', 3, 64)
		line = append(line, ",\nf/"...)
		line = append(line, strings.TrimPrefix(m.Key, prefix)...)
		if strings.HasSuffix(m.Key, ".mkv") {
			line = append(line, ".m4s"...) // served remuxed to fMP4; players go by the extension
		}
		if req.session != "" {
			line = append(line, '?')
			line = append(line, req.session...)
		}
		line = append(line, '\n')
		b.Write(line)
		lastEnd = m.ProducerEnd
	}
	if p.mode == ModeOnDemand {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String(), nil
}

func (s *Server) hlsInit(w http.ResponseWriter, r *http.Request, req request) {
	hash := strings.TrimSuffix(r.PathValue("hash"), ".mp4")
	if len(hash) == 0 || len(hash) > 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		s.fail(w, badParam("hash", "%q is not an init segment name", r.PathValue("hash")))
		return
	}
	b, _, err := s.initSegment(r.Context(), req.stream, hash)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Cache-Control", "max-age=31536000, immutable")
	http.ServeContent(w, r, "init.mp4", time.Time{}, bytes.NewReader(b))
}

// hlsSegment serves an archived fragment as an HLS segment: fMP4 as it is
// (byte ranges honoured), MKV remuxed to fMP4.
func (s *Server) hlsSegment(w http.ResponseWriter, r *http.Request, req request) {
	prefix, err := s.Layout.FragmentsPrefix(req.stream)
	if err != nil {
		s.fail(w, err)
		return
	}
	key := prefix + strings.TrimSuffix(r.PathValue("path"), ".mkv.m4s")
	if strings.HasSuffix(r.PathValue("path"), ".mkv.m4s") {
		key += ".mkv"
	}
	stream, _, _, container, err := archive.ParseFragmentKey(key)
	if err != nil || stream != req.stream {
		s.fail(w, badParam("path", "%q is not a fragment of %s", r.PathValue("path"), req.stream))
		return
	}
	w.Header().Set("Cache-Control", "max-age=31536000, immutable")
	w.Header().Set("Content-Type", "video/iso.segment")
	if container == fragment.ContainerMKV {
		s.remuxSegment(w, r, key)
		return
	}
	s.serveObject(w, r, key)
}

// serveObject streams an object, honouring a single byte range.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, key string) {
	var rng *archive.Range
	if h := r.Header.Get("Range"); h != "" {
		rr, err := parseRange(h)
		if err != nil {
			WriteError(w, http.StatusRequestedRangeNotSatisfiable, "bad_range", err.Error())
			return
		}
		if rr.Start < 0 { // the last -Start bytes
			st, err := s.Store.Stat(r.Context(), key)
			if err != nil {
				s.fail(w, err)
				return
			}
			rr.Start = max(st.Size+rr.Start, 0)
		}
		rng = rr
	}
	rc, info, err := s.Store.Get(r.Context(), key, rng)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Accept-Ranges", "bytes")
	if info.ETag != "" {
		w.Header().Set("ETag", info.ETag)
	}
	if rng != nil {
		off, n, err := rng.Resolve(info.Size)
		if err != nil {
			WriteError(w, http.StatusRequestedRangeNotSatisfiable, "bad_range", err.Error())
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(w, rc)
}

// parseRange reads "bytes=a-b", "bytes=a-" or "bytes=-n".
func parseRange(h string) (*archive.Range, error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil, fmt.Errorf("unsupported Range %q (one bytes range)", h)
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return nil, fmt.Errorf("bad Range %q", h)
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad Range %q", h)
		}
		return &archive.Range{Start: -n, End: -1}, nil
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return nil, fmt.Errorf("bad Range %q", h)
	}
	end := int64(-1)
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return nil, fmt.Errorf("bad Range %q", h)
		}
	}
	return &archive.Range{Start: start, End: end}, nil
}

// remuxSegment serves an MKV fragment as an fMP4 segment.
func (s *Server) remuxSegment(w http.ResponseWriter, r *http.Request, key string) {
	data, err := s.get(r.Context(), key, 1<<30)
	if err != nil {
		s.fail(w, err)
		return
	}
	_, frag, _, err := fragment.MKVToFMP4(data)
	if err != nil {
		s.fail(w, fmt.Errorf("%s: %w", key, err))
		return
	}
	http.ServeContent(w, r, "segment.m4s", time.Time{}, bytes.NewReader(frag))
}
