"""Ultralytics pose heads: the keypoints each kept box carries, in source pixels.

Ultralytics' exported pose head has already decoded them: x and y in model-input pixels
and, with three values per keypoint, a visibility probability (edgekit's reading of
ultralytics/nn/modules/head.py ``Pose.kpts_decode``).
"""

from __future__ import annotations

import numpy as np

from .detect import Geometry, to_source


def keypoints(extras: np.ndarray, kpt_shape: tuple[int, int], geometry: Geometry) -> list[list[list[float]]]:
    """Per box, its keypoints as ``[x, y]`` or ``[x, y, visibility]`` in source pixels."""
    count, dims = kpt_shape
    points = np.asarray(extras, dtype=np.float32)[:, : count * dims].reshape(-1, count, dims)
    mapped = to_source(points[:, :, :2].reshape(len(points), count * 2), geometry).reshape(-1, count, 2)
    found = []
    for box_xy, box_points in zip(mapped, points):
        rows = []
        for (x, y), point in zip(box_xy, box_points):
            row = [round(float(x), 1), round(float(y), 1)]
            if dims == 3:
                row.append(round(float(point[2]), 3))
            rows.append(row)
        found.append(rows)
    return found
