"""Calibration and gate tensors, made on the host with the agent's own preprocessing."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.agent.preprocess import PreprocessSpec, preprocess
from edgekit.calibration import HOLDOUT_EVERY, MIN_CALIBRATION_IMAGES, prepare
from edgekit.curation import list_images
from edgekit.errors import ModelError
from edgekit.model import inspect_model

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
SPEC = PreprocessSpec(input_name="image", height=8, width=8, channels=1, layout="NCHW", color="gray")
LABELS = tuple(str(d) for d in range(10))


def tensor_of(path: Path, spec: PreprocessSpec = SPEC) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert frame is not None
    tensor: np.ndarray = preprocess(frame, spec)[0].astype(np.float32)
    return tensor


def write_images(directory: Path, count: int, seed: int = 0, suffix: str = ".png") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = directory / f"{i:04d}{suffix}"
        assert cv2.imwrite(str(path), rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def refused(*args: object) -> str:
    with pytest.raises(ModelError) as info:
        prepare(*args)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_sample_digits_with_holdout() -> None:
    spec = inspect_model(SAMPLES / "model.onnx").preprocess
    data = prepare(SAMPLES / "calib", SAMPLES / "holdout", spec, LABELS)
    assert data.calibration.shape == (300, 1, 8, 8)
    assert data.holdout.shape == (360, 1, 8, 8)
    assert data.calibration.dtype == np.float32 and data.holdout.dtype == np.float32
    assert 0.0 <= data.calibration.min() and data.calibration.max() <= 1.0
    with open(SAMPLES / "holdout" / "labels.csv", newline="") as stream:
        rows = {row["file"]: int(row["label"]) for row in csv.DictReader(stream)}
    expected = [rows[p.name] for p in sorted((SAMPLES / "holdout").glob("*.png"))]
    assert data.holdout_labels is not None
    assert data.holdout_labels.dtype == np.int64
    assert data.holdout_labels.tolist() == expected
    # Sorted by file name, each tensor exactly what the device's preprocess makes of the file.
    np.testing.assert_array_equal(data.calibration[0], tensor_of(SAMPLES / "calib" / "0000.png"))
    np.testing.assert_array_equal(data.calibration[299], tensor_of(SAMPLES / "calib" / "0299.png"))
    np.testing.assert_array_equal(data.holdout[17], tensor_of(SAMPLES / "holdout" / "0017.png"))
    # The digest is of the calibration tensors, and stable.
    assert data.sha256 == prepare(SAMPLES / "calib", SAMPLES / "holdout", spec, LABELS).sha256
    assert len(data.sha256) == 64


def test_holdout_split_when_no_holdout_dir() -> None:
    data = prepare(SAMPLES / "calib", None, SPEC, LABELS)
    calib = sorted((SAMPLES / "calib").glob("*.png"))
    assert HOLDOUT_EVERY == 5
    assert data.holdout.shape == (60, 1, 8, 8)
    assert data.calibration.shape == (240, 1, 8, 8)
    assert data.holdout_labels is None
    for index, path in enumerate(calib[::5][:4]):
        np.testing.assert_array_equal(data.holdout[index], tensor_of(path))
    kept = [p for i, p in enumerate(calib) if i % 5]
    assert kept[0].name == "0001.png"
    np.testing.assert_array_equal(data.calibration[0], tensor_of(kept[0]))
    np.testing.assert_array_equal(data.calibration[-1], tensor_of(kept[-1]))
    # Every image is used exactly once: either calibrated on or held out.
    assert len(data.calibration) + len(data.holdout) == len(calib) == 300


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    write_images(tmp_path, 2)
    shutil.copy(tmp_path / "0000.png", tmp_path / "b.PNG")
    shutil.copy(tmp_path / "0000.png", tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text("file,label\n")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["0000.png", "0001.png", "a.jpg", "b.PNG"]


def test_too_few_images(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", MIN_CALIBRATION_IMAGES - 1)
    write_images(tmp_path / "holdout", 3, seed=1)
    message = refused(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)
    assert f"{MIN_CALIBRATION_IMAGES - 1} usable" in message
    assert str(MIN_CALIBRATION_IMAGES) in message


def test_minimum_is_enough(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", MIN_CALIBRATION_IMAGES)
    write_images(tmp_path / "holdout", 1, seed=1)
    data = prepare(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)
    assert data.calibration.shape == (MIN_CALIBRATION_IMAGES, 1, 8, 8)
    assert data.holdout.shape == (1, 1, 8, 8)
    assert data.holdout_labels is None


def test_split_counts_only_what_is_left_for_calibration(tmp_path: Path) -> None:
    # 16 images, every 5th held out: 12 remain, too few.
    write_images(tmp_path / "calib", 16)
    assert "12 usable" in refused(tmp_path / "calib", None, SPEC, LABELS)
    write_images(tmp_path / "more", 20)
    assert prepare(tmp_path / "more", None, SPEC, LABELS).calibration.shape[0] == 16


def test_missing_folders(tmp_path: Path) -> None:
    assert "does not exist" in refused(tmp_path / "nope", None, SPEC, LABELS)
    write_images(tmp_path / "calib", 20)
    assert "does not exist" in refused(tmp_path / "calib", tmp_path / "nope", SPEC, LABELS)


def test_empty_holdout(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    (tmp_path / "holdout").mkdir()
    assert "--holdout" in refused(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)


def test_unreadable_calibration_image_is_skipped_and_named(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    broken = tmp_path / "calib" / "0007.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing useful")
    write_images(tmp_path / "holdout", 2, seed=1)
    logged: list[str] = []
    data = prepare(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS, log=logged.append)
    assert data.calibration.shape == (19, 1, 8, 8)
    assert data.curation is not None
    assert [s.name for s in data.curation.skipped] == ["0007.png"]
    assert len(logged) == 1 and "1 unreadable skipped (0007.png)" in logged[0] and "19 kept" in logged[0]


def test_floor_counts_what_curation_removed(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", MIN_CALIBRATION_IMAGES)
    (tmp_path / "calib" / "0003.png").write_bytes(b"")
    shutil.copy(tmp_path / "calib" / "0000.png", tmp_path / "calib" / "0009.png")
    write_images(tmp_path / "holdout", 1, seed=1)
    message = refused(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)
    assert f"{MIN_CALIBRATION_IMAGES - 2} usable" in message
    assert "1 unreadable files and 1 near-duplicates" in message and "add 2 more" in message


def test_unreadable_holdout_image(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    write_images(tmp_path / "holdout", 2, seed=1)
    broken = tmp_path / "holdout" / "zz.jpg"
    broken.write_text("not a jpeg")
    assert str(broken) in refused(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)


def test_labels_csv_missing_a_row(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    write_images(tmp_path / "holdout", 3, seed=1)
    (tmp_path / "holdout" / "labels.csv").write_text("file,label\n0000.png,1\n0002.png,2\n")
    message = refused(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)
    assert "0001.png" in message
    assert "labels.csv" in message


def test_labels_by_name_and_by_index(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    write_images(tmp_path / "holdout", 3, seed=1)
    (tmp_path / "holdout" / "labels.csv").write_text("file,label\n0000.png,cat\n0001.png,0\n0002.png,dog\n")
    data = prepare(tmp_path / "calib", tmp_path / "holdout", SPEC, ("dog", "cat"))
    assert data.holdout_labels is not None
    assert data.holdout_labels.tolist() == [1, 0, 0]


def test_unknown_label(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    write_images(tmp_path / "holdout", 1, seed=1)
    (tmp_path / "holdout" / "labels.csv").write_text("file,label\n0000.png,zebra\n")
    assert "'zebra'" in refused(tmp_path / "calib", tmp_path / "holdout", SPEC, ("dog", "cat"))


def test_color_images_follow_the_spec(tmp_path: Path) -> None:
    write_images(tmp_path / "calib", 20)
    write_images(tmp_path / "holdout", 2, seed=1)
    spec = PreprocessSpec(input_name="x", height=12, width=10, channels=3, layout="NHWC", color="rgb")
    data = prepare(tmp_path / "calib", tmp_path / "holdout", spec, ())
    assert data.calibration.shape == (20, 12, 10, 3)
    np.testing.assert_array_equal(data.holdout[1], tensor_of(tmp_path / "holdout" / "0001.png", spec))


@pytest.mark.parametrize("header", ["frame,label", "\ufefffile,label"])
def test_labels_csv_with_other_header(tmp_path: Path, header: str) -> None:
    write_images(tmp_path / "calib", 20)
    write_images(tmp_path / "holdout", 1, seed=1)
    (tmp_path / "holdout" / "labels.csv").write_text(f"{header}\n0000.png,1\n", encoding="utf-8")
    try:
        data = prepare(tmp_path / "calib", tmp_path / "holdout", SPEC, LABELS)
    except ModelError as exc:
        assert "labels.csv" in str(exc)
    else:
        assert data.holdout_labels is not None and data.holdout_labels.tolist() == [1]
