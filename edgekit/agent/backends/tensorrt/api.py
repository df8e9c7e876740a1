"""What the imported TensorRT release can do, found by looking at it.

TensorRT's Python API lost and gained names between 8.5 and 11 (see
shared/reference/tensorrt-on-jetson.md section 5): 10.0 removed max_workspace_size and
the bindings API, 11 removed the calibrators, the INT8 and FP16 builder flags and
EXPLICIT_BATCH. Each capability here is the presence of the name the code will call.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Capabilities(NamedTuple):
    version: str
    # TensorRT 8 parses ONNX only into an explicit-batch network; 10 ignores the flag, 11 lacks it.
    explicit_batch: bool
    memory_pool_limit: bool
    calibrator: bool
    int8_flag: bool
    fp16_flag: bool
    calibration_profile: bool
    # IProgressMonitor, 10.0 and later.
    progress_monitor: bool


def probe(trt: Any, config: Any) -> Capabilities:
    return Capabilities(
        version=str(trt.__version__),
        explicit_batch=hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"),
        memory_pool_limit=hasattr(config, "set_memory_pool_limit"),
        calibrator=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(config, "int8_calibrator"),
        int8_flag=hasattr(trt.BuilderFlag, "INT8"),
        fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
        calibration_profile=hasattr(config, "set_calibration_profile"),
        progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"),
    )


def network_flags(trt: Any) -> int:
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0
