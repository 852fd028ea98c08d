#!/usr/bin/env bash
# Measures the agent's CPU and RSS pulling N camsim cameras for D seconds,
# side by side with N `ffmpeg -c copy -f segment` processes pulling the same
# cameras (the baseline anyone can run). Until `tributary bench` exists.
# Usage: scripts/measure-agent.sh [N=10] [D=60] [PRESET=h264_aac]
set -euo pipefail
N=${1:-10}
D=${2:-60}
PRESET=${3:-h264_aac}
WARMUP=10
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/tributary" ./cmd/tributary
port=$((20000 + RANDOM % 20000))
"$work/tributary" camsim --count "$N" --preset "$PRESET" --addr "127.0.0.1:$port" --tcp-only >"$work/urls" 2>"$work/camsim.log" &
sleep 2
tck=$(getconf CLK_TCK)
cpu() { # total user+sys ticks of the given pids
	local t=0
	for p in "$@"; do
		read -r -a f <"/proc/$p/stat"
		t=$((t + f[13] + f[14]))
	done
	echo $t
}
rss() { # total VmRSS in kB
	local t=0
	for p in "$@"; do
		t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
	done
	echo $t
}
measure() { # label pids...
	local label=$1
	shift
	sleep "$WARMUP"
	local c0 c1 r
	c0=$(cpu "$@")
	sleep "$D"
	c1=$(cpu "$@")
	r=$(rss "$@")
	awk -v l="$label" -v c=$((c1 - c0)) -v t="$tck" -v d="$D" -v n="$N" -v r="$r" 'BEGIN {
		pct = 100 * c / t / d
		printf "%-8s streams=%d  cpu=%.2f%% of a core (%.3f%% per stream)  rss=%.1f MB (%.2f MB per stream)\n", l, n, pct, pct / n, r / 1024, r / 1024 / n
	}'
}

{
	echo "data_dir: $work/agent"
	echo "http: {listen: 127.0.0.1:0}"
	echo "log: {level: warn}"
	echo "streams:"
	i=0
	while read -r url; do
		i=$((i + 1))
		echo "  - {name: cam$i, url: \"$url\", transport: tcp}"
	done <"$work/urls"
} >"$work/agent.yaml"
"$work/tributary" agent --config "$work/agent.yaml" 2>"$work/agent.log" &
agent=$!
measure tributary "$agent"
kill -TERM "$agent"
wait "$agent"
frags=$(find "$work/agent/archive" -name '*.m4s' | wc -l)
echo "tributary wrote $frags fragments"

pids=()
i=0
while read -r url; do
	i=$((i + 1))
	mkdir -p "$work/ff/$i"
	ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$url" -c copy -f segment -segment_time 2 \
		-segment_format mp4 "$work/ff/$i/%05d.mp4" 2>>"$work/ffmpeg.log" &
	pids+=($!)
done <"$work/urls"
measure ffmpeg "${pids[@]}"
kill "${pids[@]}"
