"""End to end: models as their exporters wrote them provision on a twin without hand edits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_scenes import scene, write_scenes
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


def provision(twin: TwinInfo, tmp_path: Path, model: Path, *extra: str) -> dict:
    calib, holdout = tmp_path / "calib", tmp_path / "holdout"
    write_scenes(str(calib), 96, seed=21)
    write_scenes(str(holdout), 32, seed=22)
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
