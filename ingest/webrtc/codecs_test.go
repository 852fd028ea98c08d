package webrtc

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/internal/testenv"
)

// TestWHIPCodecs publishes VP8, VP9 and AV1 (encoded by ffmpeg into IVF
// files) over WHIP: each is depacketized, takes its size (and AV1 its
// av1C) from keyframes, and its MKV fragments pass ffmpeg's strict decode.
func TestWHIPCodecs(t *testing.T) {
	ffmpeg := testenv.RequireFFmpeg(t)
	cases := []struct {
		codec   fragment.Codec
		encoder []string
	}{
		{fragment.CodecVP8, []string{"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"}},
		{fragment.CodecVP9, []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"}},
		{fragment.CodecAV1, []string{"-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8"}},
	}
	tt, _, url, stop := startWHIP(nil)
	defer stop()
	for _, c := range cases {
		t.Run(string(c.codec), func(t *testing.T) {
			clip := filepath.Join(t.TempDir(), "clip.ivf")
			args := append([]string{"-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "3",
				"-g", "30", "-b:v", "1M", "-pix_fmt", "yuv420p"}, c.encoder...)
			if b, err := exec.Command(ffmpeg, append(args, "-f", "ivf", clip)...).CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg: %v: %s", err, b)
			}
			pub := newTestPeer(t, clip)
			stream := string(c.codec)
			publishTo(t, url, stream, pub)
			sink, ctr := tt.sink(stream)
			waitFor(t, "3 fragments", 15*time.Second, func() bool { f, _ := sink.fragments(); return len(f) >= 3 })
			pub.Close()
			frags, meta := sink.fragments()
			sink.mu.Lock()
			tr := sink.tracks
			sink.mu.Unlock()
			if len(tr) != 1 || tr[0].Codec != c.codec || tr[0].Width != 640 || tr[0].Height != 360 ||
				(c.codec == fragment.CodecAV1 && len(tr[0].Config) < 5) {
				t.Errorf("tracks %+v", tr)
			}
			t.Logf("%s: %d fragments, %d packets, %d samples, %d decode errors", c.codec, len(frags), ctr.Packets.Load(), ctr.Samples.Load(), ctr.DecodeErrors.Load())
			checkFragments(t, frags, meta)
			// VP9 and AV1 also go in fMP4 (vp09, av01): ffmpeg decodes them,
			// and the init segment reads back as the same track
			sink.mu.Lock()
			inits, fm := sink.inits, sink.fmp4
			sink.mu.Unlock()
			fm, inits = fm[:min(len(fm), len(frags))], inits[:min(len(inits), len(frags))]
			if c.codec == fragment.CodecVP8 {
				if len(fm) != 0 {
					t.Errorf("VP8 in fMP4")
				}
				return
			}
			if len(fm) != len(frags) {
				t.Fatalf("%d fMP4 fragments of %d", len(fm), len(frags))
			}
			back, err := fragment.ParseInit(inits[0])
			if err != nil || len(back) != 1 || back[0].Codec != c.codec || back[0].Width != 640 || back[0].Height != 360 ||
				!bytes.Equal(back[0].Config, tr[0].Config) {
				t.Errorf("init reads back as %+v (%v), want %+v", back, err, tr[0])
			}
			for i := range fm {
				if err := testenv.CheckMedia(context.Background(), inits[i], fm[i]); err != nil {
					t.Errorf("fMP4 fragment %d: %v", i, err)
				}
			}
		})
	}
}

// TestWHIPH265 publishes the H.265 clip over WHIP (H.265 is negotiated
// where both ends offer it): fMP4-capable track with VPS/SPS/PPS from the
// stream, fragments valid.
func TestWHIPH265(t *testing.T) {
	tt, _, url, stop := startWHIP(nil)
	defer stop()
	pub := newTestPeer(t, "../../testdata/h265.ts")
	publishTo(t, url, "h265", pub)
	sink, ctr := tt.sink("h265")
	waitFor(t, "3 fragments", 15*time.Second, func() bool { f, _ := sink.fragments(); return len(f) >= 3 })
	pub.Close()
	frags, meta := sink.fragments()
	sink.mu.Lock()
	tr := sink.tracks
	sink.mu.Unlock()
	if len(tr) != 1 || tr[0].Codec != fragment.CodecH265 || tr[0].VPS == nil || tr[0].Width != 640 {
		t.Errorf("tracks %+v", tr)
	}
	t.Logf("H265: %d fragments, %d packets, %d samples", len(frags), ctr.Packets.Load(), ctr.Samples.Load())
	checkFragments(t, frags, meta)
}
