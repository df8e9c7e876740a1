"""The camera service: one classification record per frame, supervised by systemd.

Run as a ``Type=notify`` unit: READY=1 is sent only once a real frame went through the
model, and WATCHDOG=1 only from the frame loop, so a hung camera or runtime gets the unit
restarted instead of sitting "active" while producing nothing.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator

import numpy as np

from .backends import Backend, load_backend
from .config import Release, SiteConfig, load_release, load_site_config
from .errors import AgentError
from .postprocess import classify
from .preprocess import preprocess
from .results import ResultWriter
from .sdnotify import notify, watchdog_interval
from .sources import FrameSource, open_source

FPS_WINDOW = 30
STATUS_PERIOD_S = 1.0
# While the model loads (an engine build can take many minutes on a small Jetson), systemd's
# start timeout is pushed out in steps; a load stuck past the cap still times out.
EXTEND_PERIOD_S = 10.0
EXTEND_CAP_S = 3600.0


def run_inference(backend: Backend, release: Release, tensor: np.ndarray) -> list[np.ndarray]:
    return backend.infer({release.preprocess.input_name: tensor})


def run_postprocess(outputs: list[np.ndarray], release: Release, topk: int) -> list[dict[str, Any]]:
    return classify(outputs[0], release.labels, topk)


def process_frame(
    frame: np.ndarray, release: Release, backend: Backend, topk: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Classify one frame; returns the top-k and each stage's latency in ms."""
    started = time.perf_counter()
    tensor = preprocess(frame, release.preprocess)
    preprocessed = time.perf_counter()
    outputs = run_inference(backend, release, tensor)
    inferred = time.perf_counter()
    top = run_postprocess(outputs, release, topk)
    finished = time.perf_counter()
    latency = {
        "pre": _ms(preprocessed - started),
        "infer": _ms(inferred - preprocessed),
        "post": _ms(finished - inferred),
        "total": _ms(finished - started),
    }
    return top, latency


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class FpsMeter:
    """Frames per second over the last few frames, so it follows load changes quickly."""

    def __init__(self, window: int = FPS_WINDOW) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=window)

    def tick(self) -> float | None:
        self._times.append(time.monotonic())
        span = self._times[-1] - self._times[0]
        if span <= 0.0:
            return None
        return round((len(self._times) - 1) / span, 1)


class Heartbeat:
    """What systemd hears from the frame loop: READY, STATUS and WATCHDOG pings."""

    def __init__(self) -> None:
        self._watchdog = watchdog_interval()
        self._last_ping: float | None = None
        self._last_status: float | None = None

    def frame_done(self, fps: float | None, latency_ms: float) -> None:
        now = time.monotonic()
        status = "STATUS=fps={} latency_ms={:.2f}".format("-" if fps is None else fps, latency_ms)
        if self._last_status is None:
            notify("READY=1\n" + status)
            self._last_status = now
        elif now - self._last_status >= STATUS_PERIOD_S:
            notify(status)
            self._last_status = now
        if self._watchdog is not None and (self._last_ping is None or now - self._last_ping >= self._watchdog):
            notify("WATCHDOG=1")
            self._last_ping = now


class StopRequest:
    """Signal handler that only records the signal, so the current frame is finished."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum


def _log(message: str) -> None:
    # stdout carries only result records; people read stderr (both end up in the journal).
    print("edgekit-agent: " + message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def extending_start_timeout(period_s: float = EXTEND_PERIOD_S, cap_s: float = EXTEND_CAP_S) -> Iterator[None]:
    """Keep systemd's start timeout three periods ahead while the body runs, up to ``cap_s``."""
    done = threading.Event()
    deadline = time.monotonic() + cap_s

    def extend() -> None:
        while time.monotonic() < deadline:
            notify(f"EXTEND_TIMEOUT_USEC={int(period_s * 3 * 1e6)}")
            if done.wait(period_s):
                return

    thread = threading.Thread(target=extend, name="extend-start-timeout", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _load_log(line: str) -> None:
    _log(line)
    notify("STATUS=" + line)


def _start(
    config_path: str, engines_dir: str, stack: contextlib.ExitStack
) -> tuple[SiteConfig, Release, Backend, FrameSource, ResultWriter]:
    site = load_site_config(config_path)
    release = load_release(site.release_dir)
    notify(f"STATUS=loading release {release.release}")
    with extending_start_timeout():
        backend = load_backend(release, engines_dir, _load_log)
    stack.callback(backend.close)
    source = open_source(site.source._asdict())
    stack.callback(source.close)
    writer = ResultWriter(site.results.path, site.results.max_bytes, site.results.backups)
    stack.callback(writer.close)
    return site, release, backend, source, writer


def _loop(
    site: SiteConfig,
    release: Release,
    backend: Backend,
    source: FrameSource,
    writer: ResultWriter,
    stop: StopRequest,
) -> None:
    meter = FpsMeter()
    heartbeat = Heartbeat()
    frames = 0
    while stop.signum is None:
        frame = source.read()
        if frame is None:
            _log(f"source {site.source.uri} ended after {frames} frames")
            return
        top, latency = process_frame(frame, release, backend, site.topk)
        fps = meter.tick()
        writer.write(
            {
                "ts": round(time.time(), 3),
                "frame": frames,
                "release": release.release,
                "pid": os.getpid(),
                "latency_ms": latency,
                "fps": fps,
                "top": top,
            }
        )
        frames += 1
        heartbeat.frame_done(fps, latency["total"])
    _log(f"stopping on signal {stop.signum} after {frames} frames")


def serve(config_path: str, engines_dir: str) -> int:
    """Run the camera loop until a signal or the end of the source; 1 on an AgentError."""
    stop = StopRequest()
    with contextlib.ExitStack() as stack:
        try:
            site, release, backend, source, writer = _start(config_path, engines_dir, stack)
            for signum in (signal.SIGTERM, signal.SIGINT):
                stack.callback(signal.signal, signum, signal.signal(signum, stop))
            _loop(site, release, backend, source, writer, stop)
        except AgentError as exc:
            print(json.dumps(exc.to_dict()), flush=True)
            return 1
        notify("STOPPING=1")
    return 0
