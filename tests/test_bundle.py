"""``build_bundle``: everything a release needs, made on the host, reproducibly."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import edgekit.bundle
from edgekit.agent.drift import load_reference
from edgekit.bundle import Bundle, BundleRequest, build_bundle
from edgekit.calibration import prepare
from edgekit.errors import ModelError
from edgekit.model import inspect_model, sha256_file

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
INT8_FILES = {"model.onnx", "model.int8.onnx", "calib.npy", "gate.npz", "drift.json", "agent.pyz"}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # CACHE_DIR is computed when edgekit.bundle is imported: patch the module attribute.
    directory = tmp_path / "bundles"
    monkeypatch.setattr(edgekit.bundle, "CACHE_DIR", directory)
    return directory


def request(precision: str = "int8", holdout: Path | None = SAMPLES / "holdout") -> BundleRequest:
    return BundleRequest(
        model=SAMPLES / "model.onnx", calib_dir=SAMPLES / "calib", holdout_dir=holdout, precision=precision
    )


def digests(bundle: Bundle) -> dict[str, str]:
    return {name: sha256_file(path) for name, path in bundle.files.items()}


def test_int8_bundle(cache: Path) -> None:
    lines: list[str] = []
    bundle = build_bundle(request(), log=lines.append)
    assert set(bundle.files) == INT8_FILES
    assert bundle.files["model.onnx"] == SAMPLES / "model.onnx"
    assert bundle.directory.parent == cache
    assert {p.name for p in bundle.directory.iterdir()} == INT8_FILES - {"model.onnx"} | {"fp32-nodes.json"}
    for name in INT8_FILES - {"model.onnx"}:
        assert bundle.files[name] == bundle.directory / name
        assert bundle.files[name].stat().st_size > 0
    assert bundle.model.sha256 == sha256_file(SAMPLES / "model.onnx")
    assert bundle.holdout_samples == 360
    assert bundle.calibration_sha256 == sha256_file(bundle.files["calib.npy"])
    metrics = json.loads((SAMPLES / "metrics.json").read_text())
    assert bundle.fp32_accuracy == pytest.approx(metrics["fp32_holdout_accuracy"], abs=1e-9)
    assert bundle.host_top1_agreement >= 0.99
    assert lines and "quantizing" in " ".join(lines)
    # What curation did with the calibration folder, on one line.
    assert "calibration data in " + str(SAMPLES / "calib") + ": 300 images read" in " ".join(lines)

    info = inspect_model(SAMPLES / "model.onnx")
    data = prepare(SAMPLES / "calib", SAMPLES / "holdout", info.preprocess, info.labels)
    # One plain array, in the input's dtype, that the device's builder memory-maps.
    calib = np.load(bundle.files["calib.npy"], mmap_mode="r")
    assert calib.dtype == np.float32
    np.testing.assert_array_equal(calib, data.calibration)
    with np.load(bundle.files["gate.npz"]) as gate:
        assert set(gate) == {"inputs", "reference", "labels"}
        np.testing.assert_array_equal(gate["inputs"], data.holdout)
        assert gate["reference"].shape == (360, 10)
        assert data.holdout_labels is not None
        np.testing.assert_array_equal(gate["labels"], data.holdout_labels)
        assert float(np.mean(gate["reference"].argmax(axis=1) == gate["labels"])) == bundle.fp32_accuracy
    assert zipfile.is_zipfile(bundle.files["agent.pyz"])
    onnx.checker.check_model(onnx.load(str(bundle.files["model.int8.onnx"])))
    # The device's input drift is measured against the calibration images' own statistics.
    shipped = load_reference(str(bundle.directory))
    assert shipped is not None and shipped.frames == 300 and shipped.scores == 360


def test_bundle_is_reproducible(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_bundle(request())
    again = build_bundle(request())
    assert again.directory == first.directory
    assert digests(again) == digests(first)
    assert again.calibration_sha256 == first.calibration_sha256
    # From an empty cache (another workstation, a cleared cache) the bytes are the same too.
    monkeypatch.setattr(edgekit.bundle, "CACHE_DIR", tmp_path / "other-cache")
    fresh = build_bundle(request())
    assert fresh.directory.name == first.directory.name
    assert fresh.directory != first.directory
    assert digests(fresh) == digests(first)


def test_a_model_already_inspected_is_not_inspected_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """api.plan and api.provision inspect the model before connecting (a broken one costs no
    session); inspecting runs the model once, so the bundle takes that reading instead."""
    inspected = inspect_model(SAMPLES / "model.onnx")

    def again(*args: object) -> None:
        raise AssertionError("inspected twice")

    monkeypatch.setattr(edgekit.bundle, "inspect_model", again)
    bundle = build_bundle(BundleRequest(SAMPLES / "model.onnx", SAMPLES / "calib", None, inspected=inspected))
    assert bundle.model is inspected


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_float_bundle_ships_the_fp32_model(cache: Path, precision: str) -> None:
    # FP16 is TensorRT's job on the device; the host ships the FP32 model for it.
    bundle = build_bundle(request(precision))
    assert set(bundle.files) == INT8_FILES - {"model.int8.onnx"}
    assert not (bundle.directory / "model.int8.onnx").exists()
    # FP32 serves the model itself: it agrees with itself.
    assert bundle.host_top1_agreement == 1.0
    int8 = build_bundle(request("int8"))
    assert int8.directory != bundle.directory


def test_split_holdout_has_no_labels(cache: Path) -> None:
    bundle = build_bundle(request(holdout=None))
    assert bundle.holdout_samples == 60
    assert bundle.fp32_accuracy is None
    with np.load(bundle.files["gate.npz"]) as gate:
        assert set(gate) == {"inputs", "reference"}
    assert np.load(bundle.files["calib.npy"], mmap_mode="r").shape == (240, 1, 8, 8)


@pytest.mark.parametrize("precision", ["int4", "INT8", ""])
def test_bad_precision(cache: Path, precision: str) -> None:
    with pytest.raises(ModelError, match="Precision"):
        build_bundle(request(precision))
    assert not cache.exists()


def test_broken_model_builds_nothing(cache: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes((SAMPLES / "model.onnx").read_bytes()[:100])
    with pytest.raises(ModelError):
        build_bundle(BundleRequest(model=broken, calib_dir=SAMPLES / "calib", holdout_dir=None))
    assert not cache.exists()


def test_changed_calibration_changes_the_bundle(cache: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for path in sorted((SAMPLES / "calib").glob("*.png"))[:100]:
        (calib / path.name).write_bytes(path.read_bytes())
    small = build_bundle(BundleRequest(SAMPLES / "model.onnx", calib, SAMPLES / "holdout"))
    full = build_bundle(request())
    assert small.directory != full.directory
    assert small.calibration_sha256 != full.calibration_sha256


def test_metadata_disagreeing_with_the_input_is_a_model_error(cache: Path, tmp_path: Path) -> None:
    model = onnx.load(str(SAMPLES / "model.onnx"))
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "edgekit.model"))
    meta["preprocess"].update(height=16, width=16)
    helper.set_model_props(model, {"edgekit.model": json.dumps(meta)})
    path = tmp_path / "mismatch.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError):
        build_bundle(BundleRequest(path, SAMPLES / "calib", SAMPLES / "holdout"))


def test_cache_key_covers_the_model(cache: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    model = onnx.load(str(SAMPLES / "model.onnx"))
    model.producer_name = "someone-else"
    onnx.save(model, str(copy))
    other = build_bundle(BundleRequest(copy, SAMPLES / "calib", SAMPLES / "holdout"))
    original = build_bundle(request())
    assert other.directory != original.directory
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == other.model.sha256


def test_changed_holdout_labels_reach_gate_npz(cache: Path, tmp_path: Path) -> None:
    holdout = tmp_path / "holdout"
    holdout.mkdir()
    for path in sorted((SAMPLES / "holdout").iterdir()):
        (holdout / path.name).write_bytes(path.read_bytes())
    build_bundle(BundleRequest(SAMPLES / "model.onnx", SAMPLES / "calib", holdout))
    rows = (holdout / "labels.csv").read_text().splitlines()
    first_file, first_label = rows[1].split(",")
    rows[1] = f"{first_file},{(int(first_label) + 1) % 10}"
    (holdout / "labels.csv").write_text("\n".join(rows) + "\n")
    bundle = build_bundle(BundleRequest(SAMPLES / "model.onnx", SAMPLES / "calib", holdout))
    with np.load(bundle.files["gate.npz"]) as gate:
        assert int(gate["labels"][0]) == (int(first_label) + 1) % 10
