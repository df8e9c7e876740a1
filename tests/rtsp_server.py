"""A live H.264 RTSP camera on 127.0.0.1, for tests that need a real stream.

Run it with Debian's own interpreter, which has PyGObject and GStreamer's RTSP server
(python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-ugly for x264enc):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /cam [--width 320 --height 240 --fps 15]

It prints ``READY rtsp://127.0.0.1:PORT/PATH`` once it listens, then serves until killed.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--quit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes, so a test runner that dies takes the server with it",
    )
    args = parser.parse_args(argv)
    if not args.path.startswith("/"):
        parser.error("--path must start with /")
    return args


def launch_line(width: int, height: int, fps: int) -> str:
    # A keyframe every second lets a client that joins (or rejoins) decode within a second.
    return (
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96 )"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.width, args.height, args.fps))
    # One encoder for every client, as a real camera has.
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: could not listen on {HOST}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    if args.quit_on_stdin_eof:

        def on_stdin(_fd: int, _condition: GLib.IOCondition) -> bool:
            if not sys.stdin.buffer.read1(4096):
                loop.quit()
                return False
            return True

        GLib.io_add_watch(
            sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN | GLib.IOCondition.HUP, on_stdin
        )
    print(f"READY rtsp://{HOST}:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
