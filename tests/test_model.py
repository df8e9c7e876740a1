"""``inspect_model``: refuse a broken or unsupported ONNX on the host, describe a good one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import onnx
import pytest
from digits_sample import DIGITS_SPEC, SAMPLES
from onnx import TensorProto, helper

from edgekit.agent.config import DetectConfig
from edgekit.agent.preprocess import PreprocessSpec
from edgekit.errors import ModelError
from edgekit.exporters import ModelOverrides
from edgekit.model import inspect_model, sha256_file


def one_sentence(message: str) -> bool:
    """One line, ending in a full stop, with no second sentence started inside."""
    return "\n" not in message and message.endswith(".") and not re.search(r"[.!?]\s+[A-Z]", message[:-1])


def refused(path: Path, overrides: ModelOverrides | None = None) -> str:
    with pytest.raises(ModelError) as info:
        inspect_model(path, overrides)
    assert type(info.value) is ModelError
    message = str(info.value)
    assert one_sentence(message), message
    return message


def image_model(
    shape: list[int | str],
    *,
    opset: int = 17,
    inputs: int = 1,
    meta: object = None,
    dtype: int = TensorProto.FLOAT,
    output: list[int] | None = None,
) -> onnx.ModelProto:
    """A model with image input(s) of ``shape``; its output is the input flattened (a
    classifier's ``[N, classes]`` to edgekit), or reshaped to ``output`` (a detection head)."""
    names = [f"x{i}" for i in range(inputs)]
    nodes = [helper.make_node("Sum", names, ["sum"]), helper.make_node("Flatten", ["sum"], ["flat"])]
    initializers = []
    if output is None:
        nodes.append(helper.make_node("Identity", ["flat"], ["y"]))
    else:
        initializers.append(helper.make_tensor("shape", TensorProto.INT64, [len(output)], output))
        nodes.append(helper.make_node("Reshape", ["flat", "shape"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, dtype, shape) for name in names],
        [helper.make_tensor_value_info("y", dtype, output or ["N", "features"])],
        initializer=initializers,
    )
    # IR 10: what onnxruntime (and TensorRT) read; onnx 1.23 writes 14 by default.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    if meta is not None:
        helper.set_model_props(model, {"edgekit.model": meta if isinstance(meta, str) else json.dumps(meta)})
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_sample_model() -> None:
    path = SAMPLES / "model.onnx"
    info = inspect_model(path)
    assert info.path == path
    assert info.sha256 == sha256_file(path)
    assert len(info.sha256) == 64
    assert info.opset == 17
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [("image", ("N", 1, 8, 8), "float32")]
    # Outputs as served: shapes measured at batch 1.
    assert [(t.name, t.shape, t.dtype) for t in info.outputs] == [("logits", (1, 10), "float32")]
    assert (info.input_shape, info.pinned) == ((1, 1, 8, 8), False)
    assert info.task == "classify"
    assert info.labels == tuple(str(d) for d in range(10))
    assert info.preprocess == DIGITS_SPEC


def test_missing_file(tmp_path: Path) -> None:
    message = refused(tmp_path / "missing.onnx")
    assert "does not exist" in message and "--model" in message


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    assert "does not exist" in refused(tmp_path)


def test_truncated_model(tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    path.write_bytes((SAMPLES / "model.onnx").read_bytes()[:100])
    message = refused(path)
    assert str(path) in message
    assert "truncated" in message


def test_text_file_renamed(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes,\nnot a model\n")
    assert str(path) in refused(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert str(path) in refused(path)


def test_two_inputs(tmp_path: Path) -> None:
    message = refused(save(image_model([1, 3, 32, 32], inputs=2), tmp_path / "two.onnx"))
    assert "2 inputs" in message


def test_old_opset(tmp_path: Path) -> None:
    message = refused(save(image_model([1, 3, 32, 32], opset=9), tmp_path / "op9.onnx"))
    assert "opset 9" in message and "11" in message


def test_opset_11_is_accepted(tmp_path: Path) -> None:
    assert inspect_model(save(image_model([1, 3, 32, 32], opset=11), tmp_path / "op11.onnx")).opset == 11


def test_checker_failure(tmp_path: Path) -> None:
    # Relu has no uint8 kernel in the ONNX spec: the checker refuses it.
    message = refused(save(image_model([1, 3, 32, 32], dtype=TensorProto.UINT8), tmp_path / "u8.onnx"))
    assert "checker" in message


def test_no_nodes(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert "no graph nodes" in refused(save(model, tmp_path / "empty-graph.onnx"))


@pytest.mark.parametrize(
    ("shape", "channels", "layout", "color"),
    [
        ([1, 3, 32, 32], 3, "NCHW", "rgb"),
        (["N", 3, 32, 32], 3, "NCHW", "rgb"),
        ([1, 32, 32, 3], 3, "NHWC", "rgb"),
        ([1, 1, 32, 32], 1, "NCHW", "gray"),
        ([1, 32, 32, 1], 1, "NHWC", "gray"),
    ],
)
def test_default_preprocess_without_metadata(
    tmp_path: Path, shape: list[int | str], channels: int, layout: str, color: str
) -> None:
    info = inspect_model(save(image_model(shape), tmp_path / "plain.onnx"))
    assert info.preprocess == PreprocessSpec(
        input_name="x0", height=32, width=32, channels=channels, layout=layout, color=color
    )
    assert info.preprocess.resize == "stretch"
    assert info.preprocess.scale == pytest.approx(1 / 255)
    assert info.labels == ()
    assert info.task == "classify"


def test_non_square_default_preprocess(tmp_path: Path) -> None:
    nchw = inspect_model(save(image_model([1, 3, 24, 40]), tmp_path / "a.onnx")).preprocess
    assert (nchw.height, nchw.width) == (24, 40)
    nhwc = inspect_model(save(image_model([1, 24, 40, 3]), tmp_path / "b.onnx")).preprocess
    assert (nhwc.height, nhwc.width, nhwc.layout) == (24, 40, "NHWC")


@pytest.mark.parametrize(
    "shape", [[1, 3, "H", 32], [1, 3, 32, "W"], [1, "H", "W", 3], [1, 5, 32, 32], [3, 32, 32], [1, 3, 32, 32, 1]]
)
def test_default_preprocess_refuses_unfit_input(tmp_path: Path, shape: list[int | str]) -> None:
    refused(save(image_model(shape), tmp_path / "bad.onnx"))


def test_dynamic_height_message(tmp_path: Path) -> None:
    assert "fixed image size" in refused(save(image_model([1, 3, "H", 32]), tmp_path / "dyn.onnx"))


def test_metadata_is_used(tmp_path: Path) -> None:
    spec = PreprocessSpec(
        input_name="x0",
        height=32,
        width=32,
        channels=3,
        layout="NCHW",
        color="bgr",
        resize="letterbox",
        scale=1.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    meta = {"task": "raw", "labels": ["cat", "dog", 3], "preprocess": spec.to_dict()}
    info = inspect_model(save(image_model([1, 3, 32, 32], meta=meta), tmp_path / "meta.onnx"))
    assert info.preprocess == spec
    assert info.labels == ("cat", "dog", "3")


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ({"task": "obb"}, "declares task 'obb'"),
        ({"task": "segment"}, "no mask prototypes [1, M, h, w] as its second output"),
        ({"task": "pose", "detect": {"head": "yolov8"}}, "keypoint shape is None, not [keypoints, 2 or 3]"),
        ({"task": "pose", "detect": {"head": "yolov5", "kpt_shape": [17, 3]}}, "edgekit decodes pose from"),
        ({"task": "detect"}, "without a known detection head"),
        ({"task": "detect", "detect": {"head": "yolov9"}}, "without a known detection head"),
        ({"task": "detect", "detect": {"head": "yolov8", "conf": 1.5}}, "detect conf is 1.5"),
        ({"task": "detect", "detect": {"head": "yolov8", "max_det": 0}}, "detect max_det is 0"),
        ({"task": "detect", "detect": {"head": "yolov8", "nms": 0.5}}, "unknown keys ['nms']"),
        ({"preprocess": {"input_name": "other", "height": 32, "width": 32}}, "'other'"),
        ({"labels": "cat,dog"}, "labels are 'cat,dog'; set them to a list of class names"),
    ],
)
def test_bad_metadata(tmp_path: Path, meta: object, words: str) -> None:
    assert words in refused(save(image_model([1, 3, 32, 32], meta=meta), tmp_path / "m.onnx"))


@pytest.mark.parametrize(
    "preprocess",
    [
        {"input_name": "x0", "height": 32, "width": 32, "layout": "CHW"},
        {"input_name": "x0", "height": 32, "width": 32, "colour": "rgb"},
        ["x0", 32, 32],
    ],
)
def test_invalid_preprocess_metadata_is_a_model_error(tmp_path: Path, preprocess: object) -> None:
    refused(save(image_model([1, 3, 32, 32], meta={"preprocess": preprocess}), tmp_path / "m.onnx"))


def test_detection_metadata_is_kept_for_the_release(tmp_path: Path) -> None:
    detect = {"head": "yolov5", "conf": 0.4, "iou": 0.5, "max_det": 20}
    meta = {"task": "detect", "labels": ["person", "car", "bike"], "detect": detect}
    # 384 rows of box, objectness and 3 class scores.
    info = inspect_model(save(image_model([1, 3, 32, 32], meta=meta, output=[1, 384, 8]), tmp_path / "det.onnx"))
    assert (info.task, info.detect) == ("detect", DetectConfig(**detect))
    # The agent's defaults are written out when the metadata leaves them unsaid.
    meta["detect"] = {"head": "yolov8"}
    # 4 box values and 3 class scores for each of 336 anchors.
    v8 = image_model([1, 3, 28, 28], meta=meta, output=[1, 7, 336])
    defaults = inspect_model(save(v8, tmp_path / "defaults.onnx"))
    assert defaults.detect == DetectConfig("yolov8", 0.25, 0.45, 100)


def test_inspect_does_not_touch_the_model(tmp_path: Path) -> None:
    path = tmp_path / "copy.onnx"
    shutil.copy(SAMPLES / "model.onnx", path)
    before = path.read_bytes()
    inspect_model(path)
    assert path.read_bytes() == before
