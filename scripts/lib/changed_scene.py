"""The sample scene at night: the digits clip after the light has changed.

A release calibrated on the daytime digits drifts on this scene, so it is what a field
recalibration is exercised on: the service's drift score rises, its sample ring fills with night
frames, and ``edgekit calibrate --from-device`` has something new to learn. ``night`` is the one
definition of the change; the agent's drift tests use it too, so their scene and this one agree.

Usage: uv run --frozen python scripts/lib/changed_scene.py --out night.avi [--digits DIR]
       [--frames-per-digit N] [--night-images DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HOLDOUT = ROOT / "samples" / "digits" / "holdout"


def night(frame: np.ndarray) -> np.ndarray:
    """The scene at night: 30 % of the contrast, black lifted to 20 as a sensor's gain lifts its noise floor."""
    out: np.ndarray = np.clip(frame.astype(np.float32) * 0.3 + 20.0, 0, 255).astype(np.uint8)
    return out


def night_frames(digits_dir: Path, size: int = 128) -> list[tuple[str, np.ndarray]]:
    """Each PNG in ``digits_dir``, by name, as a ``size`` x ``size`` BGR night frame."""
    frames = []
    for path in sorted(digits_dir.glob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError(f"could not read {path}")
        # Nearest keeps the digits' hard edges, as in the daytime clip (scripts/make-sample-model).
        frames.append((path.name, night(cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST))))
    if not frames:
        raise RuntimeError(f"no PNG images in {digits_dir}")
    return frames


def write_changed_scene(
    out: Path, digits_dir: Path, frames_per_digit: int = 2, fps: float = 30.0, size: int = 128
) -> int:
    """An MJPG clip of the night frames, each shown ``frames_per_digit`` times; returns the frame count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), fps, (size, size), True)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG to {out}")
    count = 0
    try:
        for _, frame in night_frames(digits_dir, size):
            for _ in range(frames_per_digit):
                writer.write(frame)
                count += 1
    finally:
        writer.release()
    return count


def write_night_images(out_dir: Path, digits_dir: Path, size: int = 128) -> int:
    """The same night frames as PNGs under their source names, with the source's labels.csv:
    a labelled hold-out set for the scene at night. Returns the image count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = night_frames(digits_dir, size)
    for name, frame in frames:
        if not cv2.imwrite(str(out_dir / name), frame):
            raise RuntimeError(f"could not write {out_dir / name}")
    labels = digits_dir / "labels.csv"
    if labels.is_file():
        shutil.copyfile(labels, out_dir / "labels.csv")
    return len(frames)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the sample digits scene at night as an MJPG clip.")
    parser.add_argument("--out", type=Path, required=True, help="The .avi to write.")
    parser.add_argument("--digits", type=Path, default=HOLDOUT, help="Folder of digit PNGs (default: %(default)s).")
    parser.add_argument("--frames-per-digit", type=int, default=2, help="Frames each digit is shown for.")
    parser.add_argument("--night-images", type=Path, help="Also write the night frames here, labelled, as PNGs.")
    args = parser.parse_args(argv)
    frames = write_changed_scene(args.out, args.digits, args.frames_per_digit)
    print(f"wrote {args.out}: {frames} frames")
    if args.night_images is not None:
        images = write_night_images(args.night_images, args.digits)
        print(f"wrote {args.night_images}: {images} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
