"""A release's TensorRT engine on this device: from the engine cache, or built here first.

The key is computed from what is on the device at load time (the served ONNX and the
calibration data by sha256, TensorRT's version, the GPU's compute capability, the L4T
release), so a JetPack upgrade or a new calibration set rebuilds instead of crashing.
"""

from __future__ import annotations

import os
from typing import Any

from ...config import Release
from ...errors import AgentError
from ...facts import parse_tegra_release
from .. import Log
from .builder import BuildOptions, build_engine
from .cache import EngineCache, calibration_id, engine_key, load_or_build, sha256_file, timing_cache_name
from .cuda import open_cuda
from .runner import TensorRTBackend, deserialize

# min / opt / max batch for models with a dynamic batch dimension: the camera runs 1.
BATCH_PROFILE = (1, 1, 8)
TEGRA_RELEASE = "/etc/nv_tegra_release"


def device_l4t(path: str = TEGRA_RELEASE) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_tegra_release(handle.read())
    except OSError:
        return None


def calibrated(release: Release) -> bool:
    return release.precision == "int8" and release.build.int8 == "calibrator"


def build_options(
    release: Release, engines_dir: str, tensorrt_version: str, compute_capability: str, calibration_id: str | None
) -> BuildOptions:
    return BuildOptions(
        onnx_path=release.model_path,
        precision=release.precision,
        int8=release.build.int8,
        workspace_mib=release.build.workspace_mib,
        dla_core=release.build.dla_core,
        batch=BATCH_PROFILE,
        timing_cache_path=os.path.join(engines_dir, "timing", timing_cache_name(tensorrt_version, compute_capability)),
        calibration_path=release.calibration_path if calibration_id else None,
        calibration_cache_path=(
            os.path.join(engines_dir, "calibration", f"{calibration_id}.cache") if calibration_id else None
        ),
        task=release.task,
        half_layers=release.half_layers,
    )


def open_engine(trt: Any, cuda: Any, release: Release, engines_dir: str, l4t: str | None, log: Log) -> TensorRTBackend:
    major, minor = cuda.compute_capability()
    compute_capability = f"{major}.{minor}"
    version = str(trt.__version__)
    onnx_sha256 = sha256_file(release.model_path)
    calibration_sha256 = sha256_file(release.calibration_path) if calibrated(release) else None
    calibration = None if calibration_sha256 is None else calibration_id(onnx_sha256, calibration_sha256, version)
    options = build_options(release, engines_dir, version, compute_capability, calibration)
    builder_options = {
        "int8": options.int8 if options.precision == "int8" else None,
        "workspace_mib": options.workspace_mib,
        "dla_core": options.dla_core,
        "batch": list(options.batch),
        "half_layers": list(options.half_layers) if calibrated(release) else [],
    }
    key = engine_key(
        onnx_sha256, calibration_sha256, options.precision, version, compute_capability, l4t, builder_options
    )
    details = {
        "release": release.release,
        "model": os.path.basename(options.onnx_path),
        "onnx_sha256": onnx_sha256,
        "calibration_sha256": calibration_sha256,
        "precision": options.precision,
        "tensorrt": version,
        "compute_capability": compute_capability,
        "l4t": l4t,
        "options": builder_options,
    }
    log(f"engine key {key[:12]}: {options.precision} on TensorRT {version}, sm {compute_capability}, L4T {l4t}")
    loaded = load_or_build(
        EngineCache(engines_dir),
        key,
        lambda: build_engine(trt, cuda, options, log),
        lambda data: deserialize(trt, data, options.dla_core),
        details,
        log,
    )
    return TensorRTBackend(trt, cuda, loaded, dict(details, key=key))


def load(release: Release, engines_dir: str, log: Log) -> TensorRTBackend:
    try:
        import tensorrt
    except ImportError as exc:
        raise AgentError(
            "backend",
            f"TensorRT's Python module does not import here ({exc}); install JetPack's python3-libnvinfer and re-run.",
        ) from None
    cuda = open_cuda(release.build.cuda)
    try:
        return open_engine(tensorrt, cuda, release, engines_dir, device_l4t(), log)
    except BaseException:
        cuda.close()
        raise
