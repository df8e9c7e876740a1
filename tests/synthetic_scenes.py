"""Camera-like scenes with known objects, for the detector corpus and its tests.

A textured background (smooth gradients, blotches and sensor noise, a different palette per
scene) with one to three objects: class 0 a filled disc ("ball"), class 1 a filled square
("crate"). The same generator trains the corpus detector (scripts/make-model-corpus) and
makes the calibration and held-out images its tests ship, so FP32 finds boxes on them.
Only numpy and cv2: it runs in the test environment and in the corpus's.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("ball", "crate")
# (class, x_centre, y_centre, width, height) in pixels.
Objects = list[tuple[int, float, float, float, float]]


def scene(rng: np.random.Generator, size: int = 160) -> tuple[np.ndarray, Objects]:
    """A BGR uint8 image and its objects as (class, x_centre, y_centre, width, height) in pixels."""
    import cv2

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 200, size=3)
    tilt = rng.uniform(-60, 60, size=(2, 3))
    image = base + xs[..., None] * tilt[0] + ys[..., None] * tilt[1]
    for _ in range(int(rng.integers(2, 6))):
        centre = rng.uniform(0, size, size=2)
        radius = rng.uniform(size / 10, size / 3)
        blotch = np.exp(-((xs * size - centre[0]) ** 2 + (ys * size - centre[1]) ** 2) / (2 * radius**2))
        image += blotch[..., None] * rng.uniform(-50, 50, size=3)
    image = np.clip(image + rng.normal(0, 6, size=image.shape), 0, 255).astype(np.uint8)
    objects: Objects = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(0, len(CLASSES)))
        side = float(rng.uniform(size * 0.15, size * 0.35))
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
        objects.append((cls, cx, cy, side, side))
    return image, objects


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
