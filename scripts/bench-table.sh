#!/usr/bin/env bash
# Runs `tributary bench` with the ffmpeg baseline for N = 10, 50, 100 and 200
# cameras (200 for 2 minutes) and keeps each table and JSON result in
# bench-results/ (not committed). Usage: scripts/bench-table.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-results
mkdir -p "$out"
go build -o "$out/tributary" ./cmd/tributary
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 50 100 200)
for n in "${counts[@]}"; do
	d=60s
	[ "$n" -ge 200 ] && d=120s
	echo "== $n cameras, $d" >&2
	"$out/tributary" bench --streams "$n" --duration "$d" --baseline ffmpeg --json-file "$out/bench-$n.json" | tee "$out/bench-$n.txt"
done
