"""scripts/lib/changed_scene.py: the sample scene at night, as a clip and as a labelled folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from script_modules import SCRIPTS_LIB, load_script

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = REPO / "samples" / "digits" / "holdout"


@pytest.fixture(scope="module")
def scene() -> ModuleType:
    return load_script("changed_scene")


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def luma(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in frames]).astype(np.float64)


def test_the_clip_shows_every_digit_darker_and_flatter(scene: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "night.avi"
    digits = sorted(HOLDOUT.glob("*.png"))
    assert scene.write_changed_scene(out, HOLDOUT, frames_per_digit=2) == 2 * len(digits) == 720
    frames = read_frames(out)
    assert len(frames) == 720
    assert {frame.shape for frame in frames} == {(128, 128, 3)}
    day = luma([cv2.resize(cv2.imread(str(p), cv2.IMREAD_COLOR), (128, 128)) for p in digits])
    dark = luma(frames)
    # MJPG blurs the edges a little; the night transform's 0.3 gain dwarfs that.
    assert dark.mean() < 0.6 * day.mean()
    assert dark.std() < 0.4 * day.std()
    assert dark.min() >= 10, "black is lifted at night, not kept at 0"


def test_the_night_folder_is_the_same_frames_with_the_labels(scene: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "night"
    assert scene.write_night_images(out, HOLDOUT) == 360
    assert (out / "labels.csv").read_text() == (HOLDOUT / "labels.csv").read_text()
    names = sorted(path.name for path in out.glob("*.png"))
    assert names == sorted(path.name for path in HOLDOUT.glob("*.png"))
    first = cv2.imread(str(out / names[0]), cv2.IMREAD_COLOR)
    source = cv2.imread(str(HOLDOUT / names[0]), cv2.IMREAD_COLOR)
    # PNG is lossless: the folder holds exactly night() of the upscaled digit.
    expected = scene.night(cv2.resize(source, (128, 128), interpolation=cv2.INTER_NEAREST))
    assert first.dtype == np.uint8 and np.array_equal(first, expected)


def test_the_script_runs_from_the_command_line(tmp_path: Path) -> None:
    digits = tmp_path / "digits"
    digits.mkdir()
    for path in sorted(HOLDOUT.glob("*.png"))[:3]:
        (digits / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "night.avi"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS_LIB / "changed_scene.py"), "--out", str(out), "--digits", str(digits)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{out}: 6 frames" in done.stdout
    assert len(read_frames(out)) == 6
