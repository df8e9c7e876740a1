"""INT8 Q/DQ models made on the host with onnxruntime's static quantization.

Symmetric INT8 scales for weights and activations, in QDQ format, which is what TensorRT's
explicit-quantization path accepts and what the onnxruntime backend runs directly.

A detector's head ends in a Concat of box coordinates (0 to the input size) and class
scores (0-1): one INT8 scale for both rounds every score to zero, and the detector finds
nothing while its output still follows FP32 to a cosine of 0.999. The decode after the
last convolutions (``head_tail``) therefore stays in FP32.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgekit.agent.backends.onnxruntime import session_options
from edgekit.errors import ModelError


class _TensorReader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime publishes no types
    def __init__(self, input_name: str, tensors: np.ndarray) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = ({input_name: t[np.newaxis]} for t in tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


# Layers that carry learned weights: where a head's decode tail begins, walking back from its output.
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def head_tail(model: onnx.ModelProto, outputs: Sequence[str]) -> list[str]:
    """The nodes between ``outputs`` and the last weighted layers before them, by name: a
    detection head's decode (DFL, grid offsets, strides, sigmoid, the final Concat)."""
    producers = {name: node for node in model.graph.node for name in node.output}
    tail: list[str] = []
    seen: set[str] = set()
    pending = [producers[name] for name in outputs if name in producers]
    while pending:
        node = pending.pop()
        # Shape reads only the dimensions of its input, never its values: not part of the decode.
        if node.name in seen or node.op_type in WEIGHTED_OPS or node.op_type == "Shape":
            continue
        seen.add(node.name)
        tail.append(node.name)
        pending.extend(producers[name] for name in node.input if name in producers)
    return sorted(tail)


def prepare_model(source: Path, target: Path) -> onnx.ModelProto:
    """``source`` as quantization takes it (shapes inferred, onnxruntime's basic fusions), written
    to ``target`` with every node named: quantization excludes nodes by name. An unnamed node
    gets the name TensorRT's ONNX parser gives its layer, so a node kept out of INT8 here names
    the same layer there."""
    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    model = onnx.load(str(target))
    for node in model.graph.node:
        if not node.name:
            node.name = f"node_of_{node.output[0]}"
    onnx.save(model, str(target))
    return model


def quantize_qdq(
    model_path: Path,
    input_name: str,
    calibration: np.ndarray,
    output: Path,
    keep_fp32: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[str]:
    """Write the INT8 Q/DQ version of ``model_path`` to ``output``, calibrated on ``calibration``.

    The decode tails of the outputs named in ``keep_fp32`` stay in FP32, and so do the nodes
    named in ``exclude`` (edgekit.sensitivity's choice); returns the decode nodes kept.
    """
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            # The entropy calibrator prints progress on stdout, which belongs to --json output.
            with contextlib.redirect_stdout(io.StringIO()):
                kept = head_tail(prepare_model(model_path, prepared), keep_fp32)
                quantize_static(
                    str(prepared),
                    str(output),
                    _TensorReader(input_name, calibration),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=CalibrationMethod.Entropy,
                    nodes_to_exclude=[*kept, *exclude],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
                )
        except (
            ValueError,
            RuntimeError,
            onnxruntime.capi.onnxruntime_pybind11_state.Fail,
            onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument,
        ) as exc:
            raise ModelError(
                f"INT8 quantization of {model_path} failed ({exc}); check the model runs in onnxruntime."
            ) from exc
    return kept


def reference_outputs(model_path: Path, input_name: str, inputs: np.ndarray) -> np.ndarray:
    """FP32 outputs of the original model, one sample at a time: what the gate compares with."""
    # The device's own session options, so the host's INT8 figures are the ones the device gets.
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    return np.concatenate([session.run(None, {input_name: x[np.newaxis]})[0] for x in inputs]).astype(np.float32)
