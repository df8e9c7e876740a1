"""End to end: Ultralytics pose and segmentation exports served as tasks of their own on a twin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_models_twin import MODELS, provision
from test_provision_twin import on_twin

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e
# The clip test_models_twin.provision ships.
WIDTH, HEIGHT = 320, 240


def served_boxes(twin: TwinInfo) -> list[dict]:
    lines = on_twin(twin, "tail", "-n", "20", "/var/lib/edgekit/results/results.jsonl").splitlines()
    found = [box for line in lines for box in json.loads(line)["detections"]]
    assert found, lines
    for x1, y1, x2, y2 in (box["box"] for box in found):
        assert 0 <= x1 <= x2 <= WIDTH and 0 <= y1 <= y2 <= HEIGHT
    return found


def test_an_ultralytics_pose_export_serves_keypoints_per_box(models_twin: TwinInfo, tmp_path: Path) -> None:
    provisioned = provision(models_twin, tmp_path, MODELS / "ultralytics-yolov8-tiny-pose.onnx")
    result, log = provisioned["result"], provisioned["log"]
    assert "model: read Ultralytics metadata" in log
    gate = result["gate"]
    assert (result["task"], gate["measure"]) == ("pose", "matched-box F1")
    assert gate["reference_boxes"] >= 30 and gate["box_f1"] >= 0.9, gate
    manifest = json.loads(on_twin(models_twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["detect"]["kpt_shape"] == [4, 3] and manifest["fp32_nodes"]
    for box in served_boxes(models_twin):
        assert len(box["keypoints"]) == 4
        for x, y, visibility in box["keypoints"]:
            assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT and 0 <= visibility <= 1


def test_an_ultralytics_segmentation_export_serves_an_outline_per_box(models_twin: TwinInfo, tmp_path: Path) -> None:
    provisioned = provision(models_twin, tmp_path, MODELS / "ultralytics-yolov8-tiny-seg.onnx")
    result, log = provisioned["result"], provisioned["log"]
    assert "model: read Ultralytics metadata" in log
    gate = result["gate"]
    assert (result["task"], gate["measure"]) == ("segment", "matched-box F1")
    assert gate["reference_boxes"] >= 30 and gate["box_f1"] >= 0.9, gate
    manifest = json.loads(on_twin(models_twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["detect"]["masks"] == 32
    outlined = [box for box in served_boxes(models_twin) if box["outline"]]
    assert outlined
    for box in outlined:
        x1, y1, x2, y2 = box["box"]
        # The outline lies in its box (to within the outline's one-pixel tolerance, in source pixels).
        for x, y in box["outline"]:
            assert x1 - 3 <= x <= x2 + 3 and y1 - 3 <= y <= y2 + 3
