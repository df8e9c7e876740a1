"""INT8 Q/DQ made on the host: symmetric, per-channel, and agreeing with FP32."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from edgekit.calibration import CalibrationData, prepare
from edgekit.errors import ModelError
from edgekit.model import inspect_model
from edgekit.quantize import quantize_qdq, reference_outputs

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
MODEL = SAMPLES / "model.onnx"


@pytest.fixture(scope="module")
def data() -> CalibrationData:
    info = inspect_model(MODEL)
    return prepare(SAMPLES / "calib", SAMPLES / "holdout", info.preprocess, info.labels)


@pytest.fixture(scope="module")
def quantized(data: CalibrationData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("q") / "model.int8.onnx"
    # A classifier has no head decode to keep out of INT8.
    assert quantize_qdq(MODEL, "image", data.calibration, output) == []
    return output


def test_qdq_nodes_and_symmetric_zero_points(quantized: Path) -> None:
    model = onnx.load(str(quantized))
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QuantizeLinear") >= 3
    assert ops.count("DequantizeLinear") >= 6
    # The float compute nodes survive (QDQ, not QOperator format).
    assert {"Conv", "Gemm"} <= set(ops)
    assert not {"QLinearConv", "QGemm", "ConvInteger"} & set(ops)
    initializers = {init.name: init for init in model.graph.initializer}
    int8_zero_points = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero_point = initializers[node.input[2]]
            if zero_point.data_type == TensorProto.INT8:
                int8_zero_points.append(numpy_helper.to_array(zero_point))
    # Every activation and weight quantizer: one per Q node plus the weights' DQ.
    assert len(int8_zero_points) >= ops.count("QuantizeLinear") + 3
    for zero_point in int8_zero_points:
        assert zero_point.dtype == np.int8
        assert not zero_point.any()
    # Weights are per channel: conv1 has 8 output channels, so 8 scales.
    weight_scales = [
        numpy_helper.to_array(initializers[node.input[1]])
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
        and initializers.get(node.input[0]) is not None
        and initializers[node.input[0]].data_type == TensorProto.INT8
    ]
    assert any(scale.size == 8 for scale in weight_scales)


def test_input_and_output_names_are_kept(quantized: Path) -> None:
    model = onnx.load(str(quantized))
    assert [v.name for v in model.graph.input if v.name == "image"] == ["image"]
    assert [v.name for v in model.graph.output] == ["logits"]


def test_top1_agreement_with_fp32(quantized: Path, data: CalibrationData) -> None:
    reference = reference_outputs(MODEL, "image", data.holdout)
    int8 = reference_outputs(quantized, "image", data.holdout)
    assert reference.shape == int8.shape == (360, 10)
    assert reference.dtype == np.float32
    agreement = float(np.mean(reference.argmax(axis=1) == int8.argmax(axis=1)))
    assert agreement >= 0.99
    # Quantized, not a copy of FP32: the logits differ a little.
    assert not np.array_equal(reference, int8)
    assert data.holdout_labels is not None
    assert float(np.mean(int8.argmax(axis=1) == data.holdout_labels)) >= 0.97


def test_reference_outputs_one_by_one_match_a_batch(data: CalibrationData) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    batch = session.run(None, {"image": data.holdout[:8]})[0]
    np.testing.assert_allclose(reference_outputs(MODEL, "image", data.holdout[:8]), batch, rtol=1e-5, atol=1e-5)


def test_quantization_is_deterministic_and_quiet(
    data: CalibrationData, quantized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = tmp_path / "again.onnx"
    quantize_qdq(MODEL, "image", data.calibration, again)
    # Progress of the calibrator must not reach stdout, which belongs to --json.
    assert capsys.readouterr().out == ""
    digest = hashlib.sha256(again.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(quantized.read_bytes()).hexdigest()


def test_wrong_input_name_is_a_model_error(data: CalibrationData, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="INT8 quantization"):
        quantize_qdq(MODEL, "not-the-input", data.calibration[:20], tmp_path / "x.onnx")


def test_no_calibration_data_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        quantize_qdq(MODEL, "image", np.zeros((0, 1, 8, 8), np.float32), tmp_path / "x.onnx")


def test_wrong_tensor_shape_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        quantize_qdq(MODEL, "image", np.zeros((20, 1, 9, 9), np.float32), tmp_path / "x.onnx")
