"""Python wheels the device needs beyond its system packages, fetched on the host.

The device never reaches the internet: the host downloads pinned wheels for the device's
Python and CPU once (cached), ships them, and the device installs them with --no-index
into a --system-site-packages venv, so JetPack's numpy, cv2 and TensorRT stay visible.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgekit.errors import PreflightFailed

# onnxruntime stopped publishing wheels for older Pythons, so the pin follows the device's
# Python. numpy is left out on purpose: the device's own numpy is used.
ONNXRUNTIME_PINS: dict[str, tuple[str, ...]] = {
    "3.8": ("onnxruntime==1.19.2", "flatbuffers==25.12.19", "packaging==26.2", "protobuf==5.29.6"),
    "3.10": ("onnxruntime==1.23.2", "flatbuffers==25.12.19", "packaging==26.3", "protobuf==7.36.2"),
    "3.11": ("onnxruntime==1.31.1", "flatbuffers==25.12.19", "packaging==26.3", "protobuf==7.36.2"),
    "3.12": ("onnxruntime==1.31.1", "flatbuffers==25.12.19", "packaging==26.3", "protobuf==7.36.2"),
}
CACHE_DIR = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "wheels"


def _normalise(name: str) -> str:
    return name.replace("-", "_").lower()


def parse_pin(requirement: str) -> tuple[str, str]:
    """``name==version`` as (normalised name, version)."""
    name, version = requirement.split("==")
    return _normalise(name), version


def wheel_project(filename: str) -> tuple[str, str]:
    """A wheel file name's (normalised name, version); wheel names already use ``_``."""
    name, version = filename.split("-")[:2]
    return _normalise(name), version


def platform_tags(machine: str, glibc: str | None) -> list[str]:
    """manylinux tags a device with this CPU and glibc accepts, newest first."""
    major, minor = (int(part) for part in (glibc or "0.0").split(".")[:2])
    if major != 2:
        raise PreflightFailed(f"The device reports glibc {glibc or 'none'}; edgekit needs a glibc 2.x Linux.")
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 16, -1)]
    return tags + [f"manylinux2014_{machine}"]


def runtime_requirements(python_version: str) -> tuple[str, ...]:
    minor = ".".join(python_version.split(".")[:2])
    if minor not in ONNXRUNTIME_PINS:
        known = ", ".join(ONNXRUNTIME_PINS)
        raise PreflightFailed(
            f"The device runs Python {python_version}; the onnxruntime backend is pinned for {known}."
        )
    return ONNXRUNTIME_PINS[minor]


def fetch_wheels(python_version: str, machine: str, glibc: str | None, cache_dir: Path = CACHE_DIR) -> list[Path]:
    """Download (once) the pinned runtime wheels for the device; return their paths."""
    requirements = runtime_requirements(python_version)
    minor = ".".join(python_version.split(".")[:2])
    target = cache_dir / f"cp{minor.replace('.', '')}-{machine}-glibc{glibc}"
    wanted = dict(parse_pin(req) for req in requirements)
    found = _matching(target, wanted)
    if len(found) == len(wanted):
        return found
    target.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        minor,
        "--dest",
        str(target),
    ]
    for tag in platform_tags(machine, glibc):
        command += ["--platform", tag]
    done = subprocess.run(command + list(requirements), capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PreflightFailed(
            f"Downloading the device's wheels failed ({last}); this workstation needs to reach PyPI once, "
            f"or put the wheels in {target}."
        )
    return _matching(target, wanted)


def _matching(directory: Path, wanted: dict[str, str]) -> list[Path]:
    if not directory.is_dir():
        return []
    found = []
    for wheel in sorted(directory.glob("*.whl")):
        name, version = wheel_project(wheel.name)
        if wanted.get(name) == version:
            found.append(wheel)
    return found
