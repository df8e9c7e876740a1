"""A real Ultralytics YOLOv8 export keeps its boxes through the host's INT8 step.

The defect this guards: one INT8 scale on the head's final Concat (coordinates 0-160,
class scores 0-1) rounds every score to zero, so INT8 finds no box while its output
still follows FP32 to a cosine of 0.999. The model is tests/data/models' Ultralytics
export (trained on synthetic scenes, so FP32 finds boxes on them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from synthetic_scenes import write_scenes

from edgekit.agent.gate import detection_agreement
from edgekit.bundle import BundleRequest, build_bundle
from edgekit.quantize import quantize_qdq, reference_outputs

YOLO = Path(__file__).resolve().parent / "data" / "models" / "ultralytics-yolov8-tiny-detect.onnx"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("scenes")
    write_scenes(str(root / "calib"), 120, seed=11)
    write_scenes(str(root / "holdout"), 40, seed=12)
    return root / "calib", root / "holdout"


@pytest.fixture(scope="module")
def bundle(scenes: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("edgekit.bundle.CACHE_DIR", cache)
        return build_bundle(BundleRequest(YOLO, scenes[0], scenes[1], "int8"))


def boxes_kept(served: Path, fp32: Path, holdout: np.ndarray, bundle) -> dict:  # type: ignore[no-untyped-def]
    name = bundle.model.preprocess.input_name
    outputs, reference = reference_outputs(served, name, holdout), reference_outputs(fp32, name, holdout)
    return detection_agreement(list(outputs), list(reference), bundle.model.detect)


def test_the_export_is_read_as_the_detector_it_is(bundle) -> None:  # type: ignore[no-untyped-def]
    model = bundle.model
    assert (model.task, model.labels, model.detect.head) == ("detect", ("ball", "crate"), "yolov8")
    assert (model.input_shape, model.pinned) == ((1, 3, 160, 160), True)
    assert model.preprocess.resize == "letterbox"
    # The served FP32 model is the pinned copy, its batch left dynamic for TensorRT's profile,
    # and its output's anchor axis fixed as measured (it followed the image size).
    assert bundle.files["model.onnx"].parent == bundle.directory
    served = onnx.load(str(bundle.files["model.onnx"]))
    declared = [[d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in served.graph.output]
    assert declared == [["batch", 6, 525]]


def test_int8_finds_the_boxes_fp32_finds(bundle, scenes) -> None:  # type: ignore[no-untyped-def]
    holdout = np.load(bundle.files["gate.npz"])["inputs"]
    kept = boxes_kept(bundle.files["model.int8.onnx"], bundle.files["model.onnx"], holdout, bundle)
    assert kept["reference_boxes"] >= 40, kept
    assert kept["box_f1"] >= 0.9, kept
    # What stayed in FP32 is the decode after the last convolutions, the final Concat among it:
    # all of it in Ultralytics' Detect module (model.22), none of the backbone or neck.
    assert "/model.22/Concat_26" in bundle.fp32_nodes
    assert all(node.startswith("/model.22/") for node in bundle.fp32_nodes), bundle.fp32_nodes


def test_without_the_head_kept_out_int8_loses_every_box(bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    holdout = np.load(bundle.files["gate.npz"])["inputs"]
    calibration = np.load(bundle.files["calib.npy"])
    naive = tmp_path / "naive.int8.onnx"
    assert quantize_qdq(bundle.files["model.onnx"], bundle.model.preprocess.input_name, calibration, naive) == []
    lost = boxes_kept(naive, bundle.files["model.onnx"], holdout, bundle)
    assert lost["reference_boxes"] >= 40 and lost["boxes"] == 0, lost
