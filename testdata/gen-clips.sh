#!/usr/bin/env bash
# gen-clips.sh: regenerate the synthetic media clips in testdata/ with ffmpeg only.
#
# Every clip is 8 s of the lavfi testsrc2 pattern at 640x360, 30 fps, yuv420p, with a
# keyframe exactly every 30 frames (1 s GOP, no scene-cut keyframes), plus optionally a
# 440 Hz sine tone. Clips are MPEG-TS so that a Go reader (mediacommon's mpegts.Reader)
# gets access units with PTS and DTS. They are used by internal/camsim (synthetic RTSP
# cameras) and by tests of the ingest and fragment packages.
#
#   h264.ts              H.264 High, no B-frames, video only
#   h264_aac.ts          H.264, no B-frames + AAC-LC 48 kHz mono 64 kbit/s
#   h264_opus.ts         H.264, no B-frames + Opus 48 kHz mono 64 kbit/s (20 ms frames)
#   h264_bframes_aac.ts  H.264 with 2 B-frames (PTS != DTS, decode order != display order) + AAC
#   h265.ts              H.265 Main, no B-frames, video only
#   h265_aac.ts          H.265, no B-frames + AAC
#   h264_reschange.ts    H.264, no B-frames: 4 s at 640x360 then 4 s at 320x180, so the SPS
#                        changes mid-stream (a codec-configuration change) and back at the loop
#   pcmu_8k.raw          8 s of G.711 mu-law, 8 kHz mono, raw (no header): 64000 bytes,
#                        served next to h264.ts as a PCMU track by the "h264_pcmu" camera
#
# The flags are fixed (single-threaded encoders, bitexact muxing), so running the script
# again with the same ffmpeg build rewrites identical files: it is idempotent. Each clip is
# written to a temporary name first and then checked with ffmpeg's strict decoder before
# it replaces the previous one. Usage: testdata/gen-clips.sh [output dir, default: the
# directory of this script].
set -euo pipefail

out="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
mkdir -p "$out"

FFMPEG="${FFMPEG:-ffmpeg}"
DUR=8

# Common input and output options.
VIDEO_IN=(-f lavfi -i "testsrc2=size=640x360:rate=30")
AUDIO_IN=(-f lavfi -i "sine=frequency=440:sample_rate=48000")
GOP=(-g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p -r 30)
X264=(-c:v libx264 -preset veryfast -profile:v high -b:v 300k -maxrate 400k -bufsize 600k -threads 1
	-x264-params "rc-lookahead=10:sliced-threads=0")
X265=(-c:v libx265 -preset veryfast -b:v 250k -threads 1
	-x265-params "keyint=30:min-keyint=30:scenecut=0:bframes=0:pools=1:frame-threads=1:log-level=error")
AAC=(-c:a aac -b:a 64k -ar 48000 -ac 1)
OPUS=(-c:a libopus -b:a 64k -ar 48000 -ac 1 -frame_duration 20 -application audio)
TS=(-t "$DUR" -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 -f mpegts)

# check FILE: fail unless ffmpeg decodes FILE with no error at all.
check() {
	local err
	if ! err=$("$FFMPEG" -nostdin -v error -xerror -err_detect explode -i "$1" -f null - 2>&1) || [ -n "$err" ]; then
		echo "gen-clips: $1 failed the decode check: $err" >&2
		exit 1
	fi
}

# gen NAME ARGS...: run ffmpeg with ARGS writing a temporary file, check it, rename it to NAME.
gen() {
	local name="$1"
	shift
	local tmp="$out/.$name.tmp"
	"$FFMPEG" -nostdin -hide_banner -loglevel error -y "$@" "$tmp"
	case "$name" in
	*.ts) check "$tmp" ;;
	esac
	mv -f "$tmp" "$out/$name"
	echo "wrote $name"
}

gen h264.ts "${VIDEO_IN[@]}" -map 0:v "${X264[@]}" -bf 0 "${GOP[@]}" "${TS[@]}"
gen h264_aac.ts "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" -map 0:v -map 1:a "${X264[@]}" -bf 0 "${GOP[@]}" "${AAC[@]}" "${TS[@]}"
gen h264_opus.ts "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" -map 0:v -map 1:a "${X264[@]}" -bf 0 "${GOP[@]}" "${OPUS[@]}" "${TS[@]}"
gen h264_bframes_aac.ts "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" -map 0:v -map 1:a "${X264[@]}" -bf 2 -b_strategy 0 "${GOP[@]}" "${AAC[@]}" "${TS[@]}"
gen h265.ts "${VIDEO_IN[@]}" -map 0:v "${X265[@]}" "${GOP[@]}" "${TS[@]}"
gen h265_aac.ts "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" -map 0:v -map 1:a "${X265[@]}" "${GOP[@]}" "${AAC[@]}" "${TS[@]}"
# h264_reschange.ts: two 4 s parts of different sizes joined with continuous timestamps.
half=$((DUR / 2))
"$FFMPEG" -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30" -map 0:v "${X264[@]}" -bf 0 "${GOP[@]}" \
	-t "$half" -fflags +bitexact -flags:v +bitexact -map_metadata -1 -f mpegts "$out/.part1.ts"
"$FFMPEG" -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=320x180:rate=30" -map 0:v "${X264[@]}" -bf 0 "${GOP[@]}" \
	-t "$half" -fflags +bitexact -flags:v +bitexact -map_metadata -1 -f mpegts "$out/.part2.ts"
printf "file '%s'\nfile '%s'\n" "$out/.part1.ts" "$out/.part2.ts" >"$out/.parts.txt"
gen h264_reschange.ts -f concat -safe 0 -i "$out/.parts.txt" -c copy -fflags +bitexact -map_metadata -1 -f mpegts
rm -f "$out/.part1.ts" "$out/.part2.ts" "$out/.parts.txt"
gen pcmu_8k.raw "${AUDIO_IN[@]}" -map 0:a -t "$DUR" -c:a pcm_mulaw -ar 8000 -ac 1 -f mulaw

echo "sizes:"
cd "$out"
ls -l h264.ts h264_aac.ts h264_opus.ts h264_bframes_aac.ts h265.ts h265_aac.ts h264_reschange.ts pcmu_8k.raw | awk '{printf "  %-22s %8d bytes\n", $9, $5}'
du -cb h264.ts h264_aac.ts h264_opus.ts h264_bframes_aac.ts h265.ts h265_aac.ts h264_reschange.ts pcmu_8k.raw | tail -1 | awk '{printf "  %-22s %8d bytes\n", "total", $1}'
