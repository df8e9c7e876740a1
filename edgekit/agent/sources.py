"""Where frames come from: a file or image folder, a CSI or V4L2 camera, or an RTSP stream.

Every source is named by a URI in the site config and opened by ``open_source``. Pipeline
strings are built by pure functions so that what reaches GStreamer can be tested exactly.
"""

from __future__ import annotations

import os
import pwd
import re
import threading
import time
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

from .config import CameraConfig, SourceConfig
from .errors import AgentError, CameraUnavailable
from .redact import mask_url

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED = (
    "file:///path/to/video, file:///path/to/image-folder, csi://N, v4l2:///dev/videoN, "
    "/dev/v4l/by-id/..., rtsp://host/path or rtsps://host/path"
)
CSI_FIELDS = ("sensor", "width", "height", "fps")
DEFAULT_HARDWARE_DECODER = "nvv4l2decoder"
# The last stage of every GStreamer pipeline: BGR for cv2, and only the newest frame, because a
# consumer that falls behind must get the present, not a queue of the past.
BGR_APPSINK = "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
DEPAY_PARSE = {"h264": "rtph264depay ! h264parse", "h265": "rtph265depay ! h265parse"}
NO_GSTREAMER_FIX = (
    "pip's opencv-python shadows JetPack's OpenCV, which has it; remove it with `pip3 uninstall opencv-python`"
)


class FrameSource(Protocol):
    fps: float | None
    # Live sources lose frames that are not read in time; files and folders wait for the reader.
    live: bool
    # For logs: credentials are masked.
    description: str

    def read(self) -> np.ndarray | None:
        """The next BGR frame; None once a non-looping file has ended or a live source is lost."""
        ...

    def close(self) -> None: ...


class Pacer:
    """Holds frames back to the source's frame rate, as a camera would deliver them."""

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps
        self._due: float | None = None

    def wait(self) -> None:
        now = time.monotonic()
        if self._due is not None and self._due > now:
            time.sleep(self._due - now)
            now = self._due
        # A camera does not deliver a burst to a consumer that fell behind, so the schedule
        # restarts from the frame actually handed out rather than catching up.
        self._due = now + self._period


class VideoFileSource:
    live = False

    def __init__(self, path: str, loop: bool, realtime: bool) -> None:
        self._path = path
        self._loop = loop
        self.description = path
        self._capture = self._open()
        self.fps: float | None = _reported_fps(self._capture)
        self._pacer = Pacer(self.fps) if realtime and self.fps else None

    def _open(self) -> Any:
        capture = cv2.VideoCapture(self._path)
        if not capture.isOpened():
            raise AgentError("source", f"OpenCV could not open the video {self._path}.")
        return capture

    def read(self) -> np.ndarray | None:
        frame: np.ndarray | None
        ok, frame = self._capture.read()
        if not ok and self._loop:
            # Reopening rewinds reliably; seeking to frame 0 is not honoured by every codec.
            self._capture.release()
            self._capture = self._open()
            ok, frame = self._capture.read()
        if not ok:
            return None
        if self._pacer is not None:
            self._pacer.wait()
        return frame

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource:
    """Still images in name order; they have no frame rate, so they are never paced."""

    fps: float | None = None
    live = False

    def __init__(self, path: str, loop: bool) -> None:
        self._files = _image_files(path)
        if not self._files:
            raise AgentError(
                "source",
                "The folder {} holds no images ({}).".format(path, ", ".join(IMAGE_EXTENSIONS)),
            )
        self.description = path
        self._loop = loop
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next == len(self._files):
            if not self._loop:
                return None
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        if frame is None:
            raise AgentError("source", f"OpenCV could not read the image {path}.")
        return frame

    def close(self) -> None:
        """Nothing to release: each image is opened and closed by its own read."""


class CaptureSource:
    """A camera or stream read through cv2.VideoCapture.

    A failed read marks the source lost for good: every later read returns None at once
    instead of blocking again on a dead device or socket, and the caller reopens.
    """

    live = True

    def __init__(self, capture: Any, description: str, fps: float | None, stall_s: float | None = None) -> None:
        self._capture = capture
        self.description = description
        self.fps = fps
        self._stall_s = stall_s
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False
        self._lost = False

    def read(self) -> np.ndarray | None:
        with self._lock:
            if self._closed or self._lost:
                return None
            self._reading = True
        started = time.monotonic()
        frame: np.ndarray | None
        ok, frame = self._capture.read()
        took = time.monotonic() - started
        with self._lock:
            self._reading = False
            if self._closed:
                # close() came from another thread while this read blocked; releasing a
                # capture under a running read crashes some backends, so it was left to us.
                self._capture.release()
                return None
            # When FFmpeg's read timeout cuts the stream, that read and the next ones still hand
            # out the frames the decoder held back, each after another full timeout: stale, and
            # they would stretch the detection of a hung camera to several timeouts.
            stalled = self._stall_s is not None and took >= self._stall_s
            if not ok or frame is None or stalled:
                self._lost = True
                return None
        return frame

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._reading:
                return
        self._capture.release()


def open_source(source: SourceConfig, camera: CameraConfig) -> FrameSource:
    """Open the source the site config names; raises AgentError("source", ...) with the fix."""
    uri = source.uri
    if uri.startswith("/dev/"):
        return open_v4l2(uri, camera)
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme == "file":
        return open_file(file_path(uri), source)
    if scheme == "csi":
        match = re.fullmatch(r"csi://(\d+)", uri)
        if match is None:
            raise AgentError(
                "source", f"The source {mask_url(uri)!r} names no sensor; use csi://N with the sensor number."
            )
        return open_csi(int(match.group(1)), camera)
    if scheme == "v4l2":
        path = uri[len("v4l2://") :]
        if not path.startswith("/"):
            raise AgentError(
                "source", f"The source {mask_url(uri)!r} names no device; use v4l2:///dev/videoN (three slashes)."
            )
        return open_v4l2(path, camera)
    if scheme in ("rtsp", "rtsps"):
        return open_rtsp(source, camera)
    raise AgentError("source", f"The source {mask_url(uri)!r} is not supported; use one of {SUPPORTED}.")


def open_file(path: str, source: SourceConfig) -> FrameSource:
    if os.path.isdir(path):
        try:
            return ImageFolderSource(path, source.loop)
        except OSError as exc:
            raise AgentError(
                "source", f"Cannot read the folder {path} ({exc.strerror}); let the edgekit user read it."
            ) from None
    if not os.path.isfile(path):
        raise AgentError("source", f"The source file {path} does not exist.")
    return VideoFileSource(path, source.loop, source.realtime)


def file_path(uri: str) -> str:
    """The local path of a ``file:///abs/path`` URI."""
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
        raise AgentError("source", f"The source {uri!r} must be an absolute file:///path URI.")
    return unquote(parsed.path)


def open_csi(sensor: int, camera: CameraConfig) -> FrameSource:
    pipeline = csi_pipeline(camera, sensor)
    if not has_gstreamer():
        raise AgentError(
            "source",
            f"csi://{sensor} needs OpenCV with GStreamer and this cv2 {cv2.__version__} has none; {NO_GSTREAMER_FIX}.",
        )
    capture = _opened(
        cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER),
        f"The CSI camera csi://{sensor} did not start; run `sudo systemctl restart nvargus-daemon`, check the "
        "ribbon cable is seated (contacts facing the right way) and that the sensor number exists.",
    )
    description = f"csi://{sensor} ({camera.width}x{camera.height}@{camera.fps})"
    # Argus delivers the rate it was asked for; GStreamer's capture often reports 0.
    return CaptureSource(capture, description, float(camera.fps))


def csi_pipeline(camera: CameraConfig, sensor: int) -> str:
    """The profile's ``camera.csi_pipeline`` template, filled in for one sensor."""
    template = camera.csi_pipeline
    if not template:
        raise AgentError(
            "source",
            "The device profile sets no camera.csi_pipeline, which csi:// sources need; "
            "add one to the profile's [camera] section and redeploy.",
        )
    try:
        return template.format(sensor=sensor, width=camera.width, height=camera.height, fps=camera.fps)
    except KeyError as exc:
        problem = f"names {{{exc.args[0]}}}"
    except (IndexError, ValueError) as exc:
        problem = f"is not a valid template ({exc})"
    fields = ", ".join("{" + f + "}" for f in CSI_FIELDS)
    raise AgentError(
        "source", f"The profile's camera.csi_pipeline {problem}; it may use only {fields}, and literal braces doubled."
    )


def open_v4l2(path: str, camera: CameraConfig) -> FrameSource:
    if not os.path.exists(path):
        raise CameraUnavailable(
            f"The camera {path} does not exist; plug it in, or use one of the names `ls /dev/v4l/by-id` lists.",
        )
    # Resolved on every open, so a by-id name follows the camera to its new /dev/videoN when re-plugged.
    device = os.path.realpath(path)
    # V4L2 opens the node read-write.
    if not os.access(device, os.R_OK | os.W_OK):
        user = pwd.getpwuid(os.geteuid()).pw_name
        raise AgentError(
            "source",
            f"The service user {user} may not open {device}; add it to the video group "
            f"(`sudo usermod -aG video {user}`) and restart the service.",
        )
    capture = _opened(
        cv2.VideoCapture(device, cv2.CAP_V4L2),
        f"OpenCV could not open the camera {device}; check no other program holds it (`fuser {device}`) "
        f"and that it is a capture node (`v4l2-ctl -d {device} --list-formats-ext`).",
    )
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, camera.width)
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, camera.height)
    capture.set(cv2.CAP_PROP_FPS, camera.fps)
    # The driver queues four frames by default, so a slow reader would see the past.
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    description = path if device == path else f"{path} ({device})"
    return CaptureSource(capture, description, _reported_fps(capture))


def open_rtsp(source: SourceConfig, camera: CameraConfig) -> FrameSource:
    uri, masked = source.uri, mask_url(source.uri)
    hardware = camera.rtsp_decode == "hardware"
    stall_s: float | None = None
    if hardware or not has_ffmpeg():
        if not has_gstreamer():
            if hardware:
                need, other = "hardware decoding", ', or set rtsp_decode = "software" in the camera settings'
            else:
                need, other = "a stream when it has no FFmpeg either", ""
            raise AgentError(
                "source",
                f"OpenCV needs GStreamer for {need} of {masked} and this cv2 {cv2.__version__} has none; "
                f"{NO_GSTREAMER_FIX}{other}.",
            )
        capture = cv2.VideoCapture(rtsp_pipeline(uri, camera, source.codec), cv2.CAP_GSTREAMER)
        how = f"gstreamer, {'hardware' if hardware else 'software'} {source.codec}"
    else:
        capture, stall_s = _open_ffmpeg(uri, source.read_timeout_s)
        how = "ffmpeg"
    _opened(
        capture,
        f"Could not open the stream {masked}; check the camera's address, port, path and credentials, "
        "and that this device can reach it.",
    )
    return CaptureSource(capture, f"{masked} ({how}, tcp)", _reported_fps(capture), stall_s)


def _opened(capture: Any, unavailable: str) -> Any:
    """``capture`` if OpenCV opened it; else it is released and the camera reported away."""
    if not capture.isOpened():
        capture.release()
        raise CameraUnavailable(unavailable)
    return capture


def _open_ffmpeg(uri: str, timeout_s: float) -> tuple[Any, float | None]:
    """The capture, and the read time past which FFmpeg's own timeout has cut the stream."""
    # UDP loses packets under load and a failed UDP SETUP makes some cameras drop the session.
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    milliseconds = max(1, int(timeout_s * 1000))
    params: list[int] = []
    for name in ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC"):
        # OpenCV before 4.5.2 has neither, and then blocks up to FFmpeg's own 30 s.
        prop = getattr(cv2, name, None)
        if prop is not None:
            params += [prop, milliseconds]
    if params:
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params), milliseconds / 1000.0
    return cv2.VideoCapture(uri, cv2.CAP_FFMPEG), None


def rtsp_pipeline(uri: str, camera: CameraConfig, codec: str) -> str:
    """The GStreamer pipeline for an RTSP stream, decoded by hardware or by software."""
    # media=video keeps a camera that lists its audio track first from never delivering frames.
    receive = f"rtspsrc location={gst_quote(uri)} protocols=tcp latency=200 ! application/x-rtp,media=video"
    if camera.rtsp_decode != "hardware":
        return f"{receive} ! decodebin ! videoconvert ! {BGR_APPSINK}"
    if codec not in DEPAY_PARSE:
        raise AgentError("source", f"The codec {codec!r} is not supported; set source.codec to h264 or h265.")
    decoder = camera.rtsp_decoder or DEFAULT_HARDWARE_DECODER
    # nvvidconv copies the decoder's NVMM frames to system memory, which videoconvert needs.
    to_bgr = f"nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! {BGR_APPSINK}"
    return f"{receive} ! {DEPAY_PARSE[codec]} ! {decoder} ! {to_bgr}"


def gst_quote(value: str) -> str:
    """A property value that gst_parse_launch reads back verbatim, whatever it contains."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def has_gstreamer() -> bool:
    return _video_io_backend("GStreamer")


def has_ffmpeg() -> bool:
    return _video_io_backend("FFMPEG")


def _video_io_backend(name: str) -> bool:
    """Whether cv2.getBuildInformation() lists the backend as built (YES, or a plugin), not NO."""
    match = re.search(rf"^\s*{name}:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match is not None and match.group(1).upper() != "NO"


def _reported_fps(capture: Any) -> float | None:
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    # Containers without a rate report 0, some backends NaN, and some RTSP streams the 90 kHz clock.
    return fps if 0.0 < fps <= 1000.0 else None


def _image_files(folder: str) -> list[str]:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]
