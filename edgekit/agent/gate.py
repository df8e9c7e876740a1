"""The release gate: does the model as built on this device still agree with FP32?

The host computes FP32 reference outputs for a fixed sample set; the device runs the same
inputs through its own (INT8/FP16) engine and measures, per task, what the task's users
see: how often the top-1 class agrees (classifiers), whether the boxes FP32 finds are
still found (detectors: FP32's boxes are the ground truth), and how closely the whole
output follows FP32 (every task: cosine similarity and signal-to-noise ratio). A
detector's output can follow FP32 to a cosine of 0.996 and still have lost every box,
when its class scores (0-1) sank under the quantization step of its coordinates (0-640).
The host decides whether that is good enough to switch the release live.
"""

from __future__ import annotations

import os
import time
import zipfile
from typing import Any

import numpy as np

from .backends import Backend
from .config import BOX_TASKS, DetectConfig, Release
from .detect import decode, iou, select
from .errors import AgentError

# A found box counts for an FP32 box of its class when they overlap this much (the usual mAP@0.5 rule).
MATCH_IOU = 0.5


def _load_samples(samples_path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(samples_path):
        raise AgentError("samples", f"The gate samples file {samples_path} does not exist.")
    try:
        archive = np.load(samples_path, allow_pickle=False)
        if not hasattr(archive, "files"):
            raise ValueError("it is a single .npy array, not an .npz archive")
        with archive:
            samples = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise AgentError("samples", f"Could not read {samples_path}: {exc}") from None
    for name in ("inputs", "reference"):
        if name not in samples:
            raise AgentError("samples", f"{samples_path} has no {name!r} array.")
    count = len(samples["inputs"])
    if count == 0:
        raise AgentError("samples", f"{samples_path} holds no samples.")
    for name, array in samples.items():
        if name in ("inputs", "reference", "labels") and len(array) != count:
            raise AgentError(
                "samples",
                f"{samples_path}: {name!r} has {len(array)} rows but 'inputs' has {count}.",
            )
    return samples


def _mean_match(left: np.ndarray, right: np.ndarray) -> float:
    return float(np.mean(left == right))


def _mean_cosine(outputs: np.ndarray, reference: np.ndarray) -> float:
    """How closely each sample's whole output follows FP32: the measure for detection and raw
    heads, where a top-1 class means nothing."""
    dots = np.sum(outputs.astype(np.float64) * reference, axis=1)
    norms = np.linalg.norm(outputs.astype(np.float64), axis=1) * np.linalg.norm(reference.astype(np.float64), axis=1)
    # Two all-zero rows agree perfectly; one all-zero row against a real one does not.
    both_zero = norms == 0.0
    cosine = np.where(both_zero, 1.0, dots / np.where(both_zero, 1.0, norms))
    return float(np.mean(cosine))


def _snr_db(outputs: np.ndarray, reference: np.ndarray) -> float | None:
    """FP32's output power over the error's, in decibels; None when they are identical."""
    noise = float(np.sum((outputs.astype(np.float64) - reference) ** 2))
    if noise == 0.0:
        return None
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return round(10.0 * float(np.log10(max(signal, 1e-30) / noise)), 2)


def _boxes(output: np.ndarray, detect: DetectConfig) -> tuple[np.ndarray, np.ndarray]:
    """The boxes the service would report for one sample (model pixels), and their classes."""
    found = select(decode(output, detect.head, detect.conf, detect.extra), detect.iou, detect.max_det)
    return found.boxes, found.classes


def _matched(found: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]) -> int:
    """How many found boxes match an FP32 box of the same class, each FP32 box once, best score first."""
    boxes, classes = found
    wanted, wanted_classes = expected
    free: np.ndarray = np.ones(len(wanted), dtype=bool)
    matches = 0
    for box, cls in zip(boxes, classes):
        candidates = free & (wanted_classes == cls)
        if not candidates.any():
            continue
        overlap = np.where(candidates, iou(box, wanted), -1.0)
        best = int(np.argmax(overlap))
        if overlap[best] >= MATCH_IOU:
            free[best] = False
            matches += 1
    return matches


def detection_agreement(
    outputs: list[np.ndarray], references: list[np.ndarray], detect: DetectConfig
) -> dict[str, Any]:
    """Boxes matched against FP32's over every sample: precision, recall and their F1.

    With no FP32 box in the set, recall and F1 are None: nothing shows whether boxes survive.
    """
    found = expected = matched = 0
    for output, reference in zip(outputs, references):
        ours, theirs = _boxes(output, detect), _boxes(reference, detect)
        found, expected = found + len(ours[0]), expected + len(theirs[0])
        matched += _matched(ours, theirs)
    precision = matched / found if found else (1.0 if not expected else 0.0)
    recall = matched / expected if expected else None
    f1 = None
    if recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "box_f1": None if f1 is None else round(f1, 6),
        "box_precision": round(precision, 6),
        "box_recall": None if recall is None else round(recall, 6),
        "boxes": found,
        "reference_boxes": expected,
    }


def run_gate(backend: Backend, samples_path: str, release: Release) -> dict[str, Any]:
    samples = _load_samples(samples_path)
    if len(backend.input_names) != 1:
        raise AgentError("model", f"The gate needs a single-input model, not {backend.input_names!r}.")
    input_name = backend.input_names[0]
    inputs = samples["inputs"]
    shaped = samples["reference"]
    reference = shaped.reshape(len(inputs), -1)
    outputs = np.empty(reference.shape, dtype=np.float32)
    elapsed = 0.0
    # One sample at a time: an engine built for the camera usually has a fixed batch of 1.
    for index in range(len(inputs)):
        started = time.perf_counter()
        output = backend.infer({input_name: inputs[index : index + 1]})[0]
        elapsed += time.perf_counter() - started
        if output.size != reference.shape[1]:
            raise AgentError(
                "samples",
                f"The model gives {output.size} values per sample but the reference has {reference.shape[1]}.",
            )
        outputs[index] = output.reshape(-1)
    predicted = np.argmax(outputs, axis=1)
    expected = np.argmax(reference, axis=1)
    labels = samples.get("labels")
    accuracy: float | None = None
    reference_accuracy: float | None = None
    if labels is not None:
        accuracy = _mean_match(predicted, labels.reshape(-1))
        reference_accuracy = _mean_match(expected, labels.reshape(-1))
    report = {
        "samples": len(inputs),
        "top1_agreement": _mean_match(predicted, expected),
        "output_cosine": round(_mean_cosine(outputs, reference), 6),
        "snr_db": _snr_db(outputs, reference),
        "max_abs_diff": float(np.max(np.abs(outputs - reference))),
        "accuracy": accuracy,
        "reference_accuracy": reference_accuracy,
        "infer_ms_mean": round(elapsed * 1000.0 / len(inputs), 3),
    }
    if release.task in BOX_TASKS and release.detect is not None:
        one = shaped.shape[1:]
        report.update(
            detection_agreement(
                [row.reshape(one) for row in outputs], [row.reshape(one) for row in reference], release.detect
            )
        )
    return report
