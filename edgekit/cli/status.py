"""``edgekit status HOST``: is the camera service up, and how fast and how well is it running."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from edgekit.cli.connect import (
    JsonOption,
    TargetArgument,
    device_command,
    read_device,
)
from edgekit.cli.output import console, print_json
from edgekit.device.layout import UNIT_NAME

# Past the input drift's threshold (edgekit.agent.drift): INT8 ranges fit another scene.
RECALIBRATE = "the scene differs from the calibration data; run `edgekit calibrate HOST --from-device`"

# The metrics parser shares its module with the service's HTTP server, and http.server (with
# http.client and ssl behind it) costs every other command more than it takes to run.
if TYPE_CHECKING:
    from edgekit.api import Endpoint
    from edgekit.device.status import DeviceStatus


@device_command
def status_command(
    target: TargetArgument,
    as_json: JsonOption = False,
    *,
    device: Endpoint,
) -> None:
    """Show the camera service's state, FPS, drops and per-stage latency, without changing anything."""
    from edgekit import api

    status = read_device(target, lambda: api.status(device))
    if as_json:
        print_json(status.to_dict())
    else:
        _table(status)


def _table(status: DeviceStatus) -> None:
    from edgekit.agent.metrics import STAGES

    state = f"{status.active_state} ({status.sub_state})"
    rows: list[tuple[str, str]] = [
        ("state", state if status.active_state == "active" else f"[red]{escape(state)}[/]"),
        ("PID", str(status.main_pid) if status.main_pid else "none"),
        ("restarts", _text(status.restarts)),
        ("status", escape(status.status_text) or "-"),
    ]
    metrics = status.metrics
    if metrics is None:
        rows.append(("metrics", f"[yellow]missing:[/] {escape(status.metrics_missing or 'unknown reason')}"))
    else:
        counters: dict[str, Any] = metrics["counters"]
        fps = metrics["fps"]
        rows += [
            ("FPS", "-" if fps is None else f"{fps:.1f}"),
            ("frames", _text(metrics["frames"])),
            ("dropped frames", _text(counters.get("frames_dropped"))),
            ("source reconnects", _text(counters.get("source_reconnects"))),
            ("sink drops / errors", f"{_text(counters.get('sink_dropped'))} / {_text(counters.get('sink_errors'))}"),
        ]
        latency: dict[str, dict[str, float | None]] = metrics["latency_ms"]
        for stage in [*STAGES, *sorted(set(latency) - set(STAGES))]:
            if stage in latency:
                quantiles = latency[stage]
                rows.append((f"{stage} p50 / p99", f"{_ms(quantiles.get('p50'))} / {_ms(quantiles.get('p99'))}"))
        rows.append(("input drift", _drift(metrics.get("drift"))))
        info: dict[str, str] = metrics["info"]
        rows.append(("release", escape(info.get("release") or "unknown")))
        rows += [(name, escape(value)) for name, value in sorted(info.items()) if name != "release"]
    rows += _release_rows(status)
    table = Table(title=f"{escape(status.target)}: {UNIT_NAME}", show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _release_rows(status: DeviceStatus) -> list[tuple[str, str]]:
    """The release serving, on trial or committed, its gate and the last rollback."""
    state = status.lifecycle
    if state is None:
        return [("lifecycle", "none recorded (provision with this edgekit to start release trials)")]
    now = state.trial
    if now is not None and now.release == state.current:
        standing = f"[yellow]on trial[/]: {now.produced} of {now.results} results by {_when(now.deadline)}"
    else:
        standing = escape(state.current_state or "served before trials")
    rows = [("lifecycle", f"{escape(state.current or 'none')} {standing}")]
    if state.gate is not None and state.task is not None:
        measure, figure = state.gate.measured(state.task)
        rows.append(("gate", f"{measure} {'-' if figure is None else f'{figure:.4g}'} on {state.gate.samples} samples"))
    rows.append(("previous", escape(state.previous or "none")))
    rolled = state.last_rollback
    if rolled is not None:
        rows.append(
            (
                "last rollback",
                f"{_when(rolled.at)}: {escape(rolled.release or '?')} -> {escape(rolled.to)} by the {rolled.by}, "
                f"because {escape(rolled.reason)}",
            )
        )
    return rows


def _drift(drift: dict[str, Any] | None) -> str:
    """The input drift against its threshold, with the fix once it is past it (edgekit.agent.drift)."""
    if drift is None:
        return "not measured (the release has no drift reference: provision it with this edgekit)"
    score, threshold = drift.get("score"), drift.get("threshold")
    if score is None:
        return f"- (window filling: {_text(drift.get('samples'))} frames)"
    shown = f"{score:.2f} (threshold {'?' if threshold is None else f'{threshold:.2f}'})"
    if threshold is not None and score > threshold:
        return f"[yellow]{shown}[/]: {escape(RECALIBRATE)}"
    return shown


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _text(value: int | None) -> str:
    return "?" if value is None else str(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
