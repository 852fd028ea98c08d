#!/usr/bin/env bash
# gen.sh: regenerate the small Matroska samples the MKV reader tests use, from the clips in
# testdata/ (see testdata/gen-clips.sh). Needs ffmpeg; gst.mkv needs gst-launch-1.0 (GStreamer
# 1.22 with the good/bad plugins), laced.mka needs mkvmerge (MKVToolNix). Their outputs are not
# byte-for-byte reproducible (GStreamer and mkvmerge write a date and a random segment UID),
# which is why the files are committed; the expected frame counts in reader_mkv_test.go come
# from `ffprobe -v error -count_packets -show_entries stream=index,codec_name,nb_read_packets`.
#
#   h264_aac.mkv          ffmpeg, seekable output: known sizes, SeekHead, Cues, Tags at the end (1.2 s, 2 GOPs)
#   h265_aac.mkv          ffmpeg, H.265 + AAC (0.5 s)
#   h264_opus.mkv         ffmpeg, H.264 + Opus: CodecDelay, SeekPreRoll, BlockGroups with DiscardPadding
#   h264_bframes_aac.mkv  ffmpeg, H.264 with B-frames: block timestamps are PTS, not monotonic in decode order
#   live.mkv              ffmpeg -live 1 to a pipe: Segment of unknown size, known-size clusters of ~200 ms
#   gst.mkv               GStreamer matroskamux streamable=true: Segment and Clusters of unknown size,
#                         NUL-terminated strings, 8-byte sizes
#   laced.mka             mkvmerge, AAC only: laced SimpleBlocks, TimecodeScale 20832
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
clips="$here/../../../testdata"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
F=(ffmpeg -nostdin -hide_banner -loglevel error -y)
BX=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact)

"${F[@]}" -i "$clips/h264_aac.ts" -t 1.2 -c copy "${BX[@]}" -f matroska "$here/h264_aac.mkv"
"${F[@]}" -i "$clips/h265_aac.ts" -t 0.5 -c copy "${BX[@]}" -f matroska "$here/h265_aac.mkv"
"${F[@]}" -i "$clips/h264_opus.ts" -t 0.5 -c copy "${BX[@]}" -f matroska "$here/h264_opus.mkv"
"${F[@]}" -i "$clips/h264_bframes_aac.ts" -t 0.6 -c copy "${BX[@]}" -f matroska "$here/h264_bframes_aac.mkv"
# AAC from MPEG-TS cannot go to a non-seekable Matroska output directly (ffmpeg 5.1: "Error parsing
# AAC extradata"): the live sample uses Opus.
"${F[@]}" -i "$clips/h264_opus.ts" -t 0.6 -c copy "${BX[@]}" -live 1 -cluster_time_limit 200 -f matroska - >"$here/live.mkv"

"${F[@]}" -i "$clips/h264_aac.ts" -t 0.6 -c copy "$tmp/short.ts"
gst-launch-1.0 -q filesrc location="$tmp/short.ts" ! tsdemux name=d \
	d. ! queue ! h264parse ! matroskamux name=m streamable=true ! filesink location="$here/gst.mkv" \
	d. ! queue ! aacparse ! m.
mkvmerge -q -o "$here/laced.mka" -D "$tmp/short.ts"
