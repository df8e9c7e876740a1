"""What the host needs to know about a device before it provisions or deploys to it.

Runs on a bare device too, before numpy or cv2 are installed, so every third-party module
is optional here and one that is missing or broken reads as None.
"""

from __future__ import annotations

import glob
import importlib
import os
import platform
import re
import shutil
import socket
import sys
from typing import Any

TEGRA_RELEASE = "/etc/nv_tegra_release"
DEVICE_TREE_DIRS = ("/proc/device-tree", "/sys/firmware/devicetree/base")

_TEGRA_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")
_GSTREAMER_RE = re.compile(r"^\s*GStreamer:\s*(\S+)", re.MULTILINE)
_MEMINFO_KEYS = {"MemTotal": "total_bytes", "MemAvailable": "available_bytes"}


def parse_tegra_release(text: str) -> str | None:
    """L4T version from /etc/nv_tegra_release: "# R36 (release), REVISION: 4.3, ..." -> "36.4.3"."""
    match = _TEGRA_RE.search(text)
    if match is None:
        return None
    return f"{match.group(1)}.{match.group(2)}"


def parse_meminfo(text: str) -> dict[str, int | None]:
    """Total and available memory in bytes from /proc/meminfo (which counts in kB)."""
    memory: dict[str, int | None] = {key: None for key in _MEMINFO_KEYS.values()}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name in _MEMINFO_KEYS and fields and fields[0].isdigit():
            memory[_MEMINFO_KEYS[name]] = int(fields[0]) * 1024
    return memory


def parse_gstreamer(build_info: str) -> bool:
    """Whether cv2.getBuildInformation() reports GStreamer, which Jetson CSI cameras need."""
    match = _GSTREAMER_RE.search(build_info)
    return match is not None and match.group(1).upper() == "YES"


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _device_tree(name: str) -> bytes | None:
    for directory in DEVICE_TREE_DIRS:
        data = _read_bytes(os.path.join(directory, name))
        if data is not None:
            return data
    return None


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001
        # A broken install (missing libnvinfer, numpy ABI mismatch) raises more than
        # ImportError; either way the host should see the package as unusable, not a crash.
        return None


def _version(name: str) -> str | None:
    module = _import(name)
    return None if module is None else str(getattr(module, "__version__", "unknown"))


def _jetson() -> dict[str, Any]:
    raw = _read_bytes(TEGRA_RELEASE)
    lines = [] if raw is None else raw.decode("utf-8", "replace").splitlines()
    release = lines[0] if lines else None
    model = _device_tree("model")
    compatible = _device_tree("compatible")
    return {
        "nv_tegra_release": release,
        "l4t": None if release is None else parse_tegra_release(release),
        "model": None if model is None else model.decode("utf-8", "replace").rstrip("\0"),
        "compatible": [] if compatible is None else [c for c in compatible.decode("utf-8", "replace").split("\0") if c],
    }


def _cv2() -> dict[str, Any] | None:
    cv2 = _import("cv2")
    if cv2 is None:
        return None
    return {"version": cv2.__version__, "gstreamer": parse_gstreamer(cv2.getBuildInformation())}


def _disk(state_dir: str) -> dict[str, Any]:
    # The state directory does not exist before the first provision; report its future home.
    path = os.path.abspath(state_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    usage = shutil.disk_usage(path)
    return {"path": path, "free_bytes": usage.free, "total_bytes": usage.total}


def _memory() -> dict[str, int | None]:
    raw = _read_bytes("/proc/meminfo")
    return parse_meminfo("" if raw is None else raw.decode("ascii", "replace"))


def _cameras() -> list[str]:
    return sorted(glob.glob("/dev/video*"))


def collect_facts(state_dir: str = "/var/lib/edgekit") -> dict[str, Any]:
    libc, libc_version = platform.libc_ver()
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": {
            "machine": platform.machine(),
            "system": platform.system(),
            "glibc": libc_version if libc == "glibc" and libc_version else None,
        },
        "jetson": _jetson(),
        "cv2": _cv2(),
        "numpy": _version("numpy"),
        "tensorrt": _version("tensorrt"),
        "onnxruntime": _version("onnxruntime"),
        "systemd": os.path.isdir("/run/systemd/system"),
        "disk": _disk(state_dir),
        "memory": _memory(),
        "cameras": _cameras(),
        "hostname": socket.gethostname(),
    }
