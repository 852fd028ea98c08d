#!/usr/bin/env bash
# Installs the real programs Tributary's tests run against, when missing:
# ffmpeg (producer and judge of every fragment), mkvtoolnix (mkvinfo, a
# second judge of Matroska) and the GStreamer RTSP
# server (a camera nobody here wrote), GStreamer's webrtcbin (a WHIP
# publisher), Chromium and iproute2, Debian packages that need root; and
# versitygw (a real S3 gateway over a directory), a Go program built once
# into .tools/ at the repository root.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}

# versitygw: built from source into .tools/ once (about 3 minutes cold).
VERSITYGW_VERSION=v1.8.0
if [ -x .tools/versitygw ] && .tools/versitygw --version >/dev/null 2>&1; then
	echo "test peers: versitygw present"
else
	echo "test peers: building versitygw $VERSITYGW_VERSION into .tools/ (a few minutes the first time)"
	mkdir -p .tools
	GOBIN="$(pwd)/.tools" "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	.tools/versitygw --version >/dev/null
	echo "test peers: versitygw built"
fi

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v mkvinfo >/dev/null 2>&1 || need+=(mkvtoolnix)
# chromium: headless, plays HLS with the vendored hls.js in viewer and playback tests.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer" >/dev/null 2>&1 \
	|| ! command -v gst-inspect-1.0 >/dev/null 2>&1 \
	|| ! gst-inspect-1.0 x264enc >/dev/null 2>&1 \
	|| ! gst-inspect-1.0 opusenc >/dev/null 2>&1 \
	|| ! gst-inspect-1.0 rtph264pay >/dev/null 2>&1; then
	need+=(gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
		gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-rtsp)
fi

# GStreamer webrtcbin from Python: a WHIP publisher nobody here wrote.
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstWebRTC', '1.0'); gi.require_version('GstSdp', '1.0'); from gi.repository import GstWebRTC, GstSdp" >/dev/null 2>&1 \
	|| ! gst-inspect-1.0 nicesrc >/dev/null 2>&1 \
	|| ! gst-inspect-1.0 webrtcbin >/dev/null 2>&1; then
	need+=(gir1.2-gst-plugins-bad-1.0 gstreamer1.0-nice gstreamer1.0-plugins-bad python3-gi)
fi
# mosquitto: the MQTT broker sensor streams subscribe to.
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto mosquitto-clients)
# ip (iproute2): the Chromium WHIP test puts Chromium in a network namespace.
command -v ip >/dev/null 2>&1 || need+=(iproute2)

if [ ${#need[@]} -eq 0 ]; then
	echo "test peers: all installed"
	exit 0
fi
echo "test peers: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "test peers: installed"
