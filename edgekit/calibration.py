"""Calibration and gate data, made on the host with the agent's own preprocessing."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.agent.preprocess import PreprocessSpec, preprocess
from edgekit.curation import SUBSET_COUNT, CurationReport, curate_folder, floor_sentence, list_images
from edgekit.errors import ModelError

# Provisioning's floor, lower than curation's FLOOR (100) that `calibrate` on the real scene
# applies: the sets provision is tried with (samples/digits, 300 frames, 240 of them calibrated
# on without --holdout; the e2e tests' scenes, 96) are for trying edgekit, not a field release.
MIN_CALIBRATION_IMAGES = 16
# Without a separate hold-out set, every fifth calibration image is kept back for the gate.
HOLDOUT_EVERY = 5


@dataclass(frozen=True)
class ImageSet:
    paths: tuple[Path, ...]
    labels: tuple[int, ...] | None


@dataclass(frozen=True)
class CalibrationData:
    """Preprocessed tensors, batch-first, and their digest (part of the engine key)."""

    calibration: np.ndarray
    holdout: np.ndarray
    holdout_labels: np.ndarray | None
    # What curation did with the calibration folder (skipped, duplicates, subset, warnings).
    curation: CurationReport | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.calibration.tobytes()).hexdigest()


def read_holdout(directory: Path, label_names: tuple[str, ...]) -> ImageSet:
    """Images of ``directory``; with a ``labels.csv`` (file,label) they also score accuracy."""
    paths = list_images(directory)
    labels_file = directory / "labels.csv"
    if not labels_file.is_file():
        return ImageSet(tuple(paths), None)
    # utf-8-sig: spreadsheets save CSV with a byte-order mark.
    rows = csv.DictReader(io.StringIO(labels_file.read_text(encoding="utf-8-sig")))
    if rows.fieldnames is None or not {"file", "label"} <= set(rows.fieldnames):
        raise ModelError(f"{labels_file} must start with the header line `file,label`; add it.")
    by_file = {row["file"]: row["label"] for row in rows}
    try:
        labels = tuple(_label_index(by_file[p.name], label_names) for p in paths)
    except KeyError as exc:
        raise ModelError(f"{labels_file} has no label for {exc.args[0]}; add a row for every image.") from exc
    return ImageSet(tuple(paths), labels)


def _label_index(text: str, names: tuple[str, ...]) -> int:
    if text in names:
        return names.index(text)
    if text.isdigit():
        return int(text)
    raise ModelError(f"The label {text!r} is neither a class index nor one of the model's labels.")


def load_tensors(paths: tuple[Path, ...] | list[Path], spec: PreprocessSpec) -> np.ndarray:
    import cv2

    batch = []
    for path in paths:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ModelError(f"{path} is not a readable image; remove it or replace it.")
        batch.append(preprocess(frame, spec)[0])
    # In the model input's own type (preprocess makes it): uint8 models calibrate on raw pixels.
    return np.stack(batch)


def prepare(
    calib_dir: Path,
    holdout_dir: Path | None,
    spec: PreprocessSpec,
    labels: tuple[str, ...],
    *,
    count: int = SUBSET_COUNT,
    log: Callable[[str], None] | None = None,
) -> CalibrationData:
    """Preprocess calibration and hold-out images; refuse sets too small to calibrate on.

    The calibration folder is curated first (edgekit.curation): unreadable files and
    near-duplicates are dropped and, past ``count``, a diverse subset is kept; ``log`` gets the
    one-line summary. The hold-out folder is taken as given: its files carry labels.
    """
    curated = curate_folder(calib_dir, count=count, minimum=1)
    if log is not None:
        log(curated.report.summary())
    paths = list(curated.paths)
    if holdout_dir is None:
        holdout = ImageSet(tuple(paths[::HOLDOUT_EVERY]), None)
        paths = [p for i, p in enumerate(paths) if i % HOLDOUT_EVERY]
    else:
        holdout = read_holdout(holdout_dir, labels)
    if len(paths) < MIN_CALIBRATION_IMAGES:
        report = curated.report
        raise ModelError(
            floor_sentence(
                str(calib_dir), len(paths), MIN_CALIBRATION_IMAGES, len(report.skipped), len(report.duplicates)
            )
        )
    if not holdout.paths:
        raise ModelError("The hold-out set is empty; pass --holdout with images the model has not been calibrated on.")
    return CalibrationData(
        calibration=load_tensors(paths, spec),
        holdout=load_tensors(holdout.paths, spec),
        holdout_labels=None if holdout.labels is None else np.asarray(holdout.labels, dtype=np.int64),
        curation=curated.report,
    )
