"""Ultralytics segmentation heads: each kept box's mask, as an outline in source pixels.

Each box carries mask coefficients; the model's second output holds the prototypes
``[1, M, h, w]`` at a quarter of the input size. A box's mask is the sigmoid of their
weighted sum, inside its box (edgekit's reading of ultralytics/utils/ops.py
``process_mask``). Only the box's region is upsampled to input pixels, so a frame with a
hundred boxes costs a hundred small crops, not a hundred full-size masks; the outline is
the mask's largest contour, simplified to within a pixel, which a result line can carry
where a bitmap could not.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detect import Geometry, to_source

# Outline points may stray this far (model pixels) from the mask's edge.
OUTLINE_TOLERANCE_PX = 1.0


def outline(
    coefficients: np.ndarray, prototypes: np.ndarray, box: np.ndarray, input_size: tuple[int, int]
) -> np.ndarray:
    """The mask's outline in model-input pixels, ``[P, 2]``; empty when the mask is."""
    protos = np.asarray(prototypes, dtype=np.float32)
    if protos.ndim == 4:
        protos = protos[0]
    channels, proto_h, proto_w = protos.shape
    height, width = input_size
    step_y, step_x = height / float(proto_h), width / float(proto_w)
    x1, y1, x2, y2 = (float(v) for v in box)
    # The box's cells in the prototypes' grid, with one cell more on every side for the resize.
    left, top = max(int(np.floor(x1 / step_x)) - 1, 0), max(int(np.floor(y1 / step_y)) - 1, 0)
    right, bottom = min(int(np.ceil(x2 / step_x)) + 1, proto_w), min(int(np.ceil(y2 / step_y)) + 1, proto_h)
    if right <= left or bottom <= top:
        return _no_points()
    region = protos[:, top:bottom, left:right].reshape(channels, -1)
    logits = (np.asarray(coefficients, dtype=np.float32) @ region).reshape(bottom - top, right - left)
    size = (max(1, int(round((right - left) * step_x))), max(1, int(round((bottom - top) * step_y))))
    upsampled = cv2.resize(logits, size, interpolation=cv2.INTER_LINEAR)
    # sigmoid(logit) > 0.5, and only inside the box, as Ultralytics crops it.
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    xs, ys = xs + 0.5 + left * step_x, ys + 0.5 + top * step_y
    inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    mask = ((upsampled > 0.0) & inside).astype(np.uint8)
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if not contours:
        return _no_points()
    largest = max(contours, key=cv2.contourArea)
    simplified = cv2.approxPolyDP(largest, OUTLINE_TOLERANCE_PX, True).reshape(-1, 2).astype(np.float32)
    points: np.ndarray = simplified + np.array([left * step_x, top * step_y], dtype=np.float32)
    return points


def _no_points() -> np.ndarray:
    none: np.ndarray = np.zeros((0, 2), dtype=np.float32)
    return none


def outlines(
    extras: np.ndarray,
    masks: int,
    prototypes: np.ndarray,
    boxes: np.ndarray,
    input_size: tuple[int, int],
    geometry: Geometry,
) -> list[list[list[float]]]:
    """Per box, its mask outline as ``[x, y]`` points in source pixels."""
    found = []
    for coefficients, box in zip(np.asarray(extras)[:, -masks:], boxes):
        points = outline(coefficients, prototypes, box, input_size)
        mapped = to_source(points.reshape(1, -1), geometry).reshape(-1, 2) if len(points) else points
        found.append([[round(float(x), 1), round(float(y), 1)] for x, y in mapped])
    return found
