"""YOLO-style detection: decode the head, class-aware NMS, boxes back in source pixels.

Three head layouts cover the models Jetson teams deploy: YOLOv5/v7 ``[1, N, 5 + C]`` rows
(box, objectness, class scores), YOLOv8/11 ``[1, 4 + C, N]`` columns (box, class scores,
no objectness), both with centre/size boxes, and end-to-end (NMS-free, YOLOv10/26)
``[1, K, 6]`` rows of x1 y1 x2 y2 score class. Boxes are in the model's input pixels; they
are mapped back through the same letterbox or stretch the preprocessing applied.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

FORMATS = ("yolov5", "yolov8", "end2end")


class Geometry(NamedTuple):
    """How a source frame sits in the model input: ``model = source * scale + offset``."""

    scale_x: float
    scale_y: float
    left: float
    top: float
    source_width: int
    source_height: int


def letterbox_geometry(source_height: int, source_width: int, height: int, width: int) -> Geometry:
    """The letterbox preprocess.py draws: one ratio for both axes, the image centred."""
    ratio = min(float(height) / source_height, float(width) / source_width)
    new_h, new_w = max(1, int(round(source_height * ratio))), max(1, int(round(source_width * ratio)))
    return Geometry(
        new_w / float(source_width),
        new_h / float(source_height),
        float((width - new_w) // 2),
        float((height - new_h) // 2),
        source_width,
        source_height,
    )


def stretch_geometry(source_height: int, source_width: int, height: int, width: int) -> Geometry:
    return Geometry(width / float(source_width), height / float(source_height), 0.0, 0.0, source_width, source_height)


class Decoded(NamedTuple):
    """Candidate boxes of one frame: xyxy in model pixels, scores, class ids, and the values
    each row carries after its class scores (keypoints or mask coefficients; none for a detector)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    extras: np.ndarray

    def take(self, kept: Sequence[int]) -> Decoded:
        index = np.asarray(kept, dtype=np.int64)
        return Decoded(self.boxes[index], self.scores[index], self.classes[index], self.extras[index])


def decode(output: np.ndarray, head: str, conf_threshold: float, extra: int = 0) -> Decoded:
    """Candidates above ``conf_threshold``; the last ``extra`` values of each row come back as
    its extras (Ultralytics' pose and segmentation heads append them after the class scores)."""
    if head not in FORMATS:
        raise ValueError("head must be one of {}, not {!r}".format(", ".join(FORMATS), head))
    if extra and head != "yolov8":
        raise ValueError(f"only a yolov8 head carries keypoints or mask coefficients, not {head!r}")
    rows = np.asarray(output, dtype=np.float32)
    if rows.ndim == 3:
        rows = rows[0]
    if head == "end2end":
        keep = rows[:, 4] >= conf_threshold
        return Decoded(rows[keep, :4], rows[keep, 4], rows[keep, 5].astype(np.int64), np.zeros((int(keep.sum()), 0)))
    if head == "yolov8":
        rows = rows.T
        class_scores = rows[:, 4 : rows.shape[1] - extra]
    else:
        class_scores = rows[:, 5:] * rows[:, 4:5]
    classes = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(rows)), classes]
    keep = scores >= conf_threshold
    centre, size = rows[keep, 0:2], rows[keep, 2:4]
    boxes = np.concatenate([centre - size / 2.0, centre + size / 2.0], axis=1)
    return Decoded(boxes, scores[keep], classes[keep], rows[keep, rows.shape[1] - extra :])


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    iou: np.ndarray = inter / np.maximum(area + areas - inter, 1e-9)
    return iou


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Indices kept by greedy class-aware NMS, best score first."""
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    kept: list[int] = []
    while order and len(kept) < limit:
        best, rest = order[0], np.asarray(order[1:], dtype=np.int64)
        kept.append(best)
        if not len(rest):
            break
        overlap = iou(boxes[best], boxes[rest])
        # Boxes of another class never suppress each other.
        survivors = (overlap <= iou_threshold) | (classes[rest] != classes[best])
        order = [int(i) for i in rest[survivors]]
    return kept


def to_source(points: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Model-input pixels to source pixels, clipped to the frame: ``points`` has x, y pairs
    along its last axis (xyxy boxes, keypoints, outlines)."""
    pairs = points.shape[-1] // 2
    scale = np.array([geometry.scale_x, geometry.scale_y] * pairs, dtype=np.float32)
    offset = np.array([geometry.left, geometry.top] * pairs, dtype=np.float32)
    mapped = (points - offset) / scale
    limits = np.array([geometry.source_width, geometry.source_height] * pairs, dtype=np.float32)
    clipped: np.ndarray = np.clip(mapped, 0.0, limits)
    return clipped


def select(decoded: Decoded, iou_threshold: float, limit: int) -> Decoded:
    """What the service reports: the candidates NMS keeps, best first."""
    return decoded.take(nms(decoded.boxes, decoded.scores, decoded.classes, iou_threshold, limit))


def records(found: Decoded, geometry: Geometry, labels: Sequence[str]) -> list[dict[str, Any]]:
    """Result records of kept boxes, in source pixels."""
    boxes = to_source(found.boxes, geometry) if len(found.boxes) else np.zeros((0, 4), dtype=np.float32)
    return [
        {
            "index": int(cls),
            "label": labels[int(cls)] if int(cls) < len(labels) else str(int(cls)),
            "score": round(float(score), 4),
            "box": [round(float(v), 1) for v in box],
        }
        for cls, score, box in zip(found.classes, found.scores, boxes)
    ]


def detect(
    output: np.ndarray,
    head: str,
    geometry: Geometry,
    labels: Sequence[str],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The detections of one frame, best first, as records for the results file."""
    return records(select(decode(output, head, conf_threshold), iou_threshold, limit), geometry, labels)
