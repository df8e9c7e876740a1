"""Building an engine from ONNX with the device's own TensorRT.

Precision is exactly what was asked: INT8 through the calibrator (TensorRT 8.5-10.x) or
from the Q/DQ model (explicit quantization, the only INT8 TensorRT 11 has), FP16 only on
request, and a release that lacks what was asked is an error, never a quieter build.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...errors import AgentError
from ...files import read_or_none, write_atomically
from .. import Log
from .api import Capabilities, network_flags, probe
from .calibrator import make_calibrator
from .progress import make_progress_monitor


class BuildOptions(NamedTuple):
    onnx_path: str
    precision: str
    # "calibrator" or "qdq" (the profile's INT8 path); ignored for fp16/fp32.
    int8: str
    workspace_mib: int
    dla_core: int | None
    # Batch sizes of the optimization profile for a dynamic batch dimension.
    batch: tuple[int, int, int]
    timing_cache_path: str
    calibration_path: str | None = None
    calibration_cache_path: str | None = None
    calibration_batch: int = 8


def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.WARNING)


def parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: str) -> tuple[Any, Any]:
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as handle:
        parsed = parser.parse(handle.read())
    if not parsed:
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise AgentError(
            "model",
            "TensorRT {} cannot parse {} ({} error{}): {}".format(
                trt.__version__, onnx_path, len(errors), "" if len(errors) == 1 else "s", "; ".join(errors)
            ),
        )
    # The network holds weights the parser owns: the parser must outlive the build.
    return network, parser


def _inputs(network: Any) -> list[Any]:
    return [network.get_input(index) for index in range(network.num_inputs)]


def _add_profile(builder: Any, config: Any, network: Any, batch: tuple[int, int, int]) -> Any | None:
    """One optimization profile over the batch dimension, if any input has a dynamic one."""
    inputs = _inputs(network)
    if not any(-1 in tuple(tensor.shape) for tensor in inputs):
        return None
    profile = builder.create_optimization_profile()
    for tensor in inputs:
        shape = tuple(tensor.shape)
        if -1 in shape[1:]:
            raise AgentError("model", f"Input {tensor.name!r} has dynamic dimensions besides the batch: {shape}.")
        shapes = [((size,) + shape[1:]) if shape[0] == -1 else shape for size in batch]
        profile.set_shape(tensor.name, *shapes)
    config.add_optimization_profile(profile)
    return profile


def _set_precision(
    trt: Any, config: Any, caps: Capabilities, options: BuildOptions, cuda: Any, network: Any, log: Log
) -> Any:
    """Builder flags for the requested precision; returns the calibrator, if one is used."""
    if options.precision == "fp32":
        return None
    if options.precision == "fp16":
        if not caps.fp16_flag:
            raise AgentError(
                "precision",
                f"TensorRT {caps.version} has no FP16 builder flag (it is strongly typed); "
                "ship an FP16 model, or use int8 or fp32.",
            )
        config.set_flag(trt.BuilderFlag.FP16)
        return None
    if options.precision != "int8":
        raise AgentError("precision", f"Precision {options.precision!r} is not one of int8, fp16, fp32.")
    if options.int8 == "none":
        raise AgentError("precision", "This device's profile has no INT8 path; provision with --precision fp16.")
    if options.int8 == "qdq":
        # TensorRT 11 builds a model without Q/DQ nodes in FP32 without a word: refuse it here.
        # Node op types are plain strings in the ONNX protobuf, so a byte search finds them.
        with open(options.onnx_path, "rb") as handle:
            if b"QuantizeLinear" not in handle.read():
                raise AgentError(
                    "precision",
                    f"{options.onnx_path} has no Q/DQ nodes, so it cannot be built as INT8 without a calibrator; "
                    "ship the host's model.int8.onnx.",
                )
        # Explicit quantization: the scales are in the model. Before TensorRT 11 the INT8
        # flag still has to allow INT8 kernels; 11 has no flag and follows the Q/DQ types.
        if caps.int8_flag:
            config.set_flag(trt.BuilderFlag.INT8)
        return None
    if not (caps.calibrator and caps.int8_flag):
        raise AgentError(
            "precision",
            f"TensorRT {caps.version} has no INT8 calibrator; this device needs the explicit Q/DQ model "
            '(a profile with int8 = "qdq").',
        )
    if not options.calibration_path or not options.calibration_cache_path:
        raise AgentError("calibration", "INT8 calibration needs the release's calib.npz.")
    inputs = _inputs(network)
    with np.load(options.calibration_path) as arrays:
        if inputs[0].name not in arrays:
            raise AgentError("calibration", f"calib.npz has {sorted(arrays)}, not the model input {inputs[0].name!r}.")
        data = arrays[inputs[0].name]
    calibrator = make_calibrator(
        trt, cuda, data, inputs[0].name, options.calibration_batch, options.calibration_cache_path, log
    )
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    return calibrator


def _set_device(trt: Any, builder: Any, config: Any, dla_core: int | None) -> None:
    if dla_core is None:
        return
    available = builder.num_DLA_cores
    if not 0 <= dla_core < available:
        raise AgentError("precision", f"DLA core {dla_core} was asked for; this device has {available}.")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = dla_core
    # Layers DLA cannot run go to the GPU instead of failing the build.
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def build_engine(trt: Any, cuda: Any, options: BuildOptions, log: Log) -> bytes:
    """A serialized engine for ``options``; the timing cache is read and written back."""
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network, parser = parse_onnx(trt, builder, logger, options.onnx_path)
    config = builder.create_builder_config()
    caps = probe(trt, config)
    log(f"TensorRT {caps.version}: parsed {options.onnx_path} ({network.num_inputs} input(s))")
    workspace = options.workspace_mib * 2**20
    if caps.memory_pool_limit:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace
    profile = _add_profile(builder, config, network, options.batch)
    calibrator = _set_precision(trt, config, caps, options, cuda, network, log)
    if calibrator is not None and profile is not None and caps.calibration_profile:
        config.set_calibration_profile(profile)
    _set_device(trt, builder, config, options.dla_core)
    if caps.progress_monitor:
        # Held here until the build returns, whether or not the binding keeps a reference.
        monitor = make_progress_monitor(trt, log)
        config.progress_monitor = monitor
    timing = config.create_timing_cache(read_or_none(options.timing_cache_path) or b"")
    config.set_timing_cache(timing, False)
    log(f"building the {options.precision} engine (workspace {options.workspace_mib} MiB); this takes minutes")
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.release()
    if serialized is None:
        raise AgentError("build", f"TensorRT {caps.version} could not build the engine; its log above says why.")
    write_atomically(options.timing_cache_path, bytes(config.get_timing_cache().serialize()))
    del parser
    return bytes(serialized)
