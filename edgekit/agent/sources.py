"""Where frames come from. Only files for now, played back like a live camera when asked."""

from __future__ import annotations

import os
import time
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

from .errors import AgentError

SCHEMES = ("file",)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


class FrameSource(Protocol):
    fps: float | None

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None once a non-looping source has ended."""
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
    def __init__(self, path: str, loop: bool, realtime: bool) -> None:
        self._path = path
        self._loop = loop
        self._capture = self._open()
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        # Containers without a rate report 0, and some backends NaN.
        self.fps: float | None = fps if fps > 0.0 else None
        self._pacer = Pacer(self.fps) if realtime and self.fps else None

    def _open(self) -> Any:
        capture = cv2.VideoCapture(self._path)
        if not capture.isOpened():
            raise AgentError("source", f"OpenCV could not open the video {self._path}.")
        return capture

    def read(self) -> np.ndarray | None:
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

    def __init__(self, path: str, loop: bool) -> None:
        self._files = _image_files(path)
        if not self._files:
            raise AgentError(
                "source",
                "The folder {} holds no images ({}).".format(path, ", ".join(IMAGE_EXTENSIONS)),
            )
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


def _image_files(folder: str) -> list[str]:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


def file_path(uri: str) -> str:
    """The local path of a ``file:///abs/path`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme not in SCHEMES:
        raise AgentError(
            "source",
            "The source {!r} is not supported; this agent reads {} sources.".format(
                uri, ", ".join(s + "://" for s in SCHEMES)
            ),
        )
    if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
        raise AgentError("source", f"The source {uri!r} must be an absolute file:///path URI.")
    return unquote(parsed.path)


def open_source(spec: dict[str, Any]) -> FrameSource:
    """Open ``{"uri": "file:///...", "loop": bool, "realtime": bool}``."""
    path = file_path(str(spec["uri"]))
    loop = bool(spec.get("loop", False))
    if os.path.isdir(path):
        return ImageFolderSource(path, loop)
    if not os.path.isfile(path):
        raise AgentError("source", f"The source file {path} does not exist.")
    return VideoFileSource(path, loop, bool(spec.get("realtime", False)))
