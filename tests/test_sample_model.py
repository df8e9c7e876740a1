"""The committed sample model and its data behave as samples/digits/metrics.json claims.

Everything is measured the way the device does it: files decoded by OpenCV, turned into
tensors by the shared preprocess(), then run by onnxruntime.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from digits_sample import DIGITS_SPEC, SAMPLES

from edgekit.agent.preprocess import PreprocessSpec, preprocess


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(str(SAMPLES / "model.onnx"))


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(SAMPLES / "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def metrics() -> dict[str, float]:
    data: dict[str, float] = json.loads((SAMPLES / "metrics.json").read_text())
    return data


def read_labels(path: Path, key: str) -> dict[str, int]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [key, "label"]
        return {row[key]: int(row["label"]) for row in reader}


def predict(session: ort.InferenceSession, frames: list[np.ndarray]) -> np.ndarray:
    batch = np.concatenate([preprocess(frame, DIGITS_SPEC) for frame in frames])
    (logits,) = session.run(["logits"], {"image": batch})
    assert logits.shape == (len(frames), 10)
    classes: np.ndarray = np.asarray(logits).argmax(axis=1)
    return classes


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def dim_names(value_info: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_model_is_valid_onnx_with_expected_io(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model)
    assert model.producer_name == "edgekit-sample"
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["logits"]
    (image,) = model.graph.input
    (logits,) = model.graph.output
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert logits.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dim_names(image) == ["N", 1, 8, 8]
    assert dim_names(logits) == ["N", 10]


def test_metadata_describes_classifier_and_preprocessing(model: onnx.ModelProto) -> None:
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["edgekit.model"])
    assert meta["task"] == "classify"
    assert meta["labels"] == [str(d) for d in range(10)]
    assert PreprocessSpec.from_dict(meta["preprocess"]) == DIGITS_SPEC


def test_batch_dimension_is_dynamic(session: ort.InferenceSession) -> None:
    for n in (1, 7):
        (logits,) = session.run(["logits"], {"image": np.zeros((n, 1, 8, 8), np.float32)})
        assert logits.shape == (n, 10)


def test_holdout_accuracy_matches_recorded_metrics(session: ort.InferenceSession, metrics: dict[str, float]) -> None:
    labels = read_labels(SAMPLES / "holdout" / "labels.csv", "file")
    assert len(labels) == metrics["holdout_samples"] == 360
    names = sorted(labels)
    images = [read_png(SAMPLES / "holdout" / n) for n in names]
    predicted = predict(session, images)
    accuracy = float((predicted == np.array([labels[n] for n in names])).mean())
    assert accuracy == pytest.approx(metrics["fp32_holdout_accuracy"], abs=1e-9)
    assert accuracy >= 0.97


def test_clip_decodes_and_is_classified(session: ort.InferenceSession, metrics: dict[str, float]) -> None:
    capture = cv2.VideoCapture(str(SAMPLES / "clip.avi"))
    assert capture.isOpened()
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == metrics["clip_frames"] == 300
    assert all(f.shape == (128, 128, 3) for f in frames)

    labels = read_labels(SAMPLES / "clip_labels.csv", "frame")
    expected = np.array([labels[str(i)] for i in range(len(frames))])
    # Not compared exactly with metrics.json: MJPG decoding may differ slightly between
    # OpenCV/libjpeg builds, unlike the lossless PNGs above.
    accuracy = float((predict(session, frames) == expected).mean())
    assert accuracy >= 0.95


def test_calibration_images_are_32px_grayscale(metrics: dict[str, float]) -> None:
    paths = sorted((SAMPLES / "calib").glob("*.png"))
    assert [p.name for p in paths] == [f"{i:04d}.png" for i in range(300)]
    assert metrics["calib_images"] == 300
    for path in paths:
        image = read_png(path)
        assert image.dtype == np.uint8
        assert image.shape == (32, 32)
