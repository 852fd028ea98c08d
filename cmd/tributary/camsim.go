package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary"
	"github.com/tributary-io/tributary/internal/camsim"
	"github.com/tributary-io/tributary/internal/webrtcpeer"
)

func camsimCmd() *cobra.Command {
	var (
		addr    string
		clips   string
		presets []string
		count   int
		user    string
		pass    string
		tcpOnly bool
		clip    string
		stagger bool
		whip    string
		token   string
		onvif   bool
	)
	cmd := &cobra.Command{
		Use:   "camsim",
		Short: "Serve synthetic RTSP cameras that loop test clips in real time",
		Long: `Serve synthetic RTSP cameras. Each camera loops a clip in real time with
continuous timestamps and in-band parameter sets. Presets: ` + strings.Join(camsim.PresetNames, ", ") + `.
With --count N, cameras cam1..camN cycle through the chosen presets; with
--clip FILE (an MPEG-TS of H.264 or H.265 and optionally AAC or Opus) they all
play that clip instead. The cameras' URLs are printed one per line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cams []camsim.Camera
			if clip != "" {
				if cmd.Flags().Changed("preset") || clips != "" {
					return fmt.Errorf("--clip: not with --preset or --clips")
				}
				if _, err := os.Stat(clip); err != nil {
					return fmt.Errorf("--clip: %w", err)
				}
				for i := range max(count, 1) {
					cam := camsim.Camera{Name: fmt.Sprintf("cam%d", i+1), Clip: clip}
					if stagger {
						// each its own scene: cameras of one clip in step would
						// fill their fragments together, unlike real ones
						cam.StartAt = time.Duration(i) * staggerStep
					}
					cams = append(cams, cam)
				}
			} else {
				dir, err := clipsDir(clips)
				if err != nil {
					return err
				}
				if cams, err = camsimCameras(dir, presets, count); err != nil {
					return err
				}
			}
			for i := range cams {
				cams[i].User, cams[i].Pass = user, pass
				cams[i].ONVIF = onvif
			}
			if whip != "" {
				return publishWHIP(cmd, cams, whip, token, stagger)
			}
			srv := &camsim.Server{Addr: addr, Cameras: cams, TCPOnly: tcpOnly, Stagger: stagger, Logger: newLogger("info", "text")}
			if err := srv.Start(); err != nil {
				return err
			}
			defer srv.Close()
			for _, c := range cams {
				fmt.Fprintln(cmd.OutOrStdout(), srv.URL(c.Name))
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", camsim.DefaultAddr, "RTSP listen address")
	f.StringVar(&clips, "clips", "", "directory of clips (default: the embedded clips)")
	f.StringSliceVar(&presets, "preset", []string{"h264_aac"}, "camera presets to serve")
	f.IntVar(&count, "count", 0, "serve N cameras cam1..camN cycling through the presets (default: one per preset, named after it)")
	f.StringVar(&user, "user", "", "require this user name")
	f.StringVar(&pass, "pass", "", "require this password")
	f.BoolVar(&tcpOnly, "tcp-only", false, "disable the UDP transport")
	f.StringVar(&clip, "clip", "", "serve --count cameras (default 1) of this MPEG-TS clip instead of the presets")
	f.BoolVar(&stagger, "stagger", false, "spread the cameras' starts over two seconds, so their keyframes and fragments do not coincide; with --clip, also start each at another point of the clip")
	f.StringVar(&whip, "whip", "", `publish each camera over WebRTC to this WHIP URL instead of serving RTSP; "{name}" in it is the camera's name (http://agent:8080/v1/streams/{name}/whip)`)
	f.StringVar(&token, "token", "", "bearer token of --whip")
	f.BoolVar(&onvif, "onvif", false, "add an ONVIF metadata track (vnd.onvif.metadata: an analytics frame every second, motion events) to every camera")
	return cmd
}

// staggerStep is how much further into the clip each camera of --clip
// --stagger starts than the one before, modulo the clip's length: not a
// whole number of seconds, so that the cameras spread over the clip's
// keyframes whatever its length.
const staggerStep = 997 * time.Millisecond

// publishWHIP publishes every camera's clip to its WHIP URL until the
// command ends. A clip's AAC track is left out (WebRTC has no AAC).
func publishWHIP(cmd *cobra.Command, cams []camsim.Camera, url, token string, stagger bool) error {
	ctx := cmd.Context()
	var peers []*webrtcpeer.Peer
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	for i, c := range cams {
		if stagger && i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second / time.Duration(len(cams))):
			}
		}
		p, err := webrtcpeer.New(c.Clip, webrtcpeer.Options{Loopback: true, SkipUnsupported: true})
		if err != nil {
			return err
		}
		peers = append(peers, p)
		u := strings.ReplaceAll(url, "{name}", c.Name)
		if _, err := p.Publish(ctx, u, token); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), u)
	}
	<-ctx.Done()
	return nil
}

// clipsDir returns dir, or extracts the embedded clips to a cache folder.
func clipsDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return tributary.ExtractClips(filepath.Join(base, "tributary", "clips"))
}

func camsimCameras(dir string, presets []string, count int) ([]camsim.Camera, error) {
	all := camsim.Presets(dir)
	if len(presets) == 0 {
		return nil, fmt.Errorf("--preset: at least one")
	}
	for _, p := range presets {
		if _, ok := all[p]; !ok {
			return nil, fmt.Errorf("--preset: unknown preset %q (known: %s)", p, strings.Join(camsim.PresetNames, ", "))
		}
	}
	var cams []camsim.Camera
	if count <= 0 {
		for _, p := range presets {
			cams = append(cams, all[p])
		}
		return cams, nil
	}
	for i := 0; i < count; i++ {
		c := all[presets[i%len(presets)]]
		c.Name = fmt.Sprintf("cam%d", i+1)
		cams = append(cams, c)
	}
	return cams, nil
}
