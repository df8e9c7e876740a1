"""``edgekit facts HOST``: what a device is, and which profile edgekit would use for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from edgekit.cli.connect import (
    JsonOption,
    ProfileOption,
    TargetArgument,
    device_command,
    read_device,
)
from edgekit.cli.output import console, print_json

if TYPE_CHECKING:
    from edgekit.api import Endpoint, FactsReport
    from edgekit.device.facts import CudaRuntimeFacts, TensorRTFacts


@device_command
def facts_command(
    target: TargetArgument,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
    *,
    device: Endpoint,
) -> None:
    """Read a device's facts (module, L4T, TensorRT, cameras, disk) without changing it."""
    from edgekit import api

    report = read_device(target, lambda: api.facts(device, profile))
    if as_json:
        print_json(report.to_dict())
    else:
        _table(report)


def _gpu(runtime: CudaRuntimeFacts) -> str:
    """What the CUDA runtime answered, as the TensorRT backend will ask it."""
    if not runtime.library:
        return "no libcudart"
    found = runtime.error or (
        f"compute {runtime.compute_capability}, {runtime.devices} GPU(s)" if runtime.devices else "no GPU"
    )
    return f"{found} (libcudart {runtime.version or '?'}, {runtime.library})"


def _tensorrt(tensorrt: TensorRTFacts) -> str:
    return tensorrt.python or (f"{tensorrt.package} (not importable)" if tensorrt.package else "none")


def _table(report: FactsReport) -> None:
    facts = report.facts
    jetson, cv2, elements = facts.jetson, facts.cv2, facts.gstreamer_elements
    disk, memory = facts.disk, facts.memory
    rows = [
        ("model", jetson.model or "not a Jetson (no device-tree model)"),
        ("SoC / module", f"{jetson.soc or '?'} / {', '.join(jetson.board_ids) or '?'}"),
        ("L4T", f"{jetson.l4t or '?'} (from {jetson.l4t_source or 'nowhere'})"),
        ("JetPack", jetson.jetpack or "nvidia-jetpack not installed"),
        ("TensorRT", _tensorrt(facts.tensorrt)),
        ("CUDA", facts.cuda or "none"),
        ("GPU", _gpu(facts.cuda_runtime)),
        ("Python", f"{facts.python.version} ({facts.python.executable})"),
        ("OpenCV", "none" if cv2 is None else f"{cv2.version}, GStreamer {'yes' if cv2.gstreamer else 'no'}"),
        (
            "GStreamer",
            "no gst-inspect-1.0"
            if elements is None
            else ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in elements.items()),
        ),
        ("cameras", ", ".join(facts.cameras.nodes()) or "none"),
        ("disk", f"{_mib(disk.free_bytes)} MiB free of {_mib(disk.total_bytes)} MiB at {disk.path}"),
        ("memory", f"{_mib(memory.available_bytes)} MiB available of {_mib(memory.total_bytes)} MiB"),
        ("systemd", "yes" if facts.systemd else "no"),
        ("profile", f"{report.profile} ({report.how})" if report.profile else str(report.profile_error)),
    ]
    table = Table(title=report.target, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")


def _mib(size: int | None) -> str:
    return "?" if size is None else str(size // 2**20)
