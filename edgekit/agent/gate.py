"""The release gate: does the model as built on this device still agree with FP32?

The host computes FP32 reference outputs for a fixed sample set; the device runs the same
inputs through its own (INT8/FP16) engine and reports how often the top-1 class agrees
(classifiers) and how closely the whole output follows FP32 (every task).
The host decides whether that is good enough to switch the release live.
"""

from __future__ import annotations

import os
import time
import zipfile
from typing import Any

import numpy as np

from .backends import Backend
from .errors import AgentError


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


def run_gate(backend: Backend, samples_path: str) -> dict[str, Any]:
    samples = _load_samples(samples_path)
    if len(backend.input_names) != 1:
        raise AgentError("model", f"The gate needs a single-input model, not {backend.input_names!r}.")
    input_name = backend.input_names[0]
    inputs = samples["inputs"].astype(np.float32, copy=False)
    reference = samples["reference"].reshape(len(inputs), -1)
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
    return {
        "samples": len(inputs),
        "top1_agreement": _mean_match(predicted, expected),
        "output_cosine": round(_mean_cosine(outputs, reference), 6),
        "max_abs_diff": float(np.max(np.abs(outputs - reference))),
        "accuracy": accuracy,
        "reference_accuracy": reference_accuracy,
        "infer_ms_mean": round(elapsed * 1000.0 / len(inputs), 3),
    }
