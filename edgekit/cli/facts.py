"""``edgekit facts HOST``: what a device is, and which profile edgekit would use for it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from edgekit.cli.connect import (
    AcceptNewHostKeyOption,
    IdentityOption,
    JsonOption,
    KnownHostsOption,
    ProfileOption,
    SshConfigOption,
    TargetArgument,
    endpoint,
    read_device,
)
from edgekit.cli.output import console, print_json
from edgekit.ssh.seam import DEFAULT_KNOWN_HOSTS


def facts_command(
    target: TargetArgument,
    profile: ProfileOption = None,
    identity: IdentityOption = None,
    known_hosts: KnownHostsOption = DEFAULT_KNOWN_HOSTS,
    accept_new_host_key: AcceptNewHostKeyOption = False,
    ssh_config: SshConfigOption = True,
    as_json: JsonOption = False,
) -> None:
    """Read a device's facts (module, L4T, TensorRT, cameras, disk) without changing it."""
    from edgekit import api

    device = endpoint(target, identity, known_hosts, accept_new_host_key, ssh_config)
    answer = read_device(target, lambda: api.facts(device, profile)).to_dict()
    if as_json:
        print_json(answer)
    else:
        _table(answer)


def _gpu(runtime: dict[str, Any]) -> str:
    """What the CUDA runtime answered, as the TensorRT backend will ask it."""
    if not runtime.get("library"):
        return "no libcudart"
    found = runtime.get("error") or (
        f"compute {runtime['compute_capability']}, {runtime['devices']} GPU(s)" if runtime.get("devices") else "no GPU"
    )
    return f"{found} (libcudart {runtime.get('version') or '?'}, {runtime['library']})"


def _table(answer: dict[str, Any]) -> None:
    facts = answer["facts"]
    jetson, tensorrt, cv2 = facts["jetson"], facts.get("tensorrt") or {}, facts.get("cv2")
    elements = facts.get("gstreamer_elements")
    cameras = facts.get("cameras") or {}
    disk, memory = facts["disk"], facts["memory"]
    rows = [
        ("model", jetson.get("model") or "not a Jetson (no device-tree model)"),
        ("SoC / module", f"{jetson.get('soc') or '?'} / {', '.join(jetson.get('board_ids') or []) or '?'}"),
        ("L4T", f"{jetson.get('l4t') or '?'} (from {jetson.get('l4t_source') or 'nowhere'})"),
        ("JetPack", jetson.get("jetpack") or "nvidia-jetpack not installed"),
        (
            "TensorRT",
            tensorrt.get("python")
            or (f"{tensorrt['package']} (not importable)" if tensorrt.get("package") else "none"),
        ),
        ("CUDA", facts.get("cuda") or "none"),
        ("GPU", _gpu(facts.get("cuda_runtime") or {})),
        ("Python", f"{facts['python']['version']} ({facts['python']['executable']})"),
        ("OpenCV", "none" if cv2 is None else f"{cv2['version']}, GStreamer {'yes' if cv2['gstreamer'] else 'no'}"),
        (
            "GStreamer",
            "no gst-inspect-1.0"
            if elements is None
            else ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in elements.items()),
        ),
        ("cameras", ", ".join([*cameras.get("video", []), *cameras.get("by_id", {})]) or "none"),
        ("disk", f"{_mib(disk['free_bytes'])} MiB free of {_mib(disk['total_bytes'])} MiB at {disk['path']}"),
        ("memory", f"{_mib(memory.get('available_bytes'))} MiB available of {_mib(memory.get('total_bytes'))} MiB"),
        ("systemd", "yes" if facts.get("systemd") else "no"),
        ("profile", f"{answer['profile']} ({answer['how']})" if answer["profile"] else answer["profile_error"]),
    ]
    table = Table(title=answer["target"], show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for note in answer["notes"]:
        console.print(f"[yellow]note:[/] {note}")


def _mib(size: int | None) -> str:
    return "?" if size is None else str(size // 2**20)
