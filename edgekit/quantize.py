"""INT8 Q/DQ models made on the host with onnxruntime's static quantization.

Symmetric INT8 scales for weights and activations, in QDQ format, which is what TensorRT's
explicit-quantization path accepts and what the onnxruntime backend runs directly.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


def quantize_qdq(model_path: Path, input_name: str, calibration: np.ndarray, output: Path) -> Path:
    """Write the INT8 Q/DQ version of ``model_path`` to ``output``, calibrated on ``calibration``."""
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            # The entropy calibrator prints progress on stdout, which belongs to --json output.
            with contextlib.redirect_stdout(io.StringIO()):
                quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
                quantize_static(
                    str(prepared),
                    str(output),
                    _TensorReader(input_name, calibration),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=CalibrationMethod.Entropy,
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
    return output


def reference_outputs(model_path: Path, input_name: str, inputs: np.ndarray) -> np.ndarray:
    """FP32 outputs of the original model, one sample at a time: what the gate compares with."""
    # The device's own session options, so the host's INT8 figures are the ones the device gets.
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    return np.concatenate([session.run(None, {input_name: x[np.newaxis]})[0] for x in inputs]).astype(np.float32)
