"""The camera service: one result record per frame, supervised by systemd.

Run as a ``Type=notify`` unit: READY=1 is sent only once a real frame went through the
model, and WATCHDOG=1 only from the frame loop for fresh frames, so a hung camera or
runtime gets the unit restarted instead of sitting "active" while producing nothing.
Capture, preprocessing, inference and postprocessing overlap (pipeline.py); the grabber
reconnects a lost source on its own (grabber.py) and systemd restarts what it cannot.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator, NamedTuple

from .backends import Backend, load_backend
from .config import Release, SiteConfig, load_release, load_site_config
from .drift import DriftWindow
from .errors import AgentError, CameraUnavailable
from .grabber import Grabber
from .metrics import Metrics, MetricsServer
from .pipeline import Inferred, Pipeline, SourceEnded
from .postprocess import Postprocess, make_postprocess
from .preprocess import preprocess
from .redact import mask_url
from .results import ResultWriter
from .samples import SampleRing
from .sdnotify import notify, watchdog_interval
from .sinks import Sink, open_sinks
from .sources import FrameSource, open_source

STATUS_PERIOD_S = 1.0
# While the model loads (an engine build can take many minutes on a small Jetson), systemd's
# start timeout is pushed out in steps; a load stuck past the cap still times out.
EXTEND_PERIOD_S = 10.0
EXTEND_CAP_S = 3600.0
# How often the frame loop wakes without a result, to notice a stop request.
WAIT_S = 0.5


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class Heartbeat:
    """What systemd hears from the frame loop: READY, STATUS and WATCHDOG pings."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._watchdog = watchdog_interval()
        self._last_ping: float | None = None
        self._last_status: float | None = None

    def frame_done(self, fps: float | None) -> None:
        now = time.monotonic()
        if self._last_status is None or now - self._last_status >= STATUS_PERIOD_S:
            notify(("READY=1\n" if self._last_status is None else "") + "STATUS=" + self.status(fps))
            self._last_status = now
        if self._watchdog is not None and (self._last_ping is None or now - self._last_ping >= self._watchdog):
            notify("WATCHDOG=1")
            self._last_ping = now

    def status(self, fps: float | None) -> str:
        snapshot = self._metrics.snapshot()
        latency = snapshot["latency_ms"].get("total", {})
        counters = snapshot["counters"]
        return "fps={} latency_ms={} dropped={} reconnects={}".format(
            "-" if fps is None else fps,
            latency.get("p50", "-"),
            counters.get("frames_dropped", 0),
            counters.get("source_reconnects", 0),
        )


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


class BackendOwner:
    """Closes the backend at shutdown, unless an inference may still be running on it:
    TensorRT would then read buffers that were just freed. The process exit frees them."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.in_use = False

    def close(self) -> None:
        if self.in_use:
            _log("inference did not stop in time; its buffers are left to the process exit")
            return
        self.backend.close()


def stop_pipeline(pipeline: Pipeline, owner: BackendOwner) -> None:
    owner.in_use = not pipeline.close()


class Service(NamedTuple):
    site: SiteConfig
    release: Release
    metrics: Metrics
    pipeline: Pipeline
    postprocess: Postprocess
    writer: ResultWriter
    sinks: list[Sink]
    samples: SampleRing | None
    # None for a release without drift.json (made by an older edgekit): no drift is reported.
    drift: DriftWindow | None = None


def _start(config_path: str, engines_dir: str, stack: contextlib.ExitStack) -> Service:
    """Everything the loop needs, each closed by ``stack`` in reverse order of opening."""
    site = load_site_config(config_path)
    release = load_release(site.release_dir)
    notify(f"STATUS=loading release {release.release}")
    with extending_start_timeout():
        backend = load_backend(release, engines_dir, _load_log)
    owner = BackendOwner(backend)
    stack.callback(owner.close)
    metrics = Metrics()
    # The pid lets `edgekit status` tell this service's metrics from another process's.
    metrics.set_info(release=release.release, task=release.task, backend=release.backend, pid=str(os.getpid()))
    if site.metrics is not None:
        try:
            # The port is bound here, when the server is made: a clash surfaces here, not at start().
            server = MetricsServer(metrics, site.metrics.port)
            server.start()
        except AgentError as exc:
            # Metrics are for people; a port clash must not take the camera down with it.
            _log(f"metrics not served: {exc.message}")
        else:
            stack.callback(server.close)
    # Opened here, not in the grabber, so a wrong URI or a missing file fails the start
    # with its own message instead of being retried in the background; a camera that is
    # merely away is waited for.
    try:
        first: FrameSource | None = open_source(site.source, site.camera)
    except CameraUnavailable as exc:
        # Waiting while still activating (no READY, so the start timeout runs) paces restarts
        # to one per TimeoutStartSec while the camera is away, instead of one per RestartSec.
        _log(f"waiting for the camera: {exc.message}")
        notify(f"STATUS=waiting for the camera: {exc.message}")
        first = None
    metrics.set_info(source=first.description if first is not None else mask_url(site.source.uri))
    # Only live sources can be unavailable; files are there or are a config error.
    live = first.live if first is not None else True
    drop = site.source.drop or ("latest" if live else "every")
    grabber = Grabber(
        lambda: open_source(site.source, site.camera), drop, site.source.read_timeout_s, _log, metrics.add
    )
    grabber.start(first)
    pipeline = Pipeline(grabber, lambda image: preprocess(image, release.preprocess), _inference(backend, release))
    pipeline.start()
    stack.callback(stop_pipeline, pipeline, owner)
    writer = ResultWriter(site.results.path, site.results.max_bytes, site.results.backups, log=_log)
    stack.callback(writer.close)
    sinks = open_sinks(site, _log, metrics.add)
    for sink in sinks:
        stack.callback(sink.close)
    samples = SampleRing(site.samples, _log) if site.samples is not None else None
    postprocess = make_postprocess(release, backend.output_names, site.topk)
    drift = DriftWindow.for_release(release)
    if drift is None:
        _log(f"no drift reference in {release.release_dir}; input drift is not measured")
    return Service(site, release, metrics, pipeline, postprocess, writer, sinks, samples, drift)


def _inference(backend: Backend, release: Release) -> Any:
    name = release.preprocess.input_name
    return lambda tensor: backend.infer({name: tensor})


def _record(service: Service, inferred: Inferred) -> dict[str, Any]:
    frame = inferred.frame
    started = time.perf_counter()
    result = service.postprocess(inferred.outputs, frame.image.shape[:2])
    post_s = time.perf_counter() - started
    metrics = service.metrics
    for stage, seconds in (("grab", frame.grab_s), ("pre", inferred.pre_s), ("infer", inferred.infer_s)):
        metrics.observe(stage, seconds)
    metrics.observe("post", post_s)
    # Capture to result, queues included: how old the scene is when its result appears.
    total_s = time.monotonic() - frame.captured
    metrics.observe("total", total_s)
    record: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "frame": frame.number,
        "release": service.release.release,
        "pid": os.getpid(),
        "latency_ms": {
            "grab": _ms(frame.grab_s),
            "pre": _ms(inferred.pre_s),
            "infer": _ms(inferred.infer_s),
            "post": _ms(post_s),
            "total": _ms(total_s),
        },
    }
    record.update(result)
    return record


def _publish(service: Service, record: dict[str, Any]) -> None:
    line = service.writer.write(record)
    for sink in service.sinks:
        sink.publish(line)


def _watch_drift(service: Service, inferred: Inferred) -> None:
    """Where the frame and its outputs meet: every drift.EVERY-th frame joins the window."""
    if service.drift is None:
        return
    drift = service.drift.offer(inferred.frame.image, inferred.outputs)
    if drift is not None:
        service.metrics.set_drift(drift.score, drift.samples, drift.window, drift.threshold, drift.components)


def _loop(service: Service, stop: StopRequest) -> None:
    heartbeat = Heartbeat(service.metrics)
    frames = 0
    while stop.signum is None:
        try:
            inferred = service.pipeline.next(WAIT_S)
        except SourceEnded:
            _log(f"source {service.site.source.uri} ended after {frames} frames")
            return
        if inferred is None:
            continue
        record = _record(service, inferred)
        fps = service.metrics.frame_done()
        record["fps"] = fps
        _publish(service, record)
        if service.samples is not None:
            service.samples.offer(inferred.frame.image)
        _watch_drift(service, inferred)
        frames += 1
        heartbeat.frame_done(fps)
    _log(f"stopping on signal {stop.signum} after {frames} frames")


def serve(config_path: str, engines_dir: str) -> int:
    """Run the camera loop until a signal or the end of the source; 1 on an AgentError."""
    stop = StopRequest()
    with contextlib.ExitStack() as stack:
        try:
            service = _start(config_path, engines_dir, stack)
            # Only now: until the loop runs, the default action (exit at once) is the clean stop.
            for signum in (signal.SIGTERM, signal.SIGINT):
                stack.callback(signal.signal, signum, signal.signal(signum, stop))
            _loop(service, stop)
        except AgentError as exc:
            print(json.dumps(exc.to_dict()), flush=True)
            return 1
        notify("STOPPING=1")
    return 0
