package inference

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"

	"github.com/tributary-io/tributary/fragment"
)

// Errors of payloads.
var (
	// ErrPayloadTooLarge is a payload over MaxPayload; no request is made.
	ErrPayloadTooLarge = fmt.Errorf("payload over SageMaker's %d MiB limit", MaxPayload>>20)
	// ErrNoKeyframe is a fragment without an H.264 or H.265 keyframe, for
	// the keyframe and jpeg payloads.
	ErrNoKeyframe = errors.New("no H.264 or H.265 keyframe in the fragment")
	// ErrNoFFmpeg is the jpeg payload without ffmpeg on the PATH.
	ErrNoFFmpeg = errors.New("the jpeg payload needs ffmpeg on the PATH")
)

// Input is one fragment as stored, with what payloads need.
type Input struct {
	// Meta is the fragment's metadata; Stream, Number, ProducerStart and
	// Container are required.
	Meta fragment.Metadata
	// Init is the fMP4 init segment of an fMP4 fragment.
	Init []byte
	// Data is the stored fragment.
	Data []byte
}

// Payload returns the request body for the hook's payload kind and its
// content type.
func Payload(ctx context.Context, kind string, in *Input) ([]byte, string, error) {
	switch kind {
	case PayloadFragment, "":
		if in.Meta.Container == fragment.ContainerMKV {
			return in.Data, "video/x-matroska", nil
		}
		b := make([]byte, 0, len(in.Init)+len(in.Data))
		return append(append(b, in.Init...), in.Data...), "video/mp4", nil
	case PayloadKeyframe:
		au, codec, err := Keyframe(in)
		if err != nil {
			return nil, "", err
		}
		if codec == fragment.CodecH265 {
			return au, "video/h265", nil
		}
		return au, "video/h264", nil
	case PayloadJPEG:
		au, codec, err := Keyframe(in)
		if err != nil {
			return nil, "", err
		}
		img, err := toJPEG(ctx, au, codec)
		return img, "image/jpeg", err
	}
	return nil, "", fmt.Errorf("unknown payload %q", kind)
}

// Keyframe returns the fragment's first keyframe of its first H.264 or
// H.265 track as an Annex-B access unit, parameter sets first.
func Keyframe(in *Input) ([]byte, fragment.Codec, error) {
	f, err := parseFragment(in)
	if err != nil {
		return nil, "", err
	}
	for i, t := range f.TrackConfigs {
		if t.Codec != fragment.CodecH264 && t.Codec != fragment.CodecH265 {
			continue
		}
		for _, s := range f.Samples[i] {
			if !s.Keyframe {
				continue
			}
			var out []byte
			for _, ps := range [][]byte{t.VPS, t.SPS, t.PPS} {
				if len(ps) > 0 {
					out = append(append(out, 0, 0, 0, 1), ps...)
				}
			}
			for p := s.Payload; len(p) > 0; {
				if len(p) < 4 || int(binary.BigEndian.Uint32(p)) > len(p)-4 {
					return nil, "", fmt.Errorf("keyframe of fragment %d: malformed sample", in.Meta.Number)
				}
				n := int(binary.BigEndian.Uint32(p))
				out = append(append(out, 0, 0, 0, 1), p[4:4+n]...)
				p = p[4+n:]
			}
			return out, t.Codec, nil
		}
	}
	return nil, "", ErrNoKeyframe
}

// parseFragment reads the samples of a stored fragment.
func parseFragment(in *Input) (*fragment.Fragment, error) {
	init, data := in.Init, in.Data
	if in.Meta.Container == fragment.ContainerMKV {
		var err error
		if init, data, _, err = fragment.MKVToFMP4(in.Data); err != nil {
			return nil, fmt.Errorf("fragment %d: %w", in.Meta.Number, err)
		}
	}
	tracks, err := fragment.ParseInit(init)
	if err != nil {
		return nil, fmt.Errorf("init segment of fragment %d: %w", in.Meta.Number, err)
	}
	f, err := fragment.ParseFMP4(data, tracks)
	if err != nil {
		return nil, fmt.Errorf("fragment %d: %w", in.Meta.Number, err)
	}
	return f, nil
}

// HaveFFmpeg reports whether the jpeg payload can work.
func HaveFFmpeg() bool {
	_, err := exec.LookPath("ffmpeg")
	return err == nil
}

// toJPEG decodes one Annex-B access unit with ffmpeg.
func toJPEG(ctx context.Context, au []byte, codec fragment.Codec) ([]byte, error) {
	if !HaveFFmpeg() {
		return nil, ErrNoFFmpeg
	}
	demux := "h264"
	if codec == fragment.CodecH265 {
		demux = "hevc"
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-f", demux, "-i", "pipe:0",
		"-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "-q:v", "4", "pipe:1")
	cmd.Stdin = bytes.NewReader(au)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || out.Len() == 0 {
		return nil, fmt.Errorf("ffmpeg could not decode the keyframe: %v %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}
