"""Ultralytics pose and segmentation heads: keypoints and mask outlines against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.agent.config import DetectConfig
from edgekit.agent.detect import decode, letterbox_geometry, stretch_geometry
from edgekit.agent.pose import keypoints
from edgekit.agent.segment import outline, outlines


def columns(*rows: list[float]) -> np.ndarray:
    """[1, values, N] as Ultralytics exports its heads: one column per candidate."""
    return np.asarray(rows, dtype=np.float32).T[np.newaxis]


def test_the_class_scores_end_where_the_keypoints_begin():
    # One class, two keypoints of (x, y, visibility): a keypoint value of 0.95 must not be read as a score.
    head = DetectConfig("yolov8", kpt_shape=(2, 3))
    output = columns([80, 80, 40, 40, 0.1, 70, 60, 0.95, 90, 100, 0.2])
    assert len(decode(output, head.head, 0.25, head.extra).boxes) == 0
    found = decode(output, head.head, 0.05, head.extra)
    assert found.scores.tolist() == pytest.approx([0.1])
    assert found.extras[0].tolist() == pytest.approx([70, 60, 0.95, 90, 100, 0.2])


def test_keypoints_map_back_through_the_letterbox():
    # 640x480 into 320x320: ratio 0.5, 40 rows of padding above.
    geometry = letterbox_geometry(480, 640, 320, 320)
    extras = np.array([[100, 140, 0.9, 300, 40, 0.1]], dtype=np.float32)
    assert keypoints(extras, (2, 3), geometry) == [[[200.0, 200.0, 0.9], [600.0, 0.0, 0.1]]]
    assert keypoints(extras[:, [0, 1, 3, 4]], (2, 2), geometry) == [[[200.0, 200.0], [600.0, 0.0]]]


def prototypes_with_a_disc(centre: tuple[float, float], radius: float, size: int = 40) -> np.ndarray:
    """[1, 2, size, size]: prototype 0 is +4 inside a disc and -4 outside; prototype 1 is noise."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    inside = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2
    noise = np.random.default_rng(0).normal(0, 1, (size, size))
    return np.stack([np.where(inside, 4.0, -4.0), noise]).astype(np.float32)[np.newaxis]


def test_a_mask_outline_follows_the_mask_in_input_pixels():
    # Prototypes at a quarter of a 160x160 input: a disc of radius 8 cells about cell (20, 20) is
    # a disc of radius 32 pixels about (80, 80) in the input.
    protos = prototypes_with_a_disc((20, 20), 8)
    points = outline(np.array([1.0, 0.0]), protos, np.array([40, 40, 120, 120]), (160, 160))
    distances = np.hypot(points[:, 0] - 80, points[:, 1] - 80)
    assert len(points) >= 8 and np.all(np.abs(distances - 32) <= 3), distances


def test_a_mask_is_cut_to_its_box():
    protos = prototypes_with_a_disc((20, 20), 8)
    points = outline(np.array([1.0, 0.0]), protos, np.array([40, 40, 80, 120]), (160, 160))
    assert points[:, 0].max() <= 80 and points[:, 0].min() <= 50
    # A box where the mask is empty has no outline.
    assert len(outline(np.array([1.0, 0.0]), protos, np.array([0, 0, 30, 30]), (160, 160))) == 0


def test_outlines_are_in_source_pixels():
    protos = prototypes_with_a_disc((20, 20), 8)
    extras = np.array([[0.0, 0.0, 1.0, 0.0]], dtype=np.float32)  # two other values, then 2 mask coefficients
    found = outlines(
        extras, 2, protos, np.array([[40, 40, 120, 120]]), (160, 160), stretch_geometry(320, 640, 160, 160)
    )
    points = np.asarray(found[0])
    # x scale 1/4, y scale 1/2: the disc about (320, 160) in the 640x320 frame, 128 wide and 64 high.
    assert abs(points[:, 0].min() - 192) <= 8 and abs(points[:, 0].max() - 448) <= 8
    assert abs(points[:, 1].min() - 96) <= 4 and abs(points[:, 1].max() - 224) <= 4


def test_a_frame_without_boxes_has_no_keypoints():
    # An empty scene must not stop the service.
    assert keypoints(np.zeros((0, 12), np.float32), (4, 3), letterbox_geometry(480, 640, 320, 320)) == []
