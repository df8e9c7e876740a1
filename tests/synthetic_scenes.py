"""Camera-like scenes with known objects, for the detector corpus and its tests.

A textured background (smooth gradients, blotches and sensor noise, a different palette per
scene) with one to three objects: class 0 a filled disc ("ball"), class 1 a filled square
("crate"). The same generator trains the corpus detector (scripts/make-model-corpus) and
makes the calibration and held-out images its tests ship, so FP32 finds boxes on them.
Single-object scenes (one ball or one crate) do the same for the corpus's classifiers, and
``keypoints``/``polygon`` give an object's pose and segmentation labels.
Only numpy and cv2: it runs in the test environment and in the corpus's.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("ball", "crate")
# (class, x_centre, y_centre, width, height) in pixels.
Objects = list[tuple[int, float, float, float, float]]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured BGR uint8 background: gradients, blotches and sensor noise."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 200, size=3)
    tilt = rng.uniform(-60, 60, size=(2, 3))
    image = base + xs[..., None] * tilt[0] + ys[..., None] * tilt[1]
    for _ in range(int(rng.integers(2, 6))):
        centre = rng.uniform(0, size, size=2)
        radius = rng.uniform(size / 10, size / 3)
        blotch = np.exp(-((xs * size - centre[0]) ** 2 + (ys * size - centre[1]) ** 2) / (2 * radius**2))
        image += blotch[..., None] * rng.uniform(-50, 50, size=3)
    return np.clip(image + rng.normal(0, 6, size=image.shape), 0, 255).astype(np.uint8)


def _draw(
    image: np.ndarray, rng: np.random.Generator, cls: int, side: float, size: int
) -> tuple[int, float, float, float, float]:
    """Draw one object of ``cls`` and ``side`` at a random place; the object tuple."""
    import cv2

    cx, cy = (float(v) for v in rng.uniform(side / 2, size - side / 2, size=2))
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    # Keep objects apart from the background: a contrasting colour, a dark outline.
    if cls == 0:
        cv2.circle(image, (int(cx), int(cy)), int(side / 2), color, thickness=-1)
        cv2.circle(image, (int(cx), int(cy)), int(side / 2), (20, 20, 20), thickness=2)
    else:
        top_left = (int(cx - side / 2), int(cy - side / 2))
        bottom_right = (int(cx + side / 2), int(cy + side / 2))
        cv2.rectangle(image, top_left, bottom_right, color, thickness=-1)
        cv2.rectangle(image, top_left, bottom_right, (20, 20, 20), thickness=2)
    return (cls, cx, cy, side, side)


def scene(rng: np.random.Generator, size: int = 160) -> tuple[np.ndarray, Objects]:
    """A BGR uint8 image and its objects as (class, x_centre, y_centre, width, height) in pixels."""
    image = _background(rng, size)
    objects: Objects = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(0, len(CLASSES)))
        side = float(rng.uniform(size * 0.15, size * 0.35))
        objects.append(_draw(image, rng, cls, side, size))
    return image, objects


def single_object_scene(
    rng: np.random.Generator, size: int = 160
) -> tuple[np.ndarray, tuple[int, float, float, float, float]]:
    """A scene with exactly one object, a ball or a crate, 20-45 % of the side; the image and the object.

    The classifiers' task (scripts/make-model-corpus): well defined, so a small network learns it
    with decisive logits, and INT8 can be held to top-1 agreement with FP32.
    """
    image = _background(rng, size)
    cls = int(rng.integers(0, len(CLASSES)))
    return image, _draw(image, rng, cls, float(rng.uniform(size * 0.2, size * 0.45)), size)


def write_single_object_scenes(folder: str, count: int, seed: int, size: int = 160) -> list[int]:
    """``count`` single-object scenes as JPEGs in ``folder``; their classes, in order."""
    import os

    import cv2

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = []
    for index in range(count):
        image, obj = single_object_scene(rng, size)
        cv2.imwrite(os.path.join(folder, f"scene-{index:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        classes.append(obj[0])
    return classes


def keypoints(obj: tuple[int, float, float, float, float]) -> list[tuple[float, float]]:
    """The object's 4 extreme points in pixels: top, right, bottom, left of its disc or square.

    Under a horizontal flip right and left swap: Ultralytics' flip_idx [0, 3, 2, 1].
    """
    _, cx, cy, w, h = obj
    return [(cx, cy - h / 2), (cx + w / 2, cy), (cx, cy + h / 2), (cx - w / 2, cy)]


def polygon(obj: tuple[int, float, float, float, float], points: int = 32) -> list[tuple[float, float]]:
    """The object's outline in pixels: a ``points``-point circle for a disc, the 4 corners of a square."""
    cls, cx, cy, w, h = obj
    if cls == 0:
        angles = np.arange(points) * (2 * np.pi / points)
        return [(cx + w / 2 * float(np.cos(a)), cy + h / 2 * float(np.sin(a))) for a in angles]
    return [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]


def write_scenes(
    folder: str, count: int, seed: int, size: int = 160
) -> list[list[tuple[int, float, float, float, float]]]:
    """``count`` scenes as JPEGs (what a camera gives) in ``folder``; their objects, in order."""
    import os

    import cv2

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    found = []
    for index in range(count):
        image, objects = scene(rng, size)
        cv2.imwrite(os.path.join(folder, f"scene-{index:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        found.append(objects)
    return found
