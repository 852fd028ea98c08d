#!/usr/bin/python3
"""A WHIP publisher made of GStreamer's webrtcbin: H.264 (x264) and Opus,
offered with every ICE candidate (no trickle), POSTed as application/sdp,
published for the given seconds, then the session is DELETEd.

usage: gst_whip.py URL TOKEN SECONDS
Exit 0 after publishing; prints what went wrong and exits 1 otherwise."""
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

url, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
Gst.init(None)
pipe = Gst.parse_launch(
    "webrtcbin name=wb bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bframes=0 bitrate=1000 ! video/x-h264,profile=constrained-baseline ! "
    "rtph264pay config-interval=-1 aggregate-mode=zero-latency ! "
    "application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000 ! wb. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay ! "
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! wb.")
wb = pipe.get_by_name("wb")
loop = GLib.MainLoop()
state = {"location": None, "error": None}


def fail(msg):
    state["error"] = msg
    loop.quit()


def post_offer():
    offer = wb.get_property("local-description").sdp.as_text()
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=offer.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            if res.status != 201:
                return fail("POST answered %d" % res.status)
            state["location"] = urllib.parse.urljoin(url, res.headers["Location"])
            answer = res.read().decode()
    except urllib.error.HTTPError as e:
        return fail("POST answered %d: %s" % (e.code, e.read().decode(errors="replace")))
    except Exception as e:  # noqa: BLE001
        return fail("POST: %s" % e)
    _, sdp = GstSdp.SDPMessage.new_from_text(answer)
    desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
    wb.emit("set-remote-description", desc, Gst.Promise.new())
    GLib.timeout_add(int(seconds * 1000), loop.quit)


def on_gathering(*_):
    if wb.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE and state["location"] is None:
        GLib.idle_add(lambda: post_offer() and False)


def on_offer(promise, _):
    reply = promise.get_reply()
    offer = reply.get_value("offer")
    wb.emit("set-local-description", offer, Gst.Promise.new())


def on_negotiation_needed(*_):
    wb.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))


def on_message(_, msg):
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        fail("%s (%s)" % (err, dbg))


wb.connect("on-negotiation-needed", on_negotiation_needed)
wb.connect("notify::ice-gathering-state", on_gathering)
bus = pipe.get_bus()
bus.add_signal_watch()
bus.connect("message", on_message)
pipe.set_state(Gst.State.PLAYING)
GLib.timeout_add(int((seconds + 30) * 1000), lambda: fail("timed out"))
loop.run()
pipe.set_state(Gst.State.NULL)
if state["location"]:
    headers = {"Authorization": "Bearer " + token} if token else {}
    try:
        urllib.request.urlopen(urllib.request.Request(state["location"], headers=headers, method="DELETE"), timeout=5)
    except Exception as e:  # noqa: BLE001
        print("DELETE:", e, file=sys.stderr)
if state["error"]:
    print(state["error"], file=sys.stderr)
    sys.exit(1)
