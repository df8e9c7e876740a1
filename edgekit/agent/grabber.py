"""The capture thread: it owns the camera, so a read that hangs never stalls the service.

cv2's ``read()`` can block for ever on a dropped RTSP link or a wedged Argus session, and
no Python code can interrupt it. So every open and read runs under a deadline watched from
another thread: a call that overruns is abandoned (its thread ends, or leaks, on its own),
a fresh capture is opened after a backoff, and the rest of the service carries on. An outage
longer than systemd's WatchdogSec still restarts the service, because the frame loop pings
the watchdog only for fresh frames.

Frames reach the pipeline by the drop policy: ``latest`` keeps only the newest frame (a live
camera must not queue stale frames behind a slow engine), ``every`` hands over each frame
in order and makes the reader wait (a recorded file must not skip).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, NamedTuple, TypeVar

import numpy as np

from .config import DROP_POLICIES
from .errors import AgentError
from .sources import FrameSource

Log = Callable[[str], None]
Count = Callable[[str], None]
# Opening negotiates with the camera (RTSP DESCRIBE/SETUP, GStreamer caps, Argus session),
# which legitimately takes longer than a frame read.
MIN_OPEN_TIMEOUT_S = 15.0
EVERY_QUEUE = 4
# Captures stuck in a driver call that never returns each hold a thread and a device handle;
# past this many, no new capture is tried until one returns, and the watchdog decides.
MAX_STUCK = 2
T = TypeVar("T")


class Frame(NamedTuple):
    number: int
    captured: float
    grab_s: float
    image: np.ndarray


class Backoff:
    """Delays that double from ``first`` up to ``cap``, so a dead camera is not hammered."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self._failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.first * (2.0 ** min(self._failures, 16)))
        self._failures += 1
        return delay

    def reset(self) -> None:
        self._failures = 0


class _Call(NamedTuple):
    generation: int
    what: str
    started: float


class Grabber:
    """Reads ``open_source()`` frames in a thread; ``get`` hands them over by the drop policy."""

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        drop: str,
        read_timeout_s: float,
        log: Log,
        count: Count,
        backoff: Backoff | None = None,
    ) -> None:
        if drop not in DROP_POLICIES:
            raise ValueError(f"drop must be one of {DROP_POLICIES}, not {drop!r}")
        self._open_source = open_source
        self._drop = drop
        self._limits = {"read": read_timeout_s, "open": max(MIN_OPEN_TIMEOUT_S, 3 * read_timeout_s)}
        self._log = log
        self._count = count
        self._backoff = backoff or Backoff()
        self._state = threading.Condition()
        self._frames: collections.deque[Frame] = collections.deque()
        self._generation = 0
        self._call: _Call | None = None
        self._ended = False
        self._failure: str | None = None
        self._stuck: set[int] = set()
        self._respawn_pending = False
        self._index = 0
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="grab-watch", daemon=True)
        self._opened: FrameSource | None = None

    @property
    def failure(self) -> str | None:
        """Why a file or folder stopped early (a corrupt image, a file replaced), once ``ended``."""
        return self._failure

    @property
    def ended(self) -> bool:
        """A non-looping file has been read to its end and every frame handed over."""
        with self._state:
            return self._ended and not self._frames

    def start(self, opened: FrameSource | None = None) -> None:
        """Start reading; ``opened`` is a source the caller already opened, to fail fast on a bad one."""
        self._opened = opened
        self._spawn_reader(0)
        self._watcher.start()

    def get(self, timeout: float) -> Frame | None:
        """The next frame, or None when none came within ``timeout`` (or the source ended)."""
        with self._state:
            if not self._frames and not self._ended:
                self._state.wait(timeout)
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._state.notify_all()
            return frame

    def close(self) -> None:
        self._stop.set()
        with self._state:
            # Retires the reader: it closes its capture as soon as its current call returns.
            self._generation += 1
            self._state.notify_all()

    def _spawn_reader(self, generation: int, after_backoff: bool = False) -> None:
        reader = threading.Thread(
            target=self._read_loop, args=(generation, after_backoff), name=f"grab-{generation}", daemon=True
        )
        reader.start()

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _timed(self, generation: int, what: str, call: Callable[[], T]) -> T:
        with self._state:
            self._call = _Call(generation, what, time.monotonic())
        try:
            return call()
        finally:
            respawn = None
            with self._state:
                if self._call is not None and self._call.generation == generation:
                    self._call = None
                if generation in self._stuck:
                    self._stuck.discard(generation)
                    if self._respawn_pending and not self._stop.is_set():
                        respawn = self._generation
                    self._respawn_pending = False
            if respawn is not None:
                self._spawn_reader(respawn, after_backoff=True)

    def _read_loop(self, generation: int, after_backoff: bool = False) -> None:
        if after_backoff:
            self._stop.wait(self._backoff.next())
        while self._current(generation):
            try:
                source = self._opened or self._timed(generation, "open", self._open_source)
                self._opened = None
            except AgentError as exc:
                self._retry_after(f"cannot open the source ({exc.message})")
                continue
            except Exception as exc:  # noqa: BLE001 - OSError and cv2.error from a driver or folder
                self._retry_after(f"cannot open the source ({type(exc).__name__}: {exc})")
                continue
            if not self._current(generation):
                source.close()
                return
            image, problem = self._read_frames(generation, source)
            source.close()
            if not self._current(generation):
                return
            if image is None and not source.live:
                with self._state:
                    # A file does not come back by reconnecting: a failed read ends it, with the reason.
                    self._failure = problem
                    self._ended = True
                    self._state.notify_all()
                return
            self._count("source_reconnects")
            self._retry_after(problem or f"lost the source {source.description}")

    def _read_frames(self, generation: int, source: FrameSource) -> tuple[np.ndarray | None, str | None]:
        image: np.ndarray | None = None
        # Only live sources get a deadline: a file's read includes its real-time pacing, and
        # reopening a slow file would replay it from the start.
        read: Callable[[], np.ndarray | None] = (
            (lambda: self._timed(generation, "read", source.read)) if source.live else source.read
        )
        try:
            while self._current(generation):
                started = time.monotonic()
                image = read()
                if image is None:
                    return None, None
                captured = time.monotonic()
                if not self._current(generation):
                    return image, None
                self._backoff.reset()
                if not self._deliver(generation, image, captured, captured - started):
                    return image, None
        except AgentError as exc:
            return None, f"the source failed ({exc.message})"
        except Exception as exc:  # noqa: BLE001 - cv2.error and OSError from a dying capture
            return None, f"the source failed ({type(exc).__name__}: {exc})"
        return image, None

    def _retry_after(self, problem: str) -> None:
        delay = self._backoff.next()
        self._log(f"{problem}; reconnecting in {delay:.1f} s")
        self._stop.wait(delay)

    def _deliver(self, generation: int, image: np.ndarray, captured: float, grab_s: float) -> bool:
        with self._state:
            if not self._current(generation):
                # An abandoned capture's late frame is stale by definition.
                return False
            if self._drop == "latest":
                if self._frames:
                    self._frames.clear()
                    self._count("frames_dropped")
            else:
                while len(self._frames) >= EVERY_QUEUE and self._current(generation):
                    self._state.wait(0.2)
                if not self._current(generation):
                    return False
            self._frames.append(Frame(self._index, captured, grab_s, image))
            self._index += 1
            self._state.notify_all()
            return True

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            with self._state:
                call = self._call
                if call is None or call.generation != self._generation:
                    continue
                limit = self._limits[call.what]
                if time.monotonic() - call.started <= limit:
                    continue
                self._generation += 1
                self._call = None
                self._stuck.add(call.generation)
                generation = self._generation
                spawn = len(self._stuck) <= MAX_STUCK
                self._respawn_pending = not spawn
            self._count("source_reconnects")
            if spawn:
                self._log(f"the source did not answer a {call.what} within {limit:g} s; abandoning it and reconnecting")
                self._spawn_reader(generation, after_backoff=True)
            else:
                self._log(
                    f"the source did not answer a {call.what} within {limit:g} s and {len(self._stuck)} captures are "
                    "stuck in the driver; the next is tried when one returns (systemd's watchdog restarts the service "
                    "if none does)"
                )
