"""What a frame's model outputs become in its result record: top-k, detections or raw tensors."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from .config import BOX_TASKS, Release
from .detect import decode, letterbox_geometry, records, select, stretch_geometry
from .pose import keypoints
from .segment import outlines


def softmax(row: np.ndarray) -> np.ndarray:
    shifted = np.exp(row - np.max(row))
    probabilities: np.ndarray = shifted / np.sum(shifted)
    return probabilities


def is_distribution(row: np.ndarray) -> bool:
    return bool(np.all(row >= 0.0)) and abs(float(np.sum(row)) - 1.0) <= 1e-3


def classify(logits: np.ndarray, labels: Sequence[str], topk: int) -> list[dict[str, Any]]:
    """Top-k classes of one frame's output (a batch of one), best first.

    Models exported with a softmax head already give probabilities; applying softmax again
    would flatten them towards uniform, so a row that is a distribution is kept as is.
    """
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    if not is_distribution(row):
        row = softmax(row)
    order = [int(i) for i in np.argsort(-row, kind="stable")[: max(0, int(topk))]]
    return [
        {
            "index": i,
            "label": labels[i] if i < len(labels) else str(i),
            "score": round(float(row[i]), 4),
        }
        for i in order
    ]


# A raw record carries at most this many values per output, so one frame cannot flood the journal.
RAW_VALUES = 1024

Postprocess = Callable[[List[np.ndarray], Tuple[int, int]], Dict[str, Any]]


def raw_outputs(outputs: Sequence[np.ndarray], names: Sequence[str], limit: int = RAW_VALUES) -> list[dict[str, Any]]:
    records = []
    for name, output in zip(names, outputs):
        flat = np.asarray(output).reshape(-1)
        records.append(
            {
                "name": name,
                "shape": [int(d) for d in np.shape(output)],
                "values": [round(float(v), 5) for v in flat[:limit]],
                "truncated": bool(flat.size > limit),
            }
        )
    return records


def make_postprocess(release: Release, output_names: Sequence[str], topk: int) -> Postprocess:
    """What one frame's outputs become in its result record, by the release's task."""
    if release.task == "classify":
        return lambda outputs, size: {"top": classify(outputs[0], release.labels, topk)}
    if release.task in BOX_TASKS:
        return _boxes(release)
    return lambda outputs, size: {"outputs": raw_outputs(outputs, output_names)}


def _boxes(release: Release) -> Postprocess:
    """Detections, with each box's keypoints (pose) or mask outline (segment).

    Boxes go back to source pixels through the preprocessing's letterbox or stretch, so every
    postprocess takes ``(outputs, (height, width))``.
    """
    settings = release.detect
    assert settings is not None, "load_release requires the detect section"
    spec = release.preprocess
    fit = letterbox_geometry if spec.resize == "letterbox" else stretch_geometry

    def detections(outputs: list[np.ndarray], size: tuple[int, int]) -> dict[str, Any]:
        geometry = fit(size[0], size[1], spec.height, spec.width)
        found = select(decode(outputs[0], settings.head, settings.conf, settings.extra), settings.iou, settings.max_det)
        boxes = records(found, geometry, release.labels)
        if settings.kpt_shape is not None:
            for box, points in zip(boxes, keypoints(found.extras, settings.kpt_shape, geometry)):
                box["keypoints"] = points
        if settings.masks:
            shapes = outlines(
                found.extras, settings.masks, outputs[1], found.boxes, (spec.height, spec.width), geometry
            )
            for box, points in zip(boxes, shapes):
                box["outline"] = points
        return {"detections": boxes}

    return detections
