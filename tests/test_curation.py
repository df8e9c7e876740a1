"""Calibration frames a technician can trust (edgekit.curation): no twin, only files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from script_modules import load_script

from edgekit.curation import (
    FLOOR,
    RECOMMENDED,
    _jpeg_complete,
    curate_folder,
    describe,
    k_center,
    sample_video,
    split_by_time_block,
)
from edgekit.errors import ModelError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"


def scene(seed: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A camera-like BGR frame: a tilted gradient with a few shapes, different for every seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    tilt = rng.uniform(-0.6, 0.6, size=(2, 3))
    image = rng.uniform(70, 170, size=3) + xs[..., None] * tilt[0] + ys[..., None] * tilt[1]
    frame = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(3):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.circle(frame, centre, int(rng.integers(8, height // 3)), colour, thickness=-1)
    return frame


def write(path: Path, frame: np.ndarray, quality: int = 95) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def write_scenes(directory: Path, count: int, first_seed: int = 0) -> list[Path]:
    return [write(directory / f"{i:04d}.jpg", scene(first_seed + i)) for i in range(count)]


def refusal(directory: Path, **options: object) -> str:
    with pytest.raises(ModelError) as info:
        curate_folder(directory, **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_broken_files_are_skipped_and_named(tmp_path: Path) -> None:
    write_scenes(tmp_path, 12)
    whole = (tmp_path / "0005.jpg").read_bytes()
    (tmp_path / "0005.jpg").write_bytes(whole[: len(whole) * 9 // 10])
    # OpenCV decodes it, the bottom grey, with only a warning: what curation is there to catch.
    assert cv2.imread(str(tmp_path / "0005.jpg")) is not None
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("the camera was moved on Tuesday\n")
    (tmp_path / "labels.csv").write_text("file,label\n")
    curated = curate_folder(tmp_path, minimum=1)
    report = curated.report
    assert {(s.name, s.reason) for s in report.skipped} == {
        ("0005.jpg", "truncated JPEG"),
        ("empty.png", "empty file"),
        ("notes.jpg", "not a readable image"),
    }
    assert report.images == 14 and report.usable == 11 and report.ignored == ("labels.csv",)
    assert [p.name for p in curated.paths] == [f"{i:04d}.jpg" for i in range(12) if i != 5]
    assert "3 unreadable skipped (0005.jpg, empty.png, notes.jpg)" in report.summary()
    # --json: plain data all the way down.
    data = json.loads(json.dumps(report.to_dict()))
    assert data["skipped"][0] == {"name": "0005.jpg", "reason": "truncated JPEG"}


def test_a_jpeg_is_complete_only_with_its_end_marker() -> None:
    ok, buffer = cv2.imencode(".jpg", scene(3))
    assert ok
    data = buffer.tobytes()
    assert _jpeg_complete(data)
    # A phone's trailer after the image does not count against it.
    assert _jpeg_complete(data + b"\x00\x00MotionPhoto\xff\xd8trailer")
    for cut in (4, 200, len(data) // 2, len(data) - 2):
        assert not _jpeg_complete(data[:cut])
    assert _jpeg_complete(b"\x89PNG not a jpeg at all")


def test_a_folder_with_nothing_usable_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_text("text")
    (tmp_path / "b.png").write_bytes(b"")
    message = refusal(tmp_path)
    assert "no usable images (2 unreadable, 0 other files)" in message and "PNG, JPG, JPEG, BMP" in message
    assert "does not exist" in refusal(tmp_path / "missing")


def test_near_duplicates_are_removed_within_a_brightness_band(tmp_path: Path) -> None:
    write_scenes(tmp_path, 10)
    # Kept inside 60-240 so that the dusk copy below is the same picture, only darker.
    day = (scene(2).astype(np.float32) * 0.7 + 60).astype(np.uint8)
    write(tmp_path / "0002.jpg", day)
    shutil.copy(tmp_path / "0002.jpg", tmp_path / "copy.jpg")
    write(tmp_path / "reencoded.jpg", day, quality=60)
    noise = np.random.default_rng(1).normal(0, 5, size=day.shape)
    write(tmp_path / "noisy.jpg", np.clip(day + noise, 0, 255).astype(np.uint8))
    # The same view at dusk: the hash and the structure are the same, the light is not.
    write(tmp_path / "dusk.jpg", day - np.uint8(50))
    report = curate_folder(tmp_path, minimum=1).report
    assert {(d.name, d.of) for d in report.duplicates} == {
        ("copy.jpg", "0002.jpg"),
        ("noisy.jpg", "0002.jpg"),
        ("reencoded.jpg", "0002.jpg"),
    }
    assert "dusk.jpg" in report.kept and report.usable == 11
    assert "3 near-duplicates removed" in report.summary()


def test_frames_of_little_contrast_are_not_merged(tmp_path: Path) -> None:
    # Fog: eight different views, each within a few grey levels of the others.
    for i in range(8):
        write(tmp_path / f"fog-{i}.png", (scene(i).astype(np.float32) * 0.06 + 120).astype(np.uint8))
    report = curate_folder(tmp_path, minimum=1).report
    assert report.duplicates == () and report.usable == 8


def test_the_sample_scene_at_night_keeps_every_digit_and_drops_its_copies(tmp_path: Path) -> None:
    """At 30 % contrast distinct digits are 3.5 levels apart, under the 6 that ordinary frames
    get: the threshold follows the frames' contrast, and a JPEG re-encoding is still a copy."""
    night = load_script("changed_scene")
    written = night.write_night_images(tmp_path, SAMPLES / "holdout")
    copied = list(zip((90, 70, 50), sorted(tmp_path.glob("*.png"))[:3], strict=True))
    for quality, path in copied:
        copy = tmp_path / f"{path.stem}-q{quality}.jpg"
        cv2.imwrite(str(copy), cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, quality])
    report = curate_folder(tmp_path, minimum=1).report
    copies = {frozenset((f"{path.stem}-q{quality}.jpg", path.name)) for quality, path in copied}
    assert {frozenset((d.name, d.of)) for d in report.duplicates} == copies
    assert report.usable == written


def test_the_sample_digits_have_no_duplicates() -> None:
    # 64-bit hashes of 8x8 digits collide although no two digits are the same: the
    # thumbnail check keeps them all, so provisioning the sample calibrates on all 300.
    report = curate_folder(SAMPLES / "calib").report
    assert report.duplicates == () and len(report.kept) == report.usable == 300


def test_k_center_keeps_every_cluster() -> None:
    rng = np.random.default_rng(0)
    # Five clusters of very different sizes: a random pick of five would miss the small ones.
    sizes = [200, 50, 10, 3, 1]
    centres = rng.uniform(-10, 10, size=(5, 4))
    points = [centres[c] + rng.normal(0, 0.1, size=4) for c, n in enumerate(sizes) for _ in range(n)]
    cluster = [c for c, n in enumerate(sizes) for _ in range(n)]
    chosen = k_center(points, 5)
    assert sorted(cluster[i] for i in chosen) == [0, 1, 2, 3, 4]
    assert chosen == sorted(chosen) == k_center(points, 5)
    assert len(k_center(points, 40)) == 40 and k_center(points, 1000) == list(range(len(points)))


def test_a_large_folder_is_cut_to_a_diverse_subset(tmp_path: Path) -> None:
    # 30 bluish scenes, and 3 reddish and 3 greenish ones: k-center keeps some of each.
    tints = {"a": (1.0, 0.4, 0.4), "b": (0.4, 0.4, 1.0), "c": (0.4, 1.0, 0.4)}
    for group, many in (("a", 30), ("b", 3), ("c", 3)):
        for i in range(many):
            tinted = scene(100 * ord(group) + i).astype(np.float32) * np.float32(tints[group])
            write(tmp_path / f"{group}-{i:02d}.jpg", tinted.astype(np.uint8))
    curated = curate_folder(tmp_path, count=8, minimum=1)
    kept = curated.report.kept
    assert len(kept) == 8 and curated.report.usable == 36
    assert {name[0] for name in kept} == {"a", "b", "c"}
    assert "8 of 36 kept as a diverse subset" in curated.report.summary()
    assert list(kept) == sorted(kept) and curate_folder(tmp_path, count=8, minimum=1) == curated


def test_describe_weighs_layout_and_colour_alike() -> None:
    black, white = np.zeros((30, 40, 3), np.uint8), np.full((30, 40, 3), 255, np.uint8)
    distance = float(np.linalg.norm(describe(black) - describe(white)))
    # Each half at most 1 apart, and black against white is the farthest both can be.
    assert distance == pytest.approx(np.sqrt(2.0), rel=1e-5)


def test_floor_refuses_with_the_count_and_what_is_missing(tmp_path: Path) -> None:
    write_scenes(tmp_path, 12)
    shutil.copy(tmp_path / "0000.jpg", tmp_path / "0000-again.jpg")
    (tmp_path / "z.jpg").write_bytes(b"")
    message = refusal(tmp_path, minimum=15)
    assert "holds 12 usable calibration images after skipping 1 unreadable files and 1 near-duplicates" in message
    assert "at least 15 are needed, so add 3 more" in message
    assert FLOOR == 100 and "add 88 more" in refusal(tmp_path)


def test_below_the_recommended_count_warns(tmp_path: Path) -> None:
    write_scenes(tmp_path, 12)
    report = curate_folder(tmp_path, minimum=10, recommended=12).report
    assert report.warnings == ()
    report = curate_folder(tmp_path, minimum=10).report
    assert report.warnings == (f"12 usable frames, {RECOMMENDED} recommended: add frames from the real scene",)
    assert report.summary().endswith(f"; 12 usable frames, {RECOMMENDED} recommended: add frames from the real scene")


def test_frames_far_from_the_camera_size_are_reported(tmp_path: Path) -> None:
    write_scenes(tmp_path, 6)
    write(tmp_path / "wide.jpg", scene(50, (214, 120)))  # 16:9 among 4:3
    write(tmp_path / "tiny.jpg", scene(51, (64, 48)))  # 4:3, but 2.5x smaller
    write(tmp_path / "close.jpg", scene(52, (170, 126)))  # 4:3 and near the size: fine
    report = curate_folder(tmp_path, minimum=1).report
    assert report.expected_size == (160, 120)
    assert {(o.name, o.width, o.height) for o in report.odd_sizes} == {("wide.jpg", 214, 120), ("tiny.jpg", 64, 48)}
    assert "2 frames far from the expected 160x120" in report.warnings
    # The camera's size, when known, is what frames are held to.
    report = curate_folder(tmp_path, minimum=1, expected_size=(64, 48)).report
    assert "tiny.jpg" not in {o.name for o in report.odd_sizes} and len(report.odd_sizes) == 8


def write_clip(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), index * 2, dtype=np.uint8))
    writer.release()
    return path


def test_video_frames_are_sampled_evenly(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", 100)
    paths = sample_video(clip, tmp_path / "frames", 5)
    assert [p.name for p in paths] == [f"frame-{i:06d}.png" for i in (0, 25, 50, 74, 99)]
    levels = [int(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).mean().round()) for p in paths]
    assert levels == pytest.approx([0, 50, 100, 148, 198], abs=3)
    assert len(sample_video(clip, tmp_path / "all", 500)) == 100


def test_a_video_without_frames_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "text.avi").write_text("not a video")
    for video in (write_clip(tmp_path / "empty.avi", 0), tmp_path / "text.avi", tmp_path / "missing.avi"):
        with pytest.raises(ModelError) as info:
            sample_video(video, tmp_path / "frames", 10)
        assert str(info.value).endswith("export it again as MJPG or H.264.") and "\n" not in str(info.value)
    assert not (tmp_path / "frames").exists()


def test_holdout_is_split_by_time_block() -> None:
    calibration, holdout = split_by_time_block(list(range(100)))
    # Two blocks of ten, spread over the clip, and one frame either side used by neither.
    assert holdout == list(range(20, 30)) + list(range(70, 80))
    assert calibration == [i for i in range(100) if not 19 <= i <= 30 and not 69 <= i <= 80]
    assert not {i + d for i in holdout for d in (-1, 0, 1)} & set(calibration)
    calibration, holdout = split_by_time_block([f"frame-{i}" for i in range(50)], holdout_fraction=0.3, guard=0)
    assert len(holdout) == 15 and holdout[0] == "frame-5" and len(calibration) == 35
    with pytest.raises(ModelError, match="too few to hold some out"):
        split_by_time_block([1, 2])
