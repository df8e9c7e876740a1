"""The frame pipeline: capture, preprocessing, inference and postprocessing overlap.

Each stage runs in its own thread and hands over to the next through a queue of at most
``depth`` items, so the engine always has its next tensor ready while the previous result
is postprocessed, and a slow stage makes the stages before it wait (or, for a live camera,
skip frames) instead of letting memory grow. cv2, numpy and the inference runtimes release
the GIL in their heavy calls, which is what lets the threads run at once.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, NamedTuple

import numpy as np

from .errors import AgentError
from .grabber import Frame, Grabber

DEPTH = 2
POLL_S = 0.2
# A stage is at most one frame's work from seeing the stop.
STOP_TIMEOUT_S = 5.0


class Inferred(NamedTuple):
    frame: Frame
    outputs: list[np.ndarray]
    pre_s: float
    infer_s: float


class SourceEnded(Exception):
    """The source was a file that has been read to its end."""


class _Failed(NamedTuple):
    error: BaseException


_END = object()


class Pipeline:
    """Frames from ``grabber`` through ``prepare`` and ``infer``; ``next`` yields the results."""

    def __init__(
        self,
        grabber: Grabber,
        prepare: Callable[[np.ndarray], np.ndarray],
        infer: Callable[[np.ndarray], list[np.ndarray]],
        depth: int = DEPTH,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self._grabber = grabber
        self._prepare = prepare
        self._infer = infer
        self._prepared: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._inferred: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._stop_timeout_s = stop_timeout_s
        self._threads = [
            threading.Thread(target=self._guarded, args=(self._preprocess_stage, self._prepared), name="pre"),
            threading.Thread(target=self._guarded, args=(self._infer_stage, self._inferred), name="infer"),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def next(self, timeout: float) -> Inferred | None:
        """The next inferred frame, or None if none came within ``timeout``.

        Raises SourceEnded at the end of a file, and a stage's own exception if it failed.
        """
        try:
            item = self._inferred.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            raise SourceEnded()
        if isinstance(item, _Failed):
            raise item.error
        assert isinstance(item, Inferred)
        return item

    def close(self) -> bool:
        """Stops the stages; False if one is still running (an engine call that hangs)."""
        self._stop.set()
        self._grabber.close()
        deadline = time.monotonic() + self._stop_timeout_s
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _guarded(self, stage: Callable[[], None], output: queue.Queue[Any]) -> None:
        try:
            stage()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which decides
            self._put(output, _Failed(exc))

    def _put(self, output: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                output.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _preprocess_stage(self) -> None:
        while not self._stop.is_set():
            frame = self._grabber.get(POLL_S)
            if frame is None:
                if self._grabber.ended:
                    failure = self._grabber.failure
                    # A file that failed part-way is an error (exit 1, restarted), not an end.
                    self._put(self._prepared, _Failed(AgentError("source", failure)) if failure else _END)
                    return
                continue
            started = time.perf_counter()
            tensor = self._prepare(frame.image)
            if not self._put(self._prepared, (frame, tensor, time.perf_counter() - started)):
                return

    def _infer_stage(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._prepared.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is _END or isinstance(item, _Failed):
                self._put(self._inferred, item)
                return
            frame, tensor, pre_s = item
            started = time.perf_counter()
            outputs = self._infer(tensor)
            if not self._put(self._inferred, Inferred(frame, outputs, pre_s, time.perf_counter() - started)):
                return
