"""Detection postprocessing against boxes computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.agent.detect import decode, detect, letterbox_geometry, nms, stretch_geometry
from edgekit.agent.preprocess import PreprocessSpec, preprocess

LABELS = ["person", "car", "dog"]


def yolov8(*detections: tuple[float, float, float, float, int, float], classes: int = 3) -> np.ndarray:
    """[1, 4 + C, N]: one column per candidate box (cx, cy, w, h, class scores)."""
    columns = []
    for cx, cy, w, h, cls, score in detections:
        scores = [0.0] * classes
        scores[cls] = score
        columns.append([cx, cy, w, h, *scores])
    return np.asarray(columns, dtype=np.float32).T[np.newaxis]


def test_letterbox_geometry_of_a_640x480_frame_in_320x320():
    # ratio 0.5: the frame becomes 320x240, centred with 40 rows of padding above.
    geometry = letterbox_geometry(480, 640, 320, 320)
    assert (geometry.scale_x, geometry.scale_y, geometry.left, geometry.top) == (0.5, 0.5, 0.0, 40.0)


def test_a_box_maps_back_through_the_letterbox_to_source_pixels():
    # Model box centre (160, 160), 100x50 -> xyxy (110, 135, 210, 185) in the 320x320 input;
    # minus the 40-row pad, divided by 0.5: (220, 190, 420, 290) in the 640x480 frame.
    found = detect(yolov8((160, 160, 100, 50, 1, 0.9)), "yolov8", letterbox_geometry(480, 640, 320, 320), LABELS)
    assert found == [{"index": 1, "label": "car", "score": 0.9, "box": [220.0, 190.0, 420.0, 290.0]}]


def test_the_letterbox_geometry_is_the_one_preprocess_draws():
    # A white 640x480 frame: the padded rows of the input are exactly where the geometry says.
    spec = PreprocessSpec("images", 320, 320, resize="letterbox", scale=1.0, color="bgr")
    tensor = preprocess(np.full((480, 640, 3), 255, np.uint8), spec)[0, 0]
    geometry = letterbox_geometry(480, 640, 320, 320)
    top, bottom = int(geometry.top), int(geometry.top + 480 * geometry.scale_y)
    assert np.all(tensor[:top] == 114) and np.all(tensor[bottom:] == 114)
    assert np.all(tensor[top:bottom] == 255)


def test_stretch_maps_each_axis_on_its_own():
    found = detect(yolov8((32, 32, 16, 16, 0, 0.8)), "yolov8", stretch_geometry(480, 640, 64, 64), LABELS)
    # x scale 10, y scale 7.5: (24..40, 24..40) -> (240..400, 180..300).
    assert found[0]["box"] == [240.0, 180.0, 400.0, 300.0]


def test_boxes_are_clipped_to_the_frame():
    found = detect(yolov8((5, 5, 20, 20, 2, 0.7)), "yolov8", stretch_geometry(100, 100, 100, 100), LABELS)
    assert found[0]["box"] == [0.0, 0.0, 15.0, 15.0]


def test_nms_keeps_the_best_of_overlapping_boxes_of_one_class_only():
    output = yolov8(
        (100, 100, 50, 50, 0, 0.9),
        (102, 101, 50, 50, 0, 0.8),  # IoU ~0.9 with the first, same class: suppressed
        (102, 101, 50, 50, 1, 0.6),  # same place, another class: kept
        (300, 300, 40, 40, 0, 0.5),  # elsewhere: kept
        (300, 300, 40, 40, 0, 0.1),  # below the confidence threshold
    )
    found = detect(output, "yolov8", stretch_geometry(640, 640, 640, 640), LABELS)
    assert [(d["label"], d["score"]) for d in found] == [("person", 0.9), ("car", 0.6), ("person", 0.5)]


def test_nms_threshold_is_an_iou():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)  # IoU 50 / 150 = 1/3
    scores, classes = np.array([0.9, 0.8]), np.array([0, 0])
    assert nms(boxes, scores, classes, iou_threshold=0.3, limit=10) == [0]
    assert nms(boxes, scores, classes, iou_threshold=0.34, limit=10) == [0, 1]
    assert nms(boxes, scores, classes, iou_threshold=0.34, limit=1) == [0]


def test_yolov5_rows_multiply_objectness_and_class_score():
    rows = np.array([[[50, 50, 10, 10, 0.5, 0.1, 0.9, 0.0], [20, 20, 4, 4, 0.2, 0.9, 0.0, 0.0]]], np.float32)
    boxes, scores, classes, _ = decode(rows, "yolov5", conf_threshold=0.25)
    # 0.5 * 0.9 = 0.45 passes; 0.2 * 0.9 = 0.18 does not.
    assert classes.tolist() == [1] and scores.tolist() == pytest.approx([0.45])
    assert boxes.tolist() == [[45.0, 45.0, 55.0, 55.0]]


def test_an_unknown_head_is_refused():
    with pytest.raises(ValueError, match="yolov5, yolov8"):
        decode(np.zeros((1, 7, 3)), "ssd", 0.25)


def test_end2end_rows_are_corner_boxes_with_score_and_class():
    rows = np.array([[[10, 20, 30, 60, 0.9, 1], [0, 0, 5, 5, 0.1, 0], [40, 40, 50, 50, 0.5, 0]]], np.float32)
    boxes, scores, classes, _ = decode(rows, "end2end", 0.25)
    assert boxes.tolist() == [[10, 20, 30, 60], [40, 40, 50, 50]]
    assert scores.tolist() == pytest.approx([0.9, 0.5]) and classes.tolist() == [1, 0]


@pytest.mark.parametrize(("dtype", "expected"), [("uint8", np.uint8), ("float16", np.float16)])
def test_preprocess_makes_the_input_type_the_model_takes(dtype, expected):
    frame = np.full((4, 6, 3), 200, np.uint8)
    scale = 1.0 if dtype == "uint8" else 1 / 255
    batch = preprocess(frame, PreprocessSpec("x", 4, 6, layout="NHWC", scale=scale, dtype=dtype))
    assert batch.dtype == expected and batch.shape == (1, 4, 6, 3)
    # A uint8 model gets the camera's pixels, not normalised ones.
    assert float(batch.max()) == pytest.approx(200 if dtype == "uint8" else 200 / 255, rel=1e-3)


def test_a_uint8_input_refuses_normalisation():
    with pytest.raises(ValueError, match="raw pixels"):
        PreprocessSpec("x", 4, 6, dtype="uint8")
