#!/usr/bin/env bash
# Vendors hls.js (Apache-2.0) into playback/viewer/vendor/: hls.min.js, its
# licence and a VERSION file. The viewer is embedded in the binary with
# go:embed, so there is no build step at run time; run this script to move
# to a newer hls.js and commit the result.
#
#   scripts/update-hlsjs.sh          # the newest 1.x
#   scripts/update-hlsjs.sh 1.6.2    # an exact version (or any npm range)
set -euo pipefail

cd "$(dirname "$0")/.."
SPEC=${1:-1}
DEST=playback/viewer/vendor

command -v npm >/dev/null 2>&1 || { echo "update-hlsjs: npm is required" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# npm pack fetches the published tarball only (no dependencies, no scripts).
(cd "$TMP" && npm pack --silent "hls.js@$SPEC" >pack.txt)
TARBALL="$TMP/$(tail -n1 "$TMP/pack.txt")"
tar -xzf "$TARBALL" -C "$TMP"
PKG="$TMP/package"

VERSION=$(node -p 'require(process.argv[1]).version' "$PKG/package.json")
case "$VERSION" in
1.*) ;;
*) echo "update-hlsjs: got hls.js $VERSION, want 1.x" >&2; exit 1 ;;
esac
[ -s "$PKG/dist/hls.min.js" ] || { echo "update-hlsjs: dist/hls.min.js missing in hls.js $VERSION" >&2; exit 1; }
LICENSE=""
for f in LICENSE LICENSE.md LICENSE.txt; do
	if [ -s "$PKG/$f" ]; then LICENSE="$PKG/$f"; break; fi
done
[ -n "$LICENSE" ] || { echo "update-hlsjs: no LICENSE in hls.js $VERSION" >&2; exit 1; }

mkdir -p "$DEST"
cp "$PKG/dist/hls.min.js" "$DEST/hls.min.js"
cp "$LICENSE" "$DEST/hls.js-LICENSE.txt"
echo "$VERSION" >"$DEST/VERSION"
echo "update-hlsjs: vendored hls.js $VERSION into $DEST ($(wc -c <"$DEST/hls.min.js") bytes)"
