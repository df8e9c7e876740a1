"""Building an engine from ONNX with the device's own TensorRT.

Precision is exactly what was asked: INT8 through the calibrator (TensorRT 8.5-10.x) or
from the Q/DQ model (explicit quantization, the only INT8 TensorRT 11 has), FP16 only on
request, and a release that lacks what was asked is an error, never a quieter build.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...config import BOX_TASKS
from ...errors import AgentError
from ...files import read_or_none, write_atomically
from .. import Log
from .api import Capabilities, network_flags, probe
from .calibrator import make_calibrator
from .logger import tensorrt_logger
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
    # The largest calibration batch for a dynamic batch dimension (see calibration_batch).
    calibration_batch: int = 8
    # A box task (detect, pose, segment) keeps its head's decode out of INT8 (keep_head_precise).
    task: str = "classify"
    # Layers --mixed-precision auto kept out of INT8, by ONNX node name (keep_layers_half).
    half_layers: tuple[str, ...] = ()


def parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: str) -> tuple[Any, Any]:
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as handle:
        parsed = parser.parse(handle.read())
    if not parsed:
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise AgentError(
            "model",
            "TensorRT {} cannot parse {} ({} error{}): {}; re-export the model with operators this TensorRT "
            "has (an op it reports as a missing plugin is a custom layer JetPack's TensorRT lacks).".format(
                trt.__version__, onnx_path, len(errors), "" if len(errors) == 1 else "s", "; ".join(errors)
            ),
        )
    # The network holds weights the parser owns: the parser must outlive the build.
    return network, parser


def _inputs(network: Any) -> list[Any]:
    return [network.get_input(index) for index in range(network.num_inputs)]


def _add_profile(builder: Any, config: Any, network: Any, batch: tuple[int, int, int]) -> None:
    """One optimization profile over the batch dimension, if any input has a dynamic one."""
    inputs = _inputs(network)
    if not any(-1 in tuple(tensor.shape) for tensor in inputs):
        return
    profile = builder.create_optimization_profile()
    for tensor in inputs:
        shape = tuple(tensor.shape)
        if -1 in shape[1:]:
            raise AgentError("model", f"Input {tensor.name!r} has dynamic dimensions besides the batch: {shape}.")
        shapes = [((size,) + shape[1:]) if shape[0] == -1 else shape for size in batch]
        profile.set_shape(tensor.name, *shapes)
    config.add_optimization_profile(profile)


def _set_precision(
    trt: Any, builder: Any, config: Any, caps: Capabilities, options: BuildOptions, cuda: Any, network: Any, log: Log
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
    return _attach_calibrator(trt, builder, config, caps, options, cuda, network, log)


def calibration_data(trt: Any, path: str, tensor: Any) -> np.ndarray:
    """The calibration set as a memory map, refused unless it is what ``tensor`` takes."""
    try:
        data: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AgentError(
            "calibration", f"Cannot read the calibration set {path} ({exc}); re-run edgekit provision."
        ) from None
    if data.ndim == 0 or len(data) == 0:
        raise AgentError("calibration", f"The calibration set {path} holds no images; re-run edgekit provision.")
    dtype = np.dtype(trt.nptype(tensor.dtype))
    shape = tuple(tensor.shape)
    if data.dtype != dtype or data.ndim != len(shape) or tuple(data.shape[1:]) != shape[1:]:
        raise AgentError(
            "calibration",
            f"{path} holds {data.dtype} images of shape {list(data.shape[1:])}, but the network input "
            f"{tensor.name!r} takes {dtype} of shape {list(shape[1:])}; re-run edgekit provision so the host "
            "prepares the calibration set for this model.",
        )
    return data


def calibration_batch(batch_dim: int, images: int, largest: int) -> int:
    """The network's fixed batch; for a dynamic one, the largest batch up to ``largest``
    that divides the set, so that no image is left out of a last partial batch."""
    if batch_dim != -1:
        return batch_dim
    return next(size for size in range(min(largest, images), 0, -1) if images % size == 0)


def _attach_calibrator(
    trt: Any, builder: Any, config: Any, caps: Capabilities, options: BuildOptions, cuda: Any, network: Any, log: Log
) -> Any:
    if not options.calibration_path or not options.calibration_cache_path:
        raise AgentError("calibration", "INT8 calibration needs the release's calibration set (calib.npy).")
    inputs = _inputs(network)
    tensor = inputs[0]
    data = calibration_data(trt, options.calibration_path, tensor)
    shape = tuple(tensor.shape)
    # TensorRT reads each batch at the calibration profile's OPT shape (it overwrites MIN and
    # MAX with OPT), or at the network's fixed batch; a batch of any other size is read
    # only in part. Without set_calibration_profile it is profile 0's OPT.
    dynamic = shape[0] == -1
    largest = options.calibration_batch if caps.calibration_profile else options.batch[1]
    batch = calibration_batch(shape[0], len(data), largest)
    left_out = len(data) % batch
    log(
        f"calibrating on {len(data) - left_out} of {len(data)} images in batches of {batch}"
        + (f" ({left_out} left out: the network's batch is fixed at {batch})" if left_out else "")
    )
    calibrator = make_calibrator(trt, cuda, data, tensor.name, batch, options.calibration_cache_path, log)
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    if options.task in BOX_TASKS:
        keep_head_precise(trt, network, config, log)
    if options.half_layers:
        keep_layers_half(trt, network, config, options.half_layers, log)
    if dynamic and caps.calibration_profile:
        profile = builder.create_optimization_profile()
        for each in inputs:
            calibration_shape = (batch,) + tuple(each.shape)[1:]
            profile.set_shape(each.name, calibration_shape, calibration_shape, calibration_shape)
        config.set_calibration_profile(profile)
    return calibrator


# Layers with learned weights: a head's decode is what follows the last of them.
_WEIGHTED = ("CONVOLUTION", "DECONVOLUTION", "MATRIX_MULTIPLY", "FULLY_CONNECTED")


def head_tail(trt: Any, network: Any) -> list[Any]:
    """The layers between the network's outputs and the last weighted layers before them, as
    edgekit.quantize.head_tail finds them in the ONNX for the host's Q/DQ model."""
    producers = {}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        for output in range(layer.num_outputs):
            producers[layer.get_output(output).name] = layer
    weighted = {getattr(trt.LayerType, name) for name in _WEIGHTED if hasattr(trt.LayerType, name)}
    pending = [producers[tensor.name] for tensor in _outputs(network) if tensor.name in producers]
    tail, seen = [], set()
    while pending:
        layer = pending.pop()
        # A SHAPE layer reads only dimensions, never values: not part of the decode.
        if layer.name in seen or layer.type in weighted or layer.type == trt.LayerType.SHAPE:
            continue
        seen.add(layer.name)
        tail.append(layer)
        for index in range(layer.num_inputs):
            tensor = layer.get_input(index)
            if tensor is not None and tensor.name in producers:
                pending.append(producers[tensor.name])
    return tail


def keep_head_precise(trt: Any, network: Any, config: Any, log: Log) -> None:
    """A detector's decode at FP32 while the rest calibrates to INT8: its final Concat joins
    coordinates (0 to the input size) and class scores (0-1), and one INT8 scale for both
    rounds every score to zero. Without OBEY_PRECISION_CONSTRAINTS TensorRT ignores the
    layers' precisions, so the flag goes with them."""
    floating = (trt.DataType.FLOAT, trt.DataType.HALF)
    # Only layers of floating-point values: an FP32 constraint on the integer shape arithmetic
    # in the head (Gather, Concat of dimensions) cannot be met, and OBEY fails the build.
    tail = [
        layer
        for layer in head_tail(trt, network)
        if all(layer.get_output(index).dtype in floating for index in range(layer.num_outputs))
    ]
    for layer in tail:
        layer.precision = trt.DataType.FLOAT
        for index in range(layer.num_outputs):
            layer.set_output_type(index, trt.DataType.FLOAT)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    log(f"keeping the detection head's {len(tail)} decode layers at FP32, out of INT8")


def keep_layers_half(trt: Any, network: Any, config: Any, names: tuple[str, ...], log: Log) -> None:
    """The layers the host's sensitivity pass chose (edgekit/sensitivity.py) at FP16 while the
    rest calibrates to INT8, and the tensors they read made in FP16 too, as the host's Q/DQ
    model feeds them unrounded: a layer at FP16 reading an INT8 tensor has lost the precision
    already. The parser names each layer after its ONNX node, as the host named them."""
    floating = (trt.DataType.FLOAT, trt.DataType.HALF)
    layers = [network.get_layer(index) for index in range(network.num_layers)]
    kept = [layer for layer in layers if layer.name in names]
    producers = {}
    for layer in layers:
        for index in range(layer.num_outputs):
            producers[layer.get_output(index).name] = (layer, index)
    for layer in kept:
        if all(layer.get_output(index).dtype in floating for index in range(layer.num_outputs)):
            layer.precision = trt.DataType.HALF
            for index in range(layer.num_outputs):
                layer.set_output_type(index, trt.DataType.HALF)
        for index in range(layer.num_inputs):
            tensor = layer.get_input(index)
            feeder = None if tensor is None else producers.get(tensor.name)
            if feeder is not None and feeder[0].name not in names and tensor.dtype in floating:
                feeder[0].set_output_type(feeder[1], trt.DataType.HALF)
    # Mixed with INT8, FP16 kernels need the FP16 flag as well as the constraints.
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    missing = sorted(set(names) - {layer.name for layer in kept})
    log(
        f"keeping {len(kept)} layers at FP16, out of INT8, as --mixed-precision auto chose"
        + (f"; not in this network, so left to INT8: {', '.join(missing)}" if missing else "")
    )


def _outputs(network: Any) -> list[Any]:
    return [network.get_output(index) for index in range(network.num_outputs)]


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
    logger = tensorrt_logger(trt)
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
    _add_profile(builder, config, network, options.batch)
    calibrator = _set_precision(trt, builder, config, caps, options, cuda, network, log)
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
