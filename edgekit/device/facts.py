"""Asking a device what it is, without writing anything on it.

The agent's facts module (edgekit/agent/facts.py) answers in JSON; ``DeviceFacts`` is
that answer read once, here, so that resolving a profile, preflight and the facts
table read typed fields. ``to_dict`` gives back exactly what the agent wrote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edgekit.device.agent import json_answer, last_stderr_line
from edgekit.device.layout import STATE_DIR
from edgekit.device.wire import parse
from edgekit.errors import DeviceError, PreflightFailed
from edgekit.ssh.seam import Connection

FACTS_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class PythonFacts:
    version: str
    executable: str


@dataclass(frozen=True)
class PlatformFacts:
    machine: str
    system: str
    glibc: str | None


@dataclass(frozen=True)
class JetsonFacts:
    """What the release file, dpkg and the device tree say; all None on a non-Jetson."""

    nv_tegra_release: str | None
    l4t: str | None
    # "nv_tegra_release" or "dpkg": where l4t came from.
    l4t_source: str | None
    jetpack: str | None
    model: str | None
    compatible: list[str]
    soc: str | None
    board_ids: list[str]
    module_entries: list[str]


@dataclass(frozen=True)
class TensorRTFacts:
    # What ``import tensorrt`` reports, and what dpkg has installed.
    python: str | None
    package: str | None


@dataclass(frozen=True)
class CudaRuntimeFacts:
    """libcudart loaded the way the TensorRT backend will load it."""

    library: str | None
    tried: int
    version: str | None
    devices: int | None
    compute_capability: str | None
    error: str | None


@dataclass(frozen=True)
class GpuNode:
    path: str
    group: str
    # Octal permission bits, "0660".
    mode: str

    def open_to(self, group: str) -> bool:
        """Whether members of ``group`` (or everyone) may read and write it."""
        mode = int(self.mode, 8)
        return (self.group == group and mode & 0o060 == 0o060) or mode & 0o006 == 0o006


@dataclass(frozen=True)
class OpenCVFacts:
    version: str
    gstreamer: bool


@dataclass(frozen=True)
class PyCudaFacts:
    version: str | None
    error: str | None


@dataclass(frozen=True)
class DiskFacts:
    # The state directory, or its nearest existing parent before the first provision.
    path: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class MemoryFacts:
    total_bytes: int | None
    available_bytes: int | None


@dataclass(frozen=True)
class CameraFacts:
    video: list[str]
    # /dev/v4l/by-id links and the node each resolves to.
    by_id: dict[str, str]

    def nodes(self) -> list[str]:
        return [*self.video, *self.by_id]


@dataclass(frozen=True)
class DeviceFacts:
    """Everything preflight and profile resolution need to know about a device."""

    python: PythonFacts
    platform: PlatformFacts
    jetson: JetsonFacts
    # dpkg's version of each NVIDIA package the agent asks about.
    packages: dict[str, str]
    tensorrt: TensorRTFacts
    # The toolkit's version.json, when there is a toolkit.
    cuda: str | None
    cuda_runtime: CudaRuntimeFacts
    gpu_nodes: list[GpuNode]
    cv2: OpenCVFacts | None
    # Whether each GStreamer element exists; None without gst-inspect-1.0.
    gstreamer_elements: dict[str, bool] | None
    numpy: str | None
    onnxruntime: str | None
    # Only probed for the TensorRT backend's optional pycuda seam.
    pycuda: PyCudaFacts | None
    systemd: bool
    disk: DiskFacts
    memory: MemoryFacts
    cameras: CameraFacts
    hostname: str

    @classmethod
    def parse(cls, data: Any) -> DeviceFacts:
        return parse(cls, data, "the device's facts answer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def facts_source() -> str:
    return resources.files("edgekit.agent").joinpath("facts.py").read_text()


def read_facts(conn: Connection) -> DeviceFacts:
    """The agent's facts module, sent as ``python3 -c`` so that nothing lands on the device."""
    result = conn.run(["python3", "-c", facts_source(), STATE_DIR], check=False, timeout=FACTS_TIMEOUT_S)
    if result.exit_code == 127:
        raise PreflightFailed(f"{conn.target} has no python3; flash JetPack 5.1 or later, which ships it.")
    facts = json_answer(result) if result.ok else None
    if facts is None:
        raise DeviceError(
            f"{conn.target} could not describe itself with python3 ({last_stderr_line(result)}); "
            "check that `python3 -V` runs there."
        )
    return DeviceFacts.parse(facts)
