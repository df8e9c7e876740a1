"""Where the camera service sends its results besides the journal and the results file, and
where it serves its metrics."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from edgekit.agent.config import MAX_PORT
from edgekit.errors import UsageError

MQTT_PORT = 1883


def http_sink(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--http-sink {url!r} is not an http:// or https:// URL; use e.g. http://192.0.2.5:8080/results."
        )
    return {"url": url}


def mqtt_sink(url: str) -> dict[str, Any]:
    """``mqtt://host[:port]/topic/levels`` as the agent's mqtt section."""
    parts = urlsplit(url)
    fix = "use mqtt://host[:port]/topic, e.g. mqtt://192.0.2.5/plant/line1"
    if parts.scheme != "mqtt" or not parts.hostname:
        raise UsageError(f"--mqtt-sink {url!r} is not an mqtt:// URL; {fix}.")
    topic = parts.path.lstrip("/")
    # urlsplit reads a "#" wildcard as a fragment, so the whole URL is checked for it.
    if not topic or "+" in topic or "#" in url:
        raise UsageError(f"--mqtt-sink {url!r} names no topic to publish to (wildcards are for subscribers); {fix}.")
    try:
        port = parts.port or MQTT_PORT
    except ValueError:
        raise UsageError(f"--mqtt-sink {url!r} has an invalid port; {fix}.") from None
    return {"host": parts.hostname, "port": port, "topic": topic}


def outputs(http: str | None, mqtt: str | None, metrics_port: int | None = None) -> dict[str, Any]:
    """The camera.json sections for the sinks asked for (absent ones are switched off), and
    the metrics port when it is not the default."""
    sections: dict[str, Any] = {
        "http": http_sink(http) if http else None,
        "mqtt": mqtt_sink(mqtt) if mqtt else None,
    }
    if metrics_port is not None:
        if not 1 <= metrics_port <= MAX_PORT:
            raise UsageError(f"--metrics-port {metrics_port} is not a TCP port; use 1 to {MAX_PORT}.")
        sections["metrics"] = {"port": metrics_port}
    return sections
