"""Models as exporters write them: Ultralytics metadata, no metadata at all, a sidecar, the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from test_model import image_model, refused, save

from edgekit.errors import ModelError
from edgekit.exporters import ModelOverrides, sidecar_path
from edgekit.heads import infer_head
from edgekit.model import inspect_model

YOLO = Path(__file__).resolve().parent / "data" / "models" / "ultralytics-yolov8-tiny-detect.onnx"


@pytest.mark.parametrize(
    ("shape", "task", "layout", "classes"),
    [
        ([1, 1000], "classify", None, 1000),
        ([1, 10, 1, 1], "classify", None, 10),
        ([1, 84, 8400], "detect", "yolov8", 80),
        ([1, 25200, 85], "detect", "yolov5", 80),
        ([1, 1575, 6], "detect", "yolov5", 1),
        ([1, 300, 6], "detect", "end2end", None),
    ],
)
def test_the_task_is_read_off_the_output_shape(shape: list[int], task: str, layout: str | None, classes: int) -> None:
    head = infer_head("m.onnx", [("out", shape)])
    assert (head.task, head.layout, head.classes) == (task, layout, classes)
    assert str(shape[1]) in head.reason


@pytest.mark.parametrize("outputs", [[("a", [1, 3, 32, 32])], [("boxes", [1, 100, 4]), ("scores", [1, 100])]])
def test_an_unclear_head_is_refused_with_the_choices(outputs: list[tuple[str, list[int]]]) -> None:
    choices = "pass --task classify, --task detect, --task pose, --task segment or --task raw"
    with pytest.raises(ModelError, match=choices):
        infer_head("m.onnx", outputs)


def test_an_ultralytics_export_is_read_from_its_own_metadata() -> None:
    info = inspect_model(YOLO)
    assert (info.task, info.labels, info.detect.head, info.detect.iou) == ("detect", ("ball", "crate"), "yolov8", 0.7)
    assert info.input_shape == (1, 3, 160, 160)
    assert info.notes[0] == "read Ultralytics metadata"


def test_the_same_export_without_its_metadata_is_inferred_and_says_so(tmp_path: Path) -> None:
    model = onnx.load(str(YOLO))
    del model.metadata_props[:]
    path = save(model, tmp_path / "bare.onnx")
    assert "--input-size WxH" in refused(path)
    info = inspect_model(path, ModelOverrides(input_size=(160, 160), labels=write(tmp_path / "l.txt", "a\nb\n")))
    assert (info.task, info.detect.head, info.labels) == ("detect", "yolov8", ("a", "b"))
    assert any("task detect inferred from one output output0 [1, 6, 525]" in note for note in info.notes)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_sidecar_overrides_the_export_and_the_command_line_overrides_both(tmp_path: Path) -> None:
    path = tmp_path / "yolo.onnx"
    shutil.copy(YOLO, path)
    write(
        sidecar_path(path), 'labels = ["red", "blue"]\ninput_size = [320, 224]\n[detect]\nhead = "yolov8"\nconf = 0.4\n'
    )
    info = inspect_model(path)
    assert (info.labels, info.input_shape, info.detect.conf) == (("red", "blue"), (1, 3, 224, 320), 0.4)
    assert info.notes[0] == "read Ultralytics metadata, yolo.edgekit.toml"
    assert inspect_model(path, ModelOverrides(input_size=(96, 96))).input_shape == (1, 3, 96, 96)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (ModelOverrides(input_size=(100, 100)), "100x100 is not an input size"),
        (ModelOverrides(labels=Path("/nonexistent/labels.txt")), "Cannot read the labels file"),
        (ModelOverrides(task="classify"), None),
    ],
)
def test_bad_overrides_are_one_sentence(overrides: ModelOverrides, words: str | None, tmp_path: Path) -> None:
    if words is None:
        # A detector taken for a classifier: its labels do not fit the 6 rows it would have.
        overrides = ModelOverrides(task="classify", labels=write(tmp_path / "l.txt", "a\nb\nc\n"))
        words = "has 6 classes but 3 labels were given"
    with pytest.raises(ModelError) as info:
        inspect_model(YOLO, overrides)
    assert words in str(info.value) and str(info.value).count(". ") == 0


def test_a_fixed_size_refuses_another_input_size(tmp_path: Path) -> None:
    path = save(image_model([1, 3, 32, 32], meta={"task": "raw"}), tmp_path / "fixed.onnx")
    with pytest.raises(ModelError, match="has a fixed height 32, width 32, so it cannot take 64x64"):
        inspect_model(path, ModelOverrides(input_size=(64, 64)))


def test_an_nhwc_uint8_input_with_two_outputs_is_served_raw_pixels(tmp_path: Path) -> None:
    """The usual shape of a TensorFlow export: [N, H, W, 3] uint8 in, boxes and scores out."""
    cast = helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT)
    boxes = helper.make_node("ReduceMean", ["f"], ["boxes"], axes=[3], keepdims=0)
    scores = helper.make_node("ReduceMax", ["f"], ["scores"], axes=[1, 2], keepdims=0)
    graph = helper.make_graph(
        [cast, boxes, scores],
        "tf",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 48, 64, 3])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 48, 64]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3]),
        ],
    )
    path = save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), tmp_path / "t.onnx"
    )
    assert "--task raw" in refused(path)
    info = inspect_model(path, ModelOverrides(task="raw"))
    spec = info.preprocess
    assert (spec.layout, spec.dtype, spec.scale, spec.height, spec.width) == ("NHWC", "uint8", 1.0, 48, 64)
    assert [output.shape for output in info.outputs] == [(1, 48, 64), (1, 3)]
    # What was read off the input is said, so a wrong reading shows in the provision log.
    assert "frames become uint8 NHWC 64x48 RGB, stretch, raw pixels 0-255" in info.notes


TORCHVISION = YOLO.with_name("torchvision-mobilenet_v3_small-dynamic.onnx")


def test_a_torchvision_export_without_metadata_needs_only_its_input_size() -> None:
    """torch.onnx's output for a torchvision classifier with dynamic batch, height and width."""
    message = refused(TORCHVISION)
    assert "has a dynamic image size and nothing states one; pass --input-size WxH" in message
    info = inspect_model(TORCHVISION, ModelOverrides(input_size=(96, 96)))
    assert (info.task, info.input_shape, info.pinned) == ("classify", (1, 3, 96, 96), True)
    assert any("task classify inferred from one output logits [1, 2]: 2 class scores" in n for n in info.notes)
    assert any("pinned to ['batch', 3, 96, 96]" in note for note in info.notes)
    assert "frames become float32 NCHW 96x96 RGB, stretch, pixels x 0.00392157" in info.notes


def test_a_known_head_says_which_of_several_outputs_it_reads(tmp_path: Path) -> None:
    flat = helper.make_node("Flatten", ["x0"], ["logits"])
    extra = helper.make_node("Identity", ["x0"], ["features"])
    graph = helper.make_graph(
        [flat, extra],
        "two",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 192]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 8, 8]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    info = inspect_model(save(model, tmp_path / "two.onnx"), ModelOverrides(task="classify"))
    assert info.notes[-1] == "the classify head reads output logits; features not used (--task raw serves all)"


POSE = YOLO.with_name("ultralytics-yolov8-tiny-pose.onnx")
SEGMENT = YOLO.with_name("ultralytics-yolov8-tiny-seg.onnx")


def test_ultralytics_pose_and_segment_exports_are_tasks_of_their_own() -> None:
    pose, segment = inspect_model(POSE), inspect_model(SEGMENT)
    assert (pose.task, pose.detect.kpt_shape, pose.detect.extra, pose.labels) == ("pose", (4, 3), 12, ("ball", "crate"))
    assert (segment.task, segment.detect.masks, segment.labels) == ("segment", 32, ("ball", "crate"))
    # The prototypes are read, so no note calls the second output unused.
    assert not any("not used" in note for note in segment.notes)


def test_a_segmentation_export_without_metadata_is_inferred_from_its_two_outputs(tmp_path: Path) -> None:
    model = onnx.load(str(SEGMENT))
    del model.metadata_props[:]
    path = save(model, tmp_path / "bare-seg.onnx")
    info = inspect_model(path, ModelOverrides(input_size=(160, 160)))
    assert (info.task, info.detect.masks) == ("segment", 32)
    assert any(
        "task segment inferred from outputs output0 [1, 38, 525] and output1 [1, 32, 40, 40]: 4 box values, 2 class "
        "scores and 32 mask coefficients" in note
        for note in info.notes
    )


def test_a_pose_export_without_its_keypoint_shape_is_refused_by_name(tmp_path: Path) -> None:
    model = onnx.load(str(POSE))
    del model.metadata_props[:]
    path = save(model, tmp_path / "bare-pose.onnx")
    # Without metadata it looks like a detector of 14 classes, and says that is a guess.
    guessed = inspect_model(path, ModelOverrides(input_size=(160, 160)))
    assert guessed.task == "detect" and any("pass --task to say otherwise" in note for note in guessed.notes)
    message = refused(path, ModelOverrides(task="pose", input_size=(160, 160)))
    assert "keypoint shape is None, not [keypoints, 2 or 3]" in message and "kpt_shape = [17, 3]" in message
    write(sidecar_path(path), 'task = "pose"\ninput_size = [160, 160]\n[detect]\nhead = "yolov8"\nkpt_shape = [4, 3]\n')
    assert inspect_model(path).detect.kpt_shape == (4, 3)


def test_the_original_yolov5_exporter_s_names_and_stride_are_read() -> None:
    """yolov5's export.py writes only stride and names; its trainer letterboxes RGB in 0-1."""
    path = YOLO.with_name("yolov5-tiny-detect.onnx")
    assert "--input-size WxH" in refused(path)
    info = inspect_model(path, ModelOverrides(input_size=(160, 160)))
    assert (info.task, info.detect.head, info.labels, info.preprocess.resize) == (
        "detect",
        "yolov5",
        ("ball", "crate"),
        "letterbox",
    )


def test_a_one_class_yolov5_head_read_as_end_to_end_is_corrected_by_the_sidecar(tmp_path: Path) -> None:
    """[1, 300, 6] fits both layouts; unstated it reads as end-to-end, as the log says."""
    rows = helper.make_tensor("rows", TensorProto.FLOAT, [1, 300, 6], [0.5] * 1800)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["level"], keepdims=0),
            helper.make_node("Mul", ["rows", "level"], ["out"]),
        ],
        "v5",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 300, 6])],
        initializer=[rows],
    )
    path = save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), tmp_path / "v5.onnx"
    )
    assert inspect_model(path).detect.head == "end2end"
    write(sidecar_path(path), '[detect]\nhead = "yolov5"\n')
    info = inspect_model(path)
    assert (info.task, info.detect.head) == ("detect", "yolov5")
