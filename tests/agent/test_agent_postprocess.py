from __future__ import annotations

import numpy as np
import pytest

from edgekit.agent.config import BuildConfig, DetectConfig, Release
from edgekit.agent.postprocess import RAW_VALUES, classify, make_postprocess
from edgekit.agent.preprocess import PreprocessSpec


def test_logits_get_softmax_and_come_back_best_first():
    logits = np.array([[1.0, 3.0, -2.0, 2.0]], dtype=np.float32)
    top = classify(logits, ["a", "b", "c", "d"], topk=3)
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert [t["label"] for t in top] == ["b", "d", "a"]
    assert [t["index"] for t in top] == [1, 3, 0]
    assert [t["score"] for t in top] == [round(float(expected[i]), 4) for i in (1, 3, 0)]


def test_probabilities_are_kept_as_they_are():
    top = classify(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], topk=3)
    assert [(t["label"], t["score"]) for t in top] == [("b", 0.7), ("c", 0.2), ("a", 0.1)]


def test_non_negative_scores_that_do_not_sum_to_one_are_logits():
    top = classify(np.array([0.0, 2.0]), ["a", "b"], topk=2)
    assert top[0]["score"] == pytest.approx(0.8808, abs=1e-4)


def test_without_labels_the_index_is_the_label_and_topk_is_capped():
    top = classify(np.array([3.0, 1.0, 2.0]), [], topk=10)
    assert [t["label"] for t in top] == ["0", "2", "1"]
    assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-3)


def release_for(task, detect=None, resize="letterbox"):
    spec = PreprocessSpec(input_name="images", height=320, width=320, resize=resize)
    build = BuildConfig(int8="none", workspace_mib=0, dla_core=None)
    return Release(
        "r.json", "/r", "r1", "onnxruntime", "/r/m.onnx", "fp32", build, task, ["person", "car"], spec, detect
    )


def test_a_detection_release_maps_boxes_back_to_the_frame_with_its_thresholds():
    # YOLOv8 columns (cx, cy, w, h, person, car); a 640x480 frame letterboxed into 320x320
    # has scale 0.5 and 40 px of padding above: model (140..180, 130..150) is source
    # ((140 - 0) / 0.5 .. 360, (130 - 40) / 0.5 .. 220).
    head = np.array(
        [[[160.0, 160.0, 20.0]], [[140.0, 140.0, 60.0]], [[40.0, 42.0, 10.0]], [[20.0, 20.0, 10.0]]]
        + [[[0.9, 0.8, 0.1]], [[0.05, 0.1, 0.3]]],
        dtype=np.float32,
    ).reshape(1, 6, 3)
    post = make_postprocess(release_for("detect", DetectConfig("yolov8", conf=0.25, iou=0.45)), ["out"], 3)
    found = post([head], (480, 640))["detections"]
    # The second box overlaps the first (same class) and is suppressed.
    person = {"index": 0, "label": "person", "score": 0.9, "box": [280.0, 180.0, 360.0, 220.0]}
    car = {"index": 1, "label": "car", "score": 0.3, "box": [30.0, 30.0, 50.0, 50.0]}
    assert found == [person, car]
    stricter = make_postprocess(release_for("detect", DetectConfig("yolov8", conf=0.5)), ["out"], 3)
    assert stricter([head], (480, 640)) == {"detections": [person]}


def test_a_raw_release_writes_named_outputs_with_their_shapes_and_caps_the_values():
    post = make_postprocess(release_for("raw"), ["a", "b"], 3)
    small = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 3
    large = np.zeros((1, 5000), dtype=np.float32)
    records = post([small, large], (480, 640))["outputs"]
    assert records[0] == {
        "name": "a",
        "shape": [1, 2, 3],
        "values": [0.0, 0.33333, 0.66667, 1.0, 1.33333, 1.66667],
        "truncated": False,
    }
    assert (records[1]["name"], records[1]["shape"], len(records[1]["values"])) == ("b", [1, 5000], RAW_VALUES)
    assert records[1]["truncated"] is True


def test_a_classification_release_gives_the_top_k():
    post = make_postprocess(release_for("classify"), ["logits"], 1)
    assert post([np.array([[0.2, 0.8]])], (480, 640)) == {"top": [{"index": 1, "label": "car", "score": 0.8}]}
