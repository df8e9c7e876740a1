"""Preflight: everything that would fail later on the device, checked before any upload.

Each check is a pure function of the device facts, the resolved profile and the merged
settings, so a JetPack 4.6 device, an INT8 request on a Nano or a full disk is refused
from captured facts in a unit test exactly as it is on a real device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgekit.errors import PreflightFailed
from edgekit.profiles import Profile, version_tuple
from edgekit.settings import Settings
from edgekit.source import SourceSpec

if TYPE_CHECKING:
    from edgekit.device.facts import DeviceFacts

MIN_PYTHON = (3, 8)
# Results file, sample ring, journal growth and the old release's venv while a new one installs.
DISK_MARGIN_BYTES = 256 * 2**20
# The builder writes the engine next to a copy of the ONNX, plus its timing cache.
BUILD_SCRATCH_FACTOR = 3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    # What was found, for the --check table.
    detail: str
    # When not ok: one sentence that names the fix.
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiskNeed:
    release_bytes: int
    runtime_bytes: int
    model_bytes: int

    def total(self, backend: str) -> int:
        build = BUILD_SCRATCH_FACTOR * self.model_bytes if backend == "tensorrt" else 0
        # Two releases (current and previous, for rollback), the runtime and its install.
        return 2 * self.release_bytes + 2 * self.runtime_bytes + build + DISK_MARGIN_BYTES


@dataclass(frozen=True)
class PreflightInput:
    facts: DeviceFacts
    profile: Profile
    settings: Settings
    source: SourceSpec
    disk: DiskNeed


def _passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _failed(name: str, detail: str, problem: str) -> Check:
    return Check(name, False, detail, problem)


def check_jetpack(given: PreflightInput) -> Check:
    profile, python = given.profile, given.facts.python.version
    detail = f"{profile.description}, Python {python}"
    if not profile.supported:
        return _failed("jetpack", detail, f"{profile.module.name} is not supported: {profile.unsupported}")
    if version_tuple(python)[:2] < MIN_PYTHON:
        return _failed(
            "jetpack",
            detail,
            f"The device runs Python {python}; edgekit needs Python 3.8 or newer, which JetPack 5.1 and later ship.",
        )
    return _passed("jetpack", detail)


def check_system(given: PreflightInput) -> Check:
    platform = given.facts.platform
    glibc = platform.glibc
    detail = f"{platform.system} {platform.machine}, glibc {glibc or 'none'}"
    if not glibc:
        return _failed(
            "system", detail, "The device's Python reports no glibc; edgekit supports L4T and other glibc Linux."
        )
    if not given.facts.systemd:
        return _failed("system", detail, "The device does not run systemd as PID 1; the camera service needs it.")
    return _passed("system", detail + ", systemd")


def check_precision(given: PreflightInput) -> Check:
    module, precision = given.profile.module, given.settings.build.precision
    backend = given.settings.build.backend
    detail = f"{precision} on {backend} ({module.name})"
    if precision == "int8" and not module.fast_int8:
        return _failed(
            "precision",
            detail,
            f"The {module.name} GPU ({module.gpu}, compute {module.compute_capability}) has no fast INT8, and edgekit "
            "will not fall back silently; use --precision fp16.",
        )
    if precision == "fp16" and not module.fast_fp16:
        return _failed(
            "precision",
            detail,
            f"{module.name} has no fast FP16 on its {backend} backend; use --precision int8 or --precision fp32.",
        )
    dla = given.settings.build.dla_core
    if dla is not None and not 0 <= dla < module.dla_cores:
        cores = f"DLA cores 0-{module.dla_cores - 1}" if module.dla_cores else "no DLA"
        return _failed("precision", detail, f"{module.name} has {cores}; drop dla_core or pick one that exists.")
    return _passed("precision", detail + ("" if dla is None else f", DLA core {dla} with GPU fallback"))


def check_runtime(given: PreflightInput) -> Check:
    profile = given.profile
    if given.settings.build.backend != "tensorrt":
        return _passed("runtime", f"{given.settings.build.backend} (shipped by edgekit)")
    python_version, package = given.facts.tensorrt.python, given.facts.tensorrt.package
    detail = f"TensorRT {python_version or package or 'missing'} (profile: {profile.software.tensorrt})"
    if python_version is None:
        where = f"TensorRT {package} is installed but" if package else "TensorRT is not installed and"
        return _failed(
            "runtime",
            detail,
            f"{where} the device's python3 cannot import tensorrt; install JetPack's python3-libnvinfer "
            "(sudo apt install nvidia-tensorrt) and re-run.",
        )
    if version_tuple(python_version)[:2] != version_tuple(profile.software.tensorrt)[:2]:
        return _failed(
            "runtime",
            detail,
            f"The device has TensorRT {python_version} but profile {profile.name} expects "
            f"{profile.software.tensorrt}; pick the matching --profile or reinstall JetPack's TensorRT.",
        )
    return _passed("runtime", detail)


# JetPack's package of the CUDA runtime (libcudart) on every L4T line edgekit supports.
CUDA_RUNTIME_FIX = "install JetPack's CUDA runtime (sudo apt install nvidia-l4t-cuda cuda-runtime-<major>-<minor>)"
GPU_GROUP = "video"


def check_cuda(given: PreflightInput) -> Check:
    """The CUDA the TensorRT backend will talk to answers, is the profile's GPU, and the
    service user (unprivileged, in the video group) can open the GPU's nodes."""
    build, facts, module = given.settings.build, given.facts, given.profile.module
    if build.backend != "tensorrt":
        return _passed("cuda", f"not used by {build.backend}")
    if build.cuda == "pycuda":
        pycuda = facts.pycuda
        if pycuda is None or pycuda.error:
            why = "cannot import pycuda.driver" if pycuda is None else f"has a pycuda that fails: {pycuda.error}"
            return _failed(
                "cuda",
                "pycuda unusable",
                f'The device\'s python3 {why}; drop build.cuda = "pycuda" (the default, cudart, needs no pycuda).',
            )
    runtime = facts.cuda_runtime
    if not runtime.library:
        return _failed(
            "cuda",
            "libcudart not found",
            f"The device has no CUDA runtime library (libcudart.so.13, .12 or .11.0 in {runtime.tried} "
            f"places); {CUDA_RUNTIME_FIX} and re-run.",
        )
    detail = f"CUDA {runtime.version or '?'} ({runtime.library})"
    if runtime.error or not runtime.devices:
        answer = runtime.error or "no GPU"
        return _failed(
            "cuda",
            detail + ", no GPU",
            f"CUDA on the device found no usable GPU ({answer}); check that the SSH user is in the {GPU_GROUP} group "
            f"and that JetPack's GPU driver is installed (nvidia-l4t-cuda), then re-run.",
        )
    capability = runtime.compute_capability
    detail += f", {runtime.devices} GPU(s), compute {capability}"
    if capability != module.compute_capability:
        return _failed(
            "cuda",
            detail,
            f"The device's GPU has compute capability {capability}, but profile {given.profile.name} is for "
            f"{module.name} ({module.compute_capability}); pick the matching --profile.",
        )
    closed = [node.path for node in facts.gpu_nodes if not node.open_to(GPU_GROUP)]
    if closed:
        return _failed(
            "cuda",
            detail,
            f"The GPU node(s) {', '.join(closed)} cannot be opened by the {GPU_GROUP} group the service runs in; "
            "restore JetPack's udev rules (sudo apt install --reinstall nvidia-l4t-init) and reboot.",
        )
    return _passed("cuda", detail + ("" if build.cuda == "cudart" else ", through pycuda"))


def check_opencv(given: PreflightInput) -> Check:
    cv2 = given.facts.cv2
    if cv2 is None:
        return _failed(
            "opencv",
            "cv2 missing",
            "The device's python3 cannot import cv2; install JetPack's OpenCV (python3-opencv).",
        )
    detail = f"cv2 {cv2.version}, GStreamer {'yes' if cv2.gstreamer else 'no'}"
    kind = given.source.kind
    hardware_rtsp = kind == "rtsp" and given.settings.camera.rtsp_decode == "hardware"
    if (kind == "csi" or hardware_rtsp) and not cv2.gstreamer:
        return _failed(
            "opencv",
            detail,
            f"The device's cv2 {cv2.version} has no GStreamer, which {kind}:// sources need; remove pip's "
            "opencv-python so JetPack's OpenCV is used (python3 -m pip uninstall opencv-python).",
        )
    elements = given.facts.gstreamer_elements or {}
    needed = "nvarguscamerasrc" if kind == "csi" else "nvv4l2decoder" if hardware_rtsp else None
    if needed is not None and not elements.get(needed):
        return _failed(
            "opencv",
            detail,
            f"GStreamer on the device has no {needed} element, which {kind}:// sources need; install JetPack's "
            'multimedia packages (nvidia-l4t-gstreamer), or use rtsp_decode = "software" for RTSP.',
        )
    return _passed("opencv", detail)


def check_camera(given: PreflightInput) -> Check:
    source, nodes = given.source, given.facts.cameras.nodes()
    detail = ", ".join(nodes) or "no /dev/video*"
    if source.kind == "csi":
        node = f"/dev/video{source.sensor}"
        if node not in nodes:
            return _failed(
                "camera",
                detail,
                f"The device has no {node} for {source.text}; connect the CSI camera (and enable it with "
                "jetson-io), or pick another sensor number.",
            )
    elif source.kind == "v4l2":
        if source.device_path not in nodes:
            return _failed(
                "camera",
                detail,
                f"The device has no {source.device_path}; plug the camera in, or use one of: {detail}.",
            )
    else:
        return _passed("camera", f"{source.kind} source, no camera needed")
    return _passed("camera", detail)


def check_disk(given: PreflightInput) -> Check:
    disk = given.facts.disk
    free, need = disk.free_bytes, given.disk.total(given.settings.build.backend)
    detail = f"{free // 2**20} MiB free at {disk.path}, {need // 2**20} MiB needed"
    if free < need:
        return _failed(
            "disk",
            detail,
            f"The device has {free // 2**20} MiB free at {disk.path} but needs {need // 2**20} MiB (two releases, "
            f"the runtime and the engine build); free {(need - free) // 2**20 + 1} MiB and re-run.",
        )
    return _passed("disk", detail)


def check_memory(given: PreflightInput) -> Check:
    available, build = given.facts.memory.available_bytes, given.settings.build
    if build.backend != "tensorrt" or available is None:
        return _passed("memory", "no engine build on the device")
    # With the camera service stopped during the build its memory comes back, so only
    # the workspace has to fit beside the OS.
    need = build.workspace_mib * 2**20
    detail = f"{available // 2**20} MiB available, builder workspace {build.workspace_mib} MiB"
    if available < need:
        return _failed(
            "memory",
            detail,
            f"The device has {available // 2**20} MiB available, less than the {build.workspace_mib} MiB builder "
            "workspace; stop other GPU programs or lower build.workspace_mib in the edgekit config.",
        )
    return _passed("memory", detail)


CHECKS: tuple[Callable[[PreflightInput], Check], ...] = (
    check_jetpack,
    check_system,
    check_precision,
    check_runtime,
    check_cuda,
    check_opencv,
    check_camera,
    check_disk,
    check_memory,
)


def run_checks(given: PreflightInput) -> list[Check]:
    return [check(given) for check in CHECKS]


def require(checks: list[Check], listed: bool = False) -> None:
    """Raise with the first failed check's sentence, counting the others (or all, once listed)."""
    failed = [check for check in checks if not check.ok]
    if not failed:
        return
    if listed:
        count = f"{len(failed)} problem{'s' if len(failed) > 1 else ''}"
        raise PreflightFailed(
            f"Preflight found {count} ({', '.join(c.name for c in failed)}); fix them as listed and re-run."
        )
    more = len(failed) - 1
    if not more:
        raise PreflightFailed(failed[0].problem)
    plural = "s" if more > 1 else ""
    raise PreflightFailed(f"{failed[0].problem.rstrip('.')} ({more} more problem{plural}: --check lists them).")
