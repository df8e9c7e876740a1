"""``agent build`` with the serving release as a baseline: gated on the new release's own
samples after it, with real onnxruntime releases, and never failing the build."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import numpy_helper

import edgekit.agent.build
from edgekit.agent.__main__ import main
from edgekit.agent.backends import load_backend
from edgekit.agent.build import build_and_record, run_build
from edgekit.agent.config import load_release
from edgekit.agent.gate import run_gate


@pytest.fixture
def samples(tmp_path, model_path):
    """The new release's gate samples: inputs and the FP32 outputs of its model."""
    inputs = np.random.default_rng(2).normal(size=(20, 1, 8, 8)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(model_path))
    reference = np.concatenate([session.run(None, {"image": x[None]})[0] for x in inputs])
    path = tmp_path / "gate.npz"
    np.savez(path, inputs=inputs, reference=reference, labels=reference.argmax(axis=1))
    return path


def serving_release(tmp_path, release_dir, model_path, classes=10, seed=5):
    """The release serving now: the tiny classifier with other weights, so it agrees less."""
    model = onnx.load(str(model_path))
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        shape = (64, classes) if tensor.name == "weights" else (classes,)
        tensor.CopyFrom(numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), tensor.name))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = classes
    directory = tmp_path / "serving"
    directory.mkdir()
    onnx.save(model, str(directory / "model.int8.onnx"))
    manifest = json.loads((release_dir / "release.json").read_text())
    manifest.update(release="r-old", labels=manifest["labels"][:classes])
    (directory / "release.json").write_text(json.dumps(manifest))
    return directory


def gated_alone(release_dir, samples_path):
    release = load_release(str(release_dir))
    backend = load_backend(release, "unused-engines-dir", print)
    try:
        return run_gate(backend, str(samples_path), release)
    finally:
        backend.close()


def timeless(gate):
    return {key: value for key, value in gate.items() if key != "infer_ms_mean"}


@pytest.fixture
def lines(monkeypatch):
    logged: list[str] = []
    monkeypatch.setattr(edgekit.agent.build, "log", logged.append)
    return logged


def test_the_serving_release_is_gated_on_the_same_samples_as_the_new_one(
    tmp_path, release_dir, model_path, samples, lines, monkeypatch
):
    serving = serving_release(tmp_path, release_dir, model_path)
    opened: list[str] = []

    def one_at_a_time(release, engines_dir, log):
        # A Jetson's GPU memory may hold one model: the new one is closed before the old loads.
        assert not opened, f"{release.release} loaded while {opened} is open"
        backend = load_backend(release, engines_dir, log)
        opened.append(release.release)
        close = backend.close

        def closed():
            opened.remove(release.release)
            close()

        monkeypatch.setattr(backend, "close", closed)
        return backend

    monkeypatch.setattr(edgekit.agent.build, "load_backend", one_at_a_time)

    answer = run_build(str(release_dir), str(samples), str(tmp_path / "engines"), str(serving))

    assert answer["release"] == "r-test" and answer["gate"]["top1_agreement"] == 1.0
    baseline = answer["baseline"]
    assert baseline["release"] == "r-old" and set(baseline) == {"release", "gate"}
    assert timeless(baseline["gate"]) == timeless(gated_alone(serving, samples))
    assert baseline["gate"]["samples"] == 20 and baseline["gate"]["top1_agreement"] < 1.0
    assert "gating the serving release r-old on the same samples" in lines
    assert not opened


def test_without_a_baseline_the_answer_has_none(tmp_path, release_dir, samples, lines):
    assert "baseline" not in run_build(str(release_dir), str(samples), str(tmp_path / "engines"))


def test_a_serving_release_that_cannot_load_costs_the_comparison_not_the_build(tmp_path, release_dir, samples, lines):
    gone = tmp_path / "r-gone"
    gone.mkdir()
    result = tmp_path / "builds" / "r-test.json"

    answer = build_and_record(str(release_dir), str(samples), str(tmp_path / "engines"), str(result), str(gone))

    assert answer["gate"]["top1_agreement"] == 1.0
    assert set(answer["baseline"]) == {"release", "error"} and answer["baseline"]["release"] == "r-gone"
    assert "release.json" in answer["baseline"]["error"]
    assert json.loads(result.read_text()) == answer


def test_a_serving_release_the_samples_do_not_fit_says_so_by_its_id(tmp_path, release_dir, model_path, samples, lines):
    serving = serving_release(tmp_path, release_dir, model_path, classes=7)

    answer = run_build(str(release_dir), str(samples), str(tmp_path / "engines"), str(serving))

    assert answer["gate"]["samples"] == 20
    assert answer["baseline"] == {
        "release": "r-old",
        "error": "The model gives 7 values per sample but the reference has 10.",
    }


def test_the_command_line_passes_the_baseline(capsys, tmp_path, release_dir, model_path, samples):
    serving = serving_release(tmp_path, release_dir, model_path)
    result = tmp_path / "builds" / "r-test.json"
    argv = ["build", "--release-dir", str(release_dir), "--samples", str(samples), "--result", str(result)]

    assert main([*argv, "--engines-dir", str(tmp_path / "engines"), "--baseline-release-dir", str(serving)]) == 0

    answer = json.loads(capsys.readouterr().out)
    assert answer == json.loads(result.read_text())
    assert answer["baseline"]["release"] == "r-old" and answer["baseline"]["gate"]["samples"] == 20
