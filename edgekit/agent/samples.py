"""A bounded ring of camera frames, kept for recalibrating on the real scene.

``edgekit calibrate --from-device`` fetches these, so INT8 scales can follow what the
camera actually sees (lighting, lens, mounting) instead of the data set the model shipped
with. Frames are full-resolution JPEGs (quality 95): preprocessing happens again on the
host with the release's own spec, so nothing model-specific is baked in here.

Once the ring is full it favours frames that differ: each kept frame has a 16x9 thumbnail
(drift.py's frame statistics) and the frame whose nearest kept neighbour is closest goes,
the oldest of those within ``TIE_LEVELS`` of that distance, so a static scene still
renews itself and a scene that changed keeps its earlier look too. Frames left on disk by
an earlier run have no thumbnail and go first, oldest first.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import cv2
import numpy as np

from .config import SamplesConfig
from .drift import frame_stats
from .errors import AgentError
from .files import write_atomically

SUFFIX = ".jpg"
JPEG_QUALITY = 95
# Root-mean-square difference of the thumbnails, in grey levels, below which two candidates
# for dropping count as equally redundant (about sensor and JPEG noise): the older goes.
TIE_LEVELS = 1.0


class SampleRing:
    """Saves one frame every ``every_s`` seconds and keeps ``keep`` of them, varied ones first."""

    def __init__(self, config: SamplesConfig, log: Callable[[str], None], clock: Callable[[], float] = time.time):
        self._config = config
        self._log = log
        self._clock = clock
        self._last: float | None = None
        self._failing = False
        self._count = 0
        try:
            os.makedirs(config.dir, exist_ok=True)
            self._files = sorted(n for n in os.listdir(config.dir) if n.endswith(SUFFIX))
            # By name: the thumbnails of the frames this run wrote.
            self._thumbnails: dict[str, np.ndarray] = {}
        except OSError as exc:
            raise AgentError(
                "config",
                f"Cannot keep sample frames in {config.dir} ({exc.strerror}); the service may write only under "
                "/var/lib/edgekit (its StateDirectory): set samples.dir in /etc/edgekit/camera.json there.",
            ) from None

    def offer(self, image: np.ndarray) -> str | None:
        """Keep ``image`` if a sample is due; the path written, or None."""
        now = self._clock()
        if self._last is not None and now - self._last < self._config.every_s:
            return None
        self._last = now
        # Milliseconds since the epoch, zero-padded, so name order is time order; the count
        # keeps two samples of one millisecond apart.
        self._count += 1
        name = f"{int(now * 1000):015d}-{self._count % 1000000:06d}{SUFFIX}"
        path = os.path.join(self._config.dir, name)
        try:
            self._write(path, image)
        except OSError as exc:
            # A full disk must not stop the camera; say so once, and keep trying.
            if not self._failing:
                self._log(f"cannot keep a sample frame in {self._config.dir}: {exc.strerror or exc}")
            self._failing = True
            return None
        self._failing = False
        self._files.append(name)
        self._thumbnails[name] = frame_stats(image).thumbnail.astype(np.float64)
        while len(self._files) > self._config.keep:
            dropped = self._files.pop(self._redundant())
            self._thumbnails.pop(dropped, None)
            try:
                os.unlink(os.path.join(self._config.dir, dropped))
            except FileNotFoundError:
                pass
        return path

    def _redundant(self) -> int:
        """The index in ``_files`` (oldest first) of the frame the ring misses least."""
        for index, name in enumerate(self._files):
            if name not in self._thumbnails:
                return index
        stacked = np.stack([self._thumbnails[name].reshape(-1) for name in self._files])
        # Root-mean-square difference of every pair, through one matrix product (keep x keep,
        # not keep x keep x pixels); a frame is not its own neighbour.
        norms = np.einsum("ij,ij->i", stacked, stacked)
        squared = (norms[:, np.newaxis] + norms[np.newaxis, :] - 2.0 * stacked @ stacked.T) / stacked.shape[1]
        distances = np.sqrt(np.maximum(squared, 0.0))
        np.fill_diagonal(distances, np.inf)
        nearest = distances.min(axis=1)
        return int(np.flatnonzero(nearest <= nearest.min() + TIE_LEVELS)[0])

    @staticmethod
    def _write(path: str, image: np.ndarray) -> None:
        ok, encoded = cv2.imencode(SUFFIX, image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"OpenCV could not encode a {image.shape} frame as JPEG")
        # A reader (the host's calibrate) never sees half a JPEG.
        write_atomically(path, encoded.tobytes())
