"""Whole device fact sets built from real captured Jetson strings (tests/data/jetson).

The identity part goes through the agent's own parsers, from the captured files; what no
public capture shows (Python version, disk, cameras) is filled in per JetPack line and
can be overridden per test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from edgekit.agent.facts import describe_jetson, parse_dpkg

DATA = Path(__file__).resolve().parent / "data" / "jetson"
GIB = 2**30
# What cudaDeviceGetAttribute(75/76) reports per SoC (shared/reference/tensorrt-on-jetson.md).
COMPUTE_CAPABILITY = {"tegra210": "5.3", "tegra186": "6.2", "tegra194": "7.2", "tegra234": "8.7", "tegra264": "11.0"}

# Compatible strings from documentation rather than a printed capture (see board_ids.md).
ORIN_NANO_SUPER_COMPATIBLE = "nvidia,p3768-0000+p3767-0005-super\0nvidia,p3767-0005\0nvidia,tegra234\0"
NANO_COMPATIBLE = "nvidia,p3449-0000-b00+p3448-0000-b00\0nvidia,jetson-nano\0nvidia,tegra210\0"


def captured(capture: str, name: str) -> bytes | None:
    path = DATA / capture / name
    return path.read_bytes() if path.is_file() else None


def restore_nuls(printed: bytes) -> bytes:
    """A printed compatible lost its NUL separators; each entry starts with "nvidia,"."""
    return printed.strip().replace(b"nvidia,", b"\0nvidia,").lstrip(b"\0") + b"\0"


def jetson_part(capture: str, compatible: str | None = None, packages_from: str | None = None) -> dict[str, Any]:
    release = captured(capture, "nv_tegra_release")
    printed = captured(capture, "compatible")
    raw = compatible.encode() if compatible is not None else restore_nuls(printed) if printed else b""
    dpkg = captured(packages_from or capture, "dpkg.txt")
    return describe_jetson(
        None if release is None else release.decode(),
        captured(capture, "model"),
        raw,
        b"",
        parse_dpkg(dpkg.decode() if dpkg else ""),
    )


def fact_set(
    jetson: dict[str, Any],
    *,
    python: str,
    tensorrt: str | None,
    memory_gib: float,
    free_gib: float = 20.0,
    cameras: list[str] | None = None,
    gstreamer: bool = True,
) -> dict[str, Any]:
    return {
        "python": {"version": python, "executable": "/usr/bin/python3"},
        "platform": {"machine": "aarch64", "system": "Linux", "glibc": "2.35"},
        "jetson": jetson,
        "packages": {},
        "tensorrt": {"python": tensorrt, "package": tensorrt},
        "cuda": None,
        "cuda_runtime": {
            "library": "/usr/local/cuda/lib64/libcudart.so.12",
            "tried": 2,
            "version": "12.6",
            "devices": 1,
            "compute_capability": COMPUTE_CAPABILITY.get(jetson.get("soc") or ""),
            "error": None,
        },
        # JetPack's udev rules: root:video, 0660.
        "gpu_nodes": [{"path": "/dev/nvmap", "group": "video", "mode": "0660"}],
        "cv2": {"version": "4.8.0", "gstreamer": gstreamer},
        "gstreamer_elements": {"nvarguscamerasrc": gstreamer, "nvv4l2decoder": gstreamer},
        "numpy": "1.26.4",
        "onnxruntime": None,
        "pycuda": None,
        "systemd": True,
        "disk": {"path": "/var/lib", "free_bytes": int(free_gib * GIB), "total_bytes": 64 * GIB},
        "memory": {"total_bytes": int(memory_gib * 0.93 * GIB), "available_bytes": int(memory_gib * 0.7 * GIB)},
        "cameras": {"video": cameras if cameras is not None else ["/dev/video0"], "by_id": {}},
        "hostname": "jetson",
    }


FACT_SETS: dict[str, dict[str, Any]] = {
    # JetPack 4.6.6 on a Jetson Nano: captured release file and dpkg rows.
    "jp46-nano": fact_set(
        jetson_part("jp466-nano", compatible=NANO_COMPATIBLE), python="3.6.9", tensorrt="8.2.1", memory_gib=4
    ),
    # JetPack 5.1.2 (R35.4.1) release file of an AGX Orin devkit, compatible of an AGX Orin 64GB.
    "jp51-agx-orin-64gb": fact_set(
        jetson_part("jp512-agx-orin-devkit")
        | {
            key: value
            for key, value in jetson_part("unknown-jp-agx-orin-64gb").items()
            if key in ("compatible", "soc", "board_ids", "module_entries")
        },
        python="3.8.10",
        tensorrt="8.5.2.2",
        memory_gib=64,
    ),
    # JetPack 6.2.1 (R36.4.7) Orin Nano Super: captured release file, model and TensorRT version.
    "jp62-orin-nano": fact_set(
        jetson_part("jp621-orin-nano-super", compatible=ORIN_NANO_SUPER_COMPATIBLE, packages_from="jp621-orin-dpkg"),
        python="3.10.12",
        tensorrt=(DATA / "jp62-orin-nano-super-trt" / "tensorrt_version").read_text().strip(),
        memory_gib=8,
    ),
    # JetPack 7.0 (R38.2.0) AGX Thor developer kit: release file, model and compatible captured.
    "jp70-thor": fact_set(jetson_part("jp70-thor-agx-devkit"), python="3.12.3", tensorrt="10.13.3", memory_gib=128),
    # JetPack 7.2 (R39.2.0) AGX Orin devkit; its printed compatible stops at the first NUL.
    "jp72-agx-orin": fact_set(jetson_part("jp72-agx-orin-devkit"), python="3.12.3", tensorrt=None, memory_gib=64),
}


def facts(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of a fact set; a dict value updates that section, anything else replaces it."""
    data = copy.deepcopy(FACT_SETS[name])
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data
