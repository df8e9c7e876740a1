"""The camera service's health: stage latencies, FPS and counters, served in Prometheus text format.

The pipeline threads record into one ``Metrics``; a ``MetricsServer`` on loopback serves
``GET /metrics`` (text exposition format 0.0.4) to the device's own scraper or an SSH tunnel,
and ``edgekit status`` reads the same text back through ``parse_prometheus``.

Latency quantiles are by nearest rank over the newest ``window`` samples of each stage:
the value at rank ceil(q * n) of the n sorted samples, so every reported quantile is a
latency that was actually measured. ``_sum`` and ``_count`` cover every sample since the
service started, as Prometheus summaries expect.
"""

from __future__ import annotations

import collections
import errno
import http.server
import math
import re
import sys
import threading
import time
from typing import Any, Callable, NamedTuple, Sequence

from .errors import AgentError

STAGES = ("grab", "pre", "infer", "post", "total")
COUNTERS = ("frames_dropped", "source_reconnects", "sink_dropped", "sink_errors")
# (label value, numerator, denominator, snapshot key): q as an exact fraction for the rank.
QUANTILES = (("0.5", 50, 100, "p50"), ("0.99", 99, 100, "p99"))
PREFIX = "edgekit_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "fps": "Results published per second over the newest frames; falls while nothing is published.",
    "frames_total": "Results published since the service started.",
    "frames_dropped_total": "Frames the source delivered that were skipped to keep up.",
    "source_reconnects_total": "Times the camera source was lost and opened again.",
    "sink_dropped_total": "Results the HTTP or MQTT sink dropped because its queue was full.",
    "sink_errors_total": "Results the HTTP or MQTT sink failed to deliver.",
    "stage_latency_seconds": "Seconds per frame in each pipeline stage; quantiles by nearest rank over recent frames.",
    "info": "The running release and its setup, as labels; the value is always 1.",
    "input_drift": "How far recent frames are from the release's calibration set, 0 to 1 (drift.py); NaN until known.",
    "input_drift_threshold": "The input drift past which the release should be recalibrated on the scene.",
    "input_drift_samples": "Frames in the input drift's window.",
    "input_drift_window": "Frames the input drift's window holds at most.",
    "input_drift_component": "Each distance the input drift is the largest of, by component.",
}
# The drift gauges' names after the prefix, and their keys in snapshot()["drift"].
_DRIFT = (
    ("input_drift", "score"),
    ("input_drift_threshold", "threshold"),
    ("input_drift_samples", "samples"),
    ("input_drift_window", "window"),
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?\s*\Z")


class Metrics:
    """Thread-safe health figures of one running camera service."""

    def __init__(self, window: int = 512, fps_window: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        if window < 1 or fps_window < 1:
            raise ValueError(f"window and fps_window must be at least 1, not {window} and {fps_window}")
        self._clock = clock
        self._lock = threading.Lock()
        self._rings: dict[str, collections.deque[float]] = {stage: collections.deque(maxlen=window) for stage in STAGES}
        self._sums = {stage: 0.0 for stage in STAGES}
        self._counts = {stage: 0 for stage in STAGES}
        # One stamp more than fps_window: fps_window frames span fps_window intervals.
        self._stamps: collections.deque[float] = collections.deque(maxlen=fps_window + 1)
        self._frames = 0
        self._counters = {name: 0 for name in COUNTERS}
        self._info: dict[str, str] = {}
        # None while the release has no drift reference (drift.json): nothing is reported.
        self._drift: dict[str, Any] | None = None

    def observe(self, stage: str, seconds: float) -> None:
        if stage not in self._rings:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        with self._lock:
            self._rings[stage].append(float(seconds))
            self._sums[stage] += seconds
            self._counts[stage] += 1

    def frame_done(self) -> float | None:
        """Count one published result; the FPS over the newest frames, or None before the second."""
        now = self._clock()
        with self._lock:
            self._frames += 1
            self._stamps.append(now)
            return _rate(self._stamps)

    def add(self, counter: str, n: int = 1) -> None:
        if counter not in self._counters:
            raise ValueError(f"unknown counter {counter!r}; expected one of {', '.join(COUNTERS)}")
        if n < 0:
            # Prometheus counters only go up; a decrease would read as a service restart.
            raise ValueError(f"counter {counter} cannot go down by {n}")
        with self._lock:
            self._counters[counter] += n

    def set_info(self, **labels: str) -> None:
        for name in labels:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a Prometheus label name")
        with self._lock:
            self._info.update((name, str(value)) for name, value in labels.items())

    def set_drift(
        self, score: float | None, samples: int, window: int, threshold: float, components: dict[str, float]
    ) -> None:
        """The input drift (None until the window holds enough frames), as drift.DriftWindow reports it."""
        drift = {"score": score, "threshold": threshold, "samples": samples, "window": window}
        with self._lock:
            self._drift = {**drift, "components": dict(components)}

    def snapshot(self) -> dict[str, Any]:
        return _snapshot(self._capture())

    def render(self) -> str:
        state = self._capture()
        snap = _snapshot(state)
        lines: list[str] = []
        _family(lines, "fps", "gauge", [("", {}, snap["fps"])])
        _family(lines, "frames_total", "counter", [("", {}, snap["frames"])])
        for counter in COUNTERS:
            _family(lines, counter + "_total", "counter", [("", {}, snap["counters"][counter])])
        latency: list[tuple[str, dict[str, str], Any]] = []
        for stage in STAGES:
            quantiles = _quantiles(state.rings[stage])
            for label, _, _, key in QUANTILES:
                latency.append(("", {"stage": stage, "quantile": label}, quantiles[key]))
            latency.append(("_sum", {"stage": stage}, state.sums[stage]))
            latency.append(("_count", {"stage": stage}, state.counts[stage]))
        _family(lines, "stage_latency_seconds", "summary", latency)
        _family(lines, "info", "gauge", [("", snap["info"], 1)])
        drift = snap["drift"]
        if drift is not None:
            for name, key in _DRIFT:
                _family(lines, name, "gauge", [("", {}, drift[key])])
            parts = [("", {"component": part}, value) for part, value in sorted(drift["components"].items())]
            if parts:
                _family(lines, "input_drift_component", "gauge", parts)
        return "\n".join(lines) + "\n"

    def _capture(self) -> _State:
        # One lock hold, so quantiles, sums and counts of a scrape describe the same frames.
        now = self._clock()
        with self._lock:
            return _State(
                now=now,
                stamps=list(self._stamps),
                rings={stage: list(ring) for stage, ring in self._rings.items()},
                sums=dict(self._sums),
                counts=dict(self._counts),
                frames=self._frames,
                counters=dict(self._counters),
                info=dict(self._info),
                drift=None if self._drift is None else dict(self._drift),
            )


class _State(NamedTuple):
    now: float
    stamps: list[float]
    rings: dict[str, list[float]]
    sums: dict[str, float]
    counts: dict[str, int]
    frames: int
    counters: dict[str, int]
    info: dict[str, str]
    drift: dict[str, Any] | None


def _snapshot(state: _State) -> dict[str, Any]:
    fps = _rate(state.stamps)
    if fps is not None and state.now > state.stamps[-1]:
        # A stalled pipeline must not keep reporting its last good rate: the wait since the
        # newest frame bounds it. A pipeline on time has waited less than its mean interval,
        # so it is unaffected.
        fps = min(fps, 1.0 / (state.now - state.stamps[-1]))
    latency_ms = {}
    for stage, samples in state.rings.items():
        # Computed as seconds * 1000 from the samples, as parse_prometheus does from the
        # rendered seconds, so a render/parse round trip gives back the very same floats.
        latency_ms[stage] = {key: _ms(value) for key, value in _quantiles(samples).items()}
    return {
        "fps": fps,
        "frames": state.frames,
        "counters": state.counters,
        "latency_ms": latency_ms,
        "info": state.info,
        "drift": state.drift,
    }


def _rate(stamps: Sequence[float]) -> float | None:
    if len(stamps) < 2:
        return None
    span = stamps[-1] - stamps[0]
    # Frames published within one clock tick have no measurable rate yet.
    return (len(stamps) - 1) / span if span > 0 else None


def _quantiles(samples: list[float]) -> dict[str, float | None]:
    """Nearest rank: the sample at 1-based rank ceil(q * n) of the n sorted ones."""
    ordered = sorted(samples)
    answer: dict[str, float | None] = {}
    for _, numerator, denominator, key in QUANTILES:
        # Integer ceiling division: q * n in floats could land a hair above a whole rank.
        rank = -(-numerator * len(ordered) // denominator)
        answer[key] = ordered[max(rank, 1) - 1] if ordered else None
    return answer


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _family(lines: list[str], name: str, kind: str, samples: list[tuple[str, dict[str, str], Any]]) -> None:
    full = PREFIX + name
    lines.append(f"# HELP {full} {_HELP[name]}")
    lines.append(f"# TYPE {full} {kind}")
    for suffix, labels, value in samples:
        lines.append(f"{full}{suffix}{_labels(labels)} {_number(value)}")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = (f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + ",".join(pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    if value is None:
        # Prometheus' own client writes NaN for a quantile of no samples.
        return "NaN"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    # repr is the shortest text that reads back as the same float.
    return repr(float(value))


def parse_prometheus(text: str) -> dict[str, Any]:
    """The snapshot() a rendered text came from; unknown metrics are skipped, bad lines raise ValueError."""
    snap: dict[str, Any] = {"fps": None, "frames": 0, "counters": {}, "info": {}, "drift": None}
    latency: dict[str, dict[str, float | None]] = {}
    keys = {label: key for label, _, _, key in QUANTILES}
    drift_keys = dict(_DRIFT)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _SAMPLE.match(line)
        if found is None:
            raise ValueError(f"line {number} is not a Prometheus sample: {line[:80]!r}")
        name, label_text, value_text = found.groups()
        labels = _parse_labels(label_text[1:-1], number) if label_text else {}
        value = _parse_number(value_text, number)
        if not name.startswith(PREFIX):
            continue
        name = name[len(PREFIX) :]
        if name == "fps":
            snap["fps"] = value
        elif name == "frames_total":
            snap["frames"] = _count(value)
        elif name == "info":
            snap["info"] = labels
        elif name in drift_keys or name == "input_drift_component":
            drift = snap["drift"] = snap["drift"] or {"score": None, "components": {}}
            if name in drift_keys:
                drift[drift_keys[name]] = value if drift_keys[name] in ("score", "threshold") else _count(value)
            elif "component" in labels and value is not None:
                drift["components"][labels["component"]] = value
        elif name == "stage_latency_seconds" and "stage" in labels and labels.get("quantile") in keys:
            stage = latency.setdefault(labels["stage"], {key: None for _, _, _, key in QUANTILES})
            stage[keys[labels["quantile"]]] = None if value is None else value * 1000.0
        elif name.endswith("_total"):
            snap["counters"][name[: -len("_total")]] = _count(value)
    snap["latency_ms"] = latency
    return snap


def _parse_labels(text: str, number: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    position = 0
    while text[position:].strip():
        equals = text.find("=", position)
        name = text[position:equals].strip() if equals >= 0 else ""
        quote = len(text) - len(text[equals + 1 :].lstrip()) if equals >= 0 else len(text)
        if not _LABEL_NAME.match(name) or text[quote : quote + 1] != '"':
            raise ValueError(f"line {number} has a malformed label set: {text[:80]!r}")
        value: list[str] = []
        position = quote + 1
        while True:
            if position >= len(text):
                raise ValueError(f"line {number} has an unterminated label value: {text[:80]!r}")
            char = text[position]
            if char == "\\" and position + 1 < len(text):
                escaped = text[position + 1]
                value.append("\n" if escaped == "n" else escaped)
                position += 2
            elif char == '"':
                position += 1
                break
            else:
                value.append(char)
                position += 1
        labels[name] = "".join(value)
        rest = text[position:].lstrip()
        if rest and not rest.startswith(","):
            raise ValueError(f"line {number} has a malformed label set: {text[:80]!r}")
        # Past the comma; a trailing comma before the brace is allowed.
        position = len(text) - len(rest) + 1
    return labels


def _parse_number(text: str, number: int) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"line {number} has no number for its value: {text!r}") from None
    return None if math.isnan(value) else value


def _count(value: float | None) -> int:
    return 0 if value is None else int(value)


class MetricsServer:
    """``GET /metrics`` on a loopback port, answered from a daemon thread."""

    def __init__(self, metrics: Metrics, port: int, host: str = "127.0.0.1") -> None:
        handler = type("Handler", (_Handler,), {"metrics": metrics})
        try:
            self._server = _Server((host, port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AgentError(
                    "metrics",
                    f"Port {port} on {host} is already in use, so the metrics cannot be served; "
                    "pick another metrics.port in /etc/edgekit/camera.json or stop what holds it.",
                ) from None
            raise AgentError(
                "metrics",
                f"Cannot serve metrics on {host}:{port} ({exc.strerror or exc}); "
                "pick another metrics.port in /etc/edgekit/camera.json (1024 or above) or set metrics to null.",
            ) from None
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        # shutdown() waits for serve_forever to finish, so it would hang if it never started.
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper that hangs up early is no fault of the service; anything else is a bug
        # and keeps its traceback in the journal.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    metrics: Metrics

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/metrics":
            self._answer(200, CONTENT_TYPE, self.metrics.render().encode("utf-8"))
        else:
            self._answer(404, "text/plain; charset=utf-8", b"Not found; the metrics are at /metrics.\n")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per scrape would flood the journal; the service logs what matters itself.
        pass
