package camsim

import (
	"path/filepath"
)

// PresetNames lists the standard cameras of Presets, in a stable order:
//
//	h264              H.264 (no B-frames), video only
//	h264_aac          H.264 + AAC-LC 48 kHz mono
//	h264_opus         H.264 + Opus 48 kHz mono
//	h264_bframes_aac  H.264 with B-frames (PTS != DTS) + AAC
//	h265              H.265, video only
//	h265_aac          H.265 + AAC
//	h264_pcmu         H.264 + G.711 µ-law 8 kHz mono (PCMU)
var PresetNames = []string{"h264", "h264_aac", "h264_opus", "h264_bframes_aac", "h265", "h265_aac", "h264_pcmu"}

// Presets returns the standard cameras, keyed and named by PresetNames, playing the
// clips of dir (the repository's testdata directory, made by testdata/gen-clips.sh).
// The files are not opened until Server.Start.
func Presets(dir string) map[string]Camera {
	out := make(map[string]Camera, len(PresetNames))
	for _, n := range PresetNames {
		c := Camera{Name: n, Clip: filepath.Join(dir, n+".ts")}
		if n == "h264_pcmu" {
			c.Clip = filepath.Join(dir, "h264.ts")
			c.G711 = filepath.Join(dir, "pcmu_8k.raw")
		}
		out[n] = c
	}
	return out
}

// PresetCameras returns the cameras of Presets in PresetNames order, ready for
// Server.Cameras.
func PresetCameras(dir string) []Camera {
	p := Presets(dir)
	out := make([]Camera, 0, len(PresetNames))
	for _, n := range PresetNames {
		out = append(out, p[n])
	}
	return out
}
