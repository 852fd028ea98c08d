# A GStreamer RTSP server serving one camera at rtsp://127.0.0.1:PORT/cam.
# Usage: /usr/bin/python3 gst_rtsp_server.py PORT "( launch line )"
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, launch = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(launch)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen on port " + port)
print("gst rtsp server on", port, flush=True)
GLib.MainLoop().run()
