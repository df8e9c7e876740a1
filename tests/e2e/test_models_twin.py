"""End to end: models as their exporters wrote them provision on a twin without hand edits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_scenes import CLASSES, scene, write_scenes, write_single_object_scenes
from test_provision_twin import edgekit, on_twin

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e
MODELS = Path(__file__).resolve().parents[1] / "data" / "models"


def scene_clip(path: Path, frames: int, seed: int) -> Path:
    """A camera-like clip of synthetic scenes at 320x240, each held for a few frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    rng = np.random.default_rng(seed)
    for _ in range(frames // 5):
        image = cv2.resize(scene(rng, 240)[0], (320, 240))
        for _ in range(5):
            writer.write(image)
    writer.release()
    return path


def single_object_sets(tmp_path: Path, holdout_count: int = 150, labelled: bool = True) -> tuple[Path, Path]:
    """Calibration and held-out single-object scenes, the classifiers' own task (a ball or a crate);
    enough held-out ones that a 99 % top-1 gate means something, labelled so FP32's accuracy shows."""
    calib, holdout = tmp_path / "calib", tmp_path / "holdout"
    write_single_object_scenes(str(calib), 96, seed=24)
    classes = write_single_object_scenes(str(holdout), holdout_count, seed=25)
    if labelled:
        rows = [f"scene-{index:04d}.jpg,{CLASSES[cls]}" for index, cls in enumerate(classes)]
        (holdout / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    return calib, holdout


def provision(twin: TwinInfo, tmp_path: Path, model: Path, *extra: str, sets: tuple[Path, Path] | None = None) -> dict:
    """Provision ``model`` with ``extra`` flags; calibration and held-out images are ``sets``, or
    multi-object scenes (96 and 32) when not given."""
    if sets is None:
        calib, holdout = tmp_path / "calib", tmp_path / "holdout"
        write_scenes(str(calib), 96, seed=21)
        write_scenes(str(holdout), 32, seed=22)
    else:
        calib, holdout = sets
    args = [
        "provision",
        twin.target,
        "--identity",
        twin.identity,
        "--known-hosts",
        str(tmp_path / "known_hosts"),
        "--accept-new-host-key",
        "--no-ssh-config",
        "--model",
        str(model),
        "--calib",
        str(calib),
        "--holdout",
        str(holdout),
        "--source",
        str(scene_clip(tmp_path / "scenes.avi", 60, seed=23)),
        "--json",
        *extra,
    ]
    done = edgekit(*args, home=tmp_path)
    assert done.returncode == 0, done.stderr
    return {"result": json.loads(done.stdout), "log": done.stderr}


def test_an_ultralytics_export_with_dynamic_axes_deploys_as_a_detector(models_twin: TwinInfo, tmp_path: Path) -> None:
    provisioned = provision(models_twin, tmp_path, MODELS / "ultralytics-yolov8-tiny-detect.onnx")
    result, log = provisioned["result"], provisioned["log"]
    assert "model: read Ultralytics metadata" in log and "pinned to ['batch', 3, 160, 160]" in log
    gate = result["gate"]
    # Gated on the boxes FP32 finds, which INT8 keeps: not on top-1 agreement of a [1, 6, 525] tensor.
    assert (result["task"], gate["measure"]) == ("detect", "matched-box F1")
    assert gate["reference_boxes"] >= 30 and gate["box_f1"] >= 0.9, gate
    manifest = json.loads(on_twin(models_twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["detect"]["head"] == "yolov8" and manifest["labels"] == ["ball", "crate"]
    assert "/model.22/Concat_26" in manifest["fp32_nodes"]
    lines = on_twin(models_twin, "tail", "-n", "20", "/var/lib/edgekit/results/results.jsonl").splitlines()
    records = [json.loads(line) for line in lines]
    found = [box for record in records for box in record["detections"]]
    assert found and {box["label"] for box in found} <= {"ball", "crate"}
    # Boxes in the clip's own 320x240 pixels, through the letterbox.
    for x1, y1, x2, y2 in (box["box"] for box in found):
        assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240


def labels_file(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(CLASSES) + "\n")
    return path


def served_records(twin: TwinInfo, release: str) -> list[dict]:
    """The newest result lines of ``release`` (the twin's results file also holds earlier models')."""
    lines = on_twin(twin, "tail", "-n", "20", "/var/lib/edgekit/results/results.jsonl").splitlines()
    records = [record for record in map(json.loads, lines) if record["release"] == release]
    assert records, lines
    return records


def assert_classifier_gate(result: dict, samples: int) -> None:
    gate = result["gate"]
    assert (result["task"], gate["measure"]) == ("classify", "top-1 agreement"), gate
    assert gate["samples"] == samples and gate["top1_agreement"] >= 0.99, gate
    # The labelled hold-out set: FP32 itself knows a ball from a crate, so agreement is not luck.
    assert gate["reference_accuracy"] >= 0.95 and gate["accuracy"] >= 0.95, gate


def test_a_torchvision_classifier_export_deploys_with_its_input_size_and_labels(
    models_twin: TwinInfo, tmp_path: Path
) -> None:
    """torch.onnx's export of a trained torchvision MobileNetV3: dynamic batch, height and width,
    no metadata; the README's flags for it, --input-size and --labels, and nothing else."""
    sets = single_object_sets(tmp_path)
    model = MODELS / "torchvision-mobilenet_v3_small-dynamic.onnx"
    provisioned = provision(
        models_twin, tmp_path, model, "--input-size", "96x96", "--labels", str(labels_file(tmp_path)), sets=sets
    )
    result, log = provisioned["result"], provisioned["log"]
    assert "model: task classify inferred from one output logits [1, 2]" in log, log
    assert "pinned to ['batch', 3, 96, 96]" in log, log
    assert_classifier_gate(result, 150)
    manifest = json.loads(on_twin(models_twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["labels"] == list(CLASSES)
    for record in served_records(models_twin, result["release"]):
        assert record["top"][0]["label"] in CLASSES


def test_a_tf2onnx_export_with_an_nhwc_uint8_input_and_two_outputs_deploys_as_raw(
    models_twin: TwinInfo, tmp_path: Path
) -> None:
    """tf2onnx's conversion of a trained Keras model as TensorFlow exports usually are: NHWC uint8
    in (Cast and Rescaling inside the graph), class probabilities and a box out; --task raw only."""
    sets = single_object_sets(tmp_path, labelled=False)
    provisioned = provision(models_twin, tmp_path, MODELS / "tf2onnx-keras-nhwc-uint8.onnx", "--task", "raw", sets=sets)
    result, log = provisioned["result"], provisioned["log"]
    assert "model: read the command line" in log, log
    gate = result["gate"]
    assert (result["task"], gate["measure"]) == ("raw", "output cosine similarity"), gate
    assert gate["samples"] == 150 and gate["output_cosine"] >= 0.99, gate
    manifest = json.loads(on_twin(models_twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    # Raw pixels in, as the model's own Cast and Rescaling expect: no normalisation on the way.
    preprocess = manifest["preprocess"]
    assert (preprocess["layout"], preprocess["dtype"], preprocess["scale"]) == ("NHWC", "uint8", 1.0), preprocess
    assert (preprocess["height"], preprocess["width"]) == (96, 96), preprocess
    for record in served_records(models_twin, result["release"]):
        outputs = {output["name"]: output for output in record["outputs"]}
        assert (outputs["probabilities"]["shape"], outputs["box"]["shape"]) == ([1, 2], [1, 4]), outputs
        assert abs(sum(outputs["probabilities"]["values"]) - 1) < 1e-3
        assert all(0 <= value <= 1 for value in outputs["box"]["values"])


def test_a_paddle2onnx_classifier_with_dynamic_height_and_width_deploys_with_its_input_size_and_labels(
    models_twin: TwinInfo, tmp_path: Path
) -> None:
    """paddle.onnx.export of a trained PaddleOCR-orientation-classifier-like CNN: input
    [None, 3, None, None], softmax out, no metadata; --input-size and --labels, as the README says."""
    sets = single_object_sets(tmp_path)
    model = MODELS / "paddle-cls-dynamic.onnx"
    provisioned = provision(
        models_twin, tmp_path, model, "--input-size", "192x48", "--labels", str(labels_file(tmp_path)), sets=sets
    )
    result, log = provisioned["result"], provisioned["log"]
    assert "model: task classify inferred from one output fetch_name_0 [1, 2]" in log, log
    assert "pinned to ['DynamicDimension.0', 3, 48, 192]" in log, log
    assert_classifier_gate(result, 150)
    manifest = json.loads(on_twin(models_twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["labels"] == list(CLASSES)
    assert (manifest["preprocess"]["height"], manifest["preprocess"]["width"]) == (48, 192)
    for record in served_records(models_twin, result["release"]):
        assert record["top"][0]["label"] in CLASSES


def assert_detector_served(twin: TwinInfo, result: dict, head: str) -> dict:
    """The box gate passed on real boxes, the release names ``head``, and the served boxes are
    labelled and in the clip's own 320x240 pixels (through the resize); the release's manifest."""
    gate = result["gate"]
    assert (result["task"], gate["measure"]) == ("detect", "matched-box F1"), gate
    assert gate["reference_boxes"] > 0 and gate["box_f1"] >= 0.9, gate
    manifest = json.loads(on_twin(twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["detect"]["head"] == head and manifest["labels"] == list(CLASSES), manifest["detect"]
    found = [box for record in served_records(twin, result["release"]) for box in record["detections"]]
    assert found and {box["label"] for box in found} <= set(CLASSES), found
    for x1, y1, x2, y2 in (box["box"] for box in found):
        assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240, found
    return manifest


def test_an_ultralytics_yolo26_end2end_export_deploys_as_an_nms_free_detector(
    models_twin: TwinInfo, tmp_path: Path
) -> None:
    """Ultralytics' YOLO26 exported with its NMS-free head (nms=False): [batch, 300, 6] rows of
    x1 y1 x2 y2 score class, metadata end2end True and names; no flags, as the README says."""
    provisioned = provision(models_twin, tmp_path, MODELS / "ultralytics-yolo26-tiny-end2end.onnx")
    result, log = provisioned["result"], provisioned["log"]
    assert "model: read Ultralytics metadata" in log, log
    assert "pinned to ['batch', 3, 160, 160]" in log, log
    assert_detector_served(models_twin, result, "end2end")


def test_a_yolov5_export_with_dynamic_axes_deploys_as_an_anchor_based_detector(
    models_twin: TwinInfo, tmp_path: Path
) -> None:
    """The yolov5 package's export.py --include onnx --dynamic of a trained YOLOv5: [batch, anchors,
    5 + C] rows of box, objectness and class scores, and its own stride and names metadata, which
    give the labels and the letterbox; its image axes are dynamic and nothing states the size it
    was trained at, so --input-size, as the README's row says."""
    model = MODELS / "yolov5-tiny-detect.onnx"
    provisioned = provision(models_twin, tmp_path, model, "--input-size", "160x160")
    result, log = provisioned["result"], provisioned["log"]
    assert "frames become float32 NCHW 160x160 RGB, letterbox" in log, log
    assert "inferred from one output output0 [1, 1575, 7]: 1575 anchors of 4 box values, objectness" in log, log
    assert "pinned to ['batch', 3, 160, 160]" in log, log
    assert_detector_served(models_twin, result, "yolov5")
