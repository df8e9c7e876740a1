"""Everything a release needs, made on the host before any device is contacted.

Built into a cache folder keyed by its inputs, so re-provisioning the same model and data
reuses the same bytes, the same digests and so the same release on the device.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

from edgekit.agent.config import BOX_TASKS, CALIBRATION_FILE, PRECISIONS
from edgekit.agent.drift import DRIFT_FILE, reference_summary, top_score
from edgekit.agentpack import build_agent
from edgekit.calibration import prepare
from edgekit.curation import SUBSET_COUNT
from edgekit.errors import ModelError
from edgekit.exporters import ModelOverrides
from edgekit.gate import threshold_for
from edgekit.model import ModelInfo, inspect_model, served_onnx, sha256_file
from edgekit.quantize import quantize_qdq, reference_outputs
from edgekit.sensitivity import MODES, GateTarget, MixedPrecision, keep_precise

# FP16 ships the FP32 model: TensorRT lowers it on the device.
CACHE_DIR = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "bundles"
# Bump when what goes into a bundle changes, so stale cached bundles are not reused.
# 5: unnamed nodes are named as TensorRT names their layers; --mixed-precision auto.
# 6: drift.json, the calibration images' statistics the device's input drift is measured from.
BUNDLE_VERSION = "6"


@dataclass(frozen=True)
class BundleRequest:
    model: Path
    calib_dir: Path
    holdout_dir: Path | None
    precision: str = "int8"
    overrides: ModelOverrides = ModelOverrides()
    # "auto" keeps the layers INT8 hurts most at a higher precision (edgekit.sensitivity).
    mixed_precision: str = "off"
    # What the host's estimate of the gate is held to; None takes the task's default.
    gate_threshold: float | None = None
    # ``model`` as edgekit.model.inspect_model already read it with ``overrides`` (inspecting
    # runs the model once); None inspects it here.
    inspected: ModelInfo | None = None
    # Calibration frames kept at most: past it, a diverse subset (edgekit.curation).
    calibration_count: int = SUBSET_COUNT


@dataclass(frozen=True)
class Bundle:
    """Local files of one release, plus what the summary reports about them."""

    model: ModelInfo
    directory: Path
    files: dict[str, Path]
    calibration_sha256: str
    holdout_samples: int
    fp32_accuracy: float | None
    host_top1_agreement: float
    # Nodes of the Q/DQ model left in FP32: a detection head's decode (edgekit.quantize.head_tail).
    fp32_nodes: tuple[str, ...] = ()
    # What --mixed-precision auto kept at a higher precision, and the gate figure at each step.
    mixed_precision: MixedPrecision | None = None


def build_bundle(request: BundleRequest, log: Callable[[str], None] = lambda text: None) -> Bundle:
    if request.precision not in PRECISIONS:
        raise ModelError(f"Precision {request.precision!r} is not served here; choose one of {', '.join(PRECISIONS)}.")
    if request.mixed_precision not in MODES:
        raise ModelError(f"Mixed precision {request.mixed_precision!r} is not one of {', '.join(MODES)}; choose one.")
    model = request.inspected or inspect_model(request.model, request.overrides)
    log(f"model {model.path.name}: {model.inputs[0].name}{list(model.inputs[0].shape)}, opset {model.opset}")
    for note in model.notes:
        log(note)
    data = prepare(
        request.calib_dir,
        request.holdout_dir,
        model.preprocess,
        model.labels,
        count=request.calibration_count,
        log=log,
    )
    key = hashlib.sha256(
        json.dumps(
            [
                BUNDLE_VERSION,
                model.sha256,
                data.sha256,
                hashlib.sha256(data.holdout.tobytes()).hexdigest(),
                None if data.holdout_labels is None else hashlib.sha256(data.holdout_labels.tobytes()).hexdigest(),
                request.precision,
                list(model.input_shape),
                model.task,
                request.mixed_precision,
                _threshold(request, model.task) if request.mixed_precision == "auto" else None,
            ]
        ).encode()
    ).hexdigest()[:20]
    directory = CACHE_DIR / key
    directory.mkdir(parents=True, exist_ok=True)
    fp32 = model.path
    if model.pinned:
        fp32 = _write_once(directory / "model.onnx", lambda path: _write_bytes(path, served_onnx(model)))
    files: dict[str, Path] = {"model.onnx": fp32}
    input_name = model.preprocess.input_name
    reference = reference_outputs(fp32, input_name, data.holdout)
    served = fp32
    kept: list[str] = []
    mixed: MixedPrecision | None = None
    if request.mixed_precision == "auto" and request.precision != "int8":
        log(f"mixed precision: nothing to choose, the {request.precision} model has no INT8 layer")
    if request.precision == "int8":
        served, record = directory / "model.int8.onnx", directory / "fp32-nodes.json"
        mixed_record = directory / "mixed-precision.json"
        auto = request.mixed_precision == "auto"
        if not (served.exists() and record.exists() and (mixed_record.exists() or not auto)):
            log(f"quantizing to INT8 Q/DQ with {len(data.calibration)} calibration images")
            # A detector's decode mixes coordinates and scores: it stays in FP32 (edgekit.quantize).
            head = [model.outputs[0].name] if model.task in BOX_TASKS else []
            scratch = directory / "model.int8.onnx.tmp"
            kept = quantize_qdq(fp32, input_name, data.calibration, scratch, head)
            if auto:
                target = GateTarget(model.task, model.detect, _threshold(request, model.task))
                mixed = keep_precise(
                    fp32, input_name, data.calibration, data.holdout, reference, target, head, scratch, log
                )
                mixed_record.write_text(json.dumps(mixed.to_dict()))
            scratch.replace(served)
            record.write_text(json.dumps(kept))
        kept = json.loads(record.read_text())
        if auto:
            mixed = MixedPrecision.from_dict(json.loads(mixed_record.read_text()))
            # Shipped with the release: TensorRT's calibrator path serves the same model.onnx
            # either way, and a release is named by its files.
            files["mixed-precision.json"] = mixed_record
        files["model.int8.onnx"] = served
    host_outputs = reference if served == fp32 else reference_outputs(served, input_name, data.holdout)
    calib = _write_once(directory / CALIBRATION_FILE, lambda path: np.save(path, data.calibration))
    gate_arrays: _GateArrays = {"inputs": data.holdout, "reference": reference}
    if data.holdout_labels is not None:
        gate_arrays["labels"] = data.holdout_labels
    files[CALIBRATION_FILE] = calib
    files["gate.npz"] = _write_once(directory / "gate.npz", lambda path: np.savez(path, **gate_arrays))
    # The frames calibration kept (curation drops unreadable ones and near-duplicates).
    frames = [request.calib_dir / name for name in data.curation.kept] if data.curation else []
    files[DRIFT_FILE] = _write_once(
        directory / DRIFT_FILE, lambda path: _write_drift(path, frames, reference_scores(model, reference))
    )
    agent = directory / "agent.pyz"
    build_agent(agent)
    files["agent.pyz"] = agent
    fp32_accuracy = None
    if data.holdout_labels is not None:
        fp32_accuracy = float(np.mean(reference.argmax(axis=1) == data.holdout_labels))
    return Bundle(
        model=model,
        directory=directory,
        files=files,
        calibration_sha256=sha256_file(calib),
        holdout_samples=len(data.holdout),
        fp32_accuracy=fp32_accuracy,
        host_top1_agreement=float(np.mean(reference.argmax(axis=1) == host_outputs.argmax(axis=1))),
        fp32_nodes=tuple(kept),
        mixed_precision=mixed,
    )


def reference_scores(model: ModelInfo, outputs: np.ndarray) -> list[float]:
    """The top score of each FP32 output row (the held-out frames), as the device's drift window takes it."""
    scores = (top_score(outputs[i : i + 1], model.task, model.detect) for i in range(len(outputs)))
    return [score for score in scores if score is not None]


def _write_drift(path: Path, images: list[Path], scores: list[float]) -> None:
    """drift.json: the statistics of the calibration *images*, as the camera's frames are measured."""
    import cv2

    frames = (cv2.imread(str(image), cv2.IMREAD_COLOR) for image in images)
    summary = reference_summary([frame for frame in frames if frame is not None], scores)
    path.write_text(json.dumps(summary.to_dict()))


def _threshold(request: BundleRequest, task: str) -> float:
    return threshold_for(task, request.gate_threshold)


class _GateArrays(TypedDict):
    """gate.npz's arrays; as a TypedDict, ``np.savez(**arrays)`` cannot be read as passing ``allow_pickle``."""

    inputs: np.ndarray
    reference: np.ndarray
    labels: NotRequired[np.ndarray]


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _write_once(path: Path, write: Callable[[Path], None]) -> Path:
    # numpy appends .npy/.npz to names without it, so the temporary name keeps the suffix.
    if not path.exists():
        temporary = path.with_name("tmp-" + path.name)
        write(temporary)
        temporary.rename(path)
    return path
