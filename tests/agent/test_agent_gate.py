from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from edgekit.agent.backends import load_backend
from edgekit.agent.config import load_release
from edgekit.agent.errors import AgentError
from edgekit.agent.gate import run_gate


def gate(release_dir, samples_path):
    release = load_release(str(release_dir))
    backend = load_backend(release, "unused-engines-dir", print)
    try:
        return run_gate(backend, str(samples_path), release)
    finally:
        backend.close()


@pytest.fixture
def samples(model_path):
    """20 inputs and their FP32 outputs, as the host computes them."""
    inputs = np.random.default_rng(2).normal(size=(20, 1, 8, 8)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(model_path))
    reference = np.concatenate([session.run(None, {"image": x[None]})[0] for x in inputs])
    return inputs, reference


def test_a_model_agrees_fully_with_its_own_outputs(tmp_path, release_dir, samples):
    inputs, reference = samples
    path = tmp_path / "samples.npz"
    np.savez(path, inputs=inputs, reference=reference, labels=reference.argmax(axis=1))
    result = gate(release_dir, path)
    assert result["samples"] == 20
    assert result["top1_agreement"] == 1.0
    assert result["output_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert result["max_abs_diff"] < 1e-4
    assert result["accuracy"] == 1.0
    assert result["reference_accuracy"] == 1.0
    assert result["infer_ms_mean"] > 0


def test_a_perturbed_reference_lowers_agreement_by_the_rows_changed(tmp_path, release_dir, samples):
    inputs, reference = samples
    labels = reference.argmax(axis=1)
    perturbed = reference.copy()
    for row in range(5):
        perturbed[row, (labels[row] + 1) % 10] = reference[row].max() + 5.0
    path = tmp_path / "samples.npz"
    np.savez(path, inputs=inputs, reference=perturbed, labels=labels)
    result = gate(release_dir, path)
    assert result["top1_agreement"] == 0.75
    assert result["output_cosine"] < 0.99
    assert result["max_abs_diff"] >= 5.0
    assert result["accuracy"] == 1.0
    assert result["reference_accuracy"] == 0.75


def test_labels_are_optional(tmp_path, release_dir, samples):
    inputs, reference = samples
    path = tmp_path / "samples.npz"
    np.savez(path, inputs=inputs, reference=reference)
    result = gate(release_dir, path)
    assert result["accuracy"] is None
    assert result["reference_accuracy"] is None


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"inputs": np.zeros((2, 1, 8, 8), np.float32)}, "'reference'"),
        (
            {"inputs": np.zeros((2, 1, 8, 8), np.float32), "reference": np.zeros((3, 10))},
            "'reference' has 3 rows",
        ),
        (
            {"inputs": np.zeros((2, 1, 8, 8), np.float32), "reference": np.zeros((2, 7))},
            "reference has 7",
        ),
    ],
)
def test_bad_samples_are_explained(tmp_path, release_dir, arrays, needle):
    path = tmp_path / "samples.npz"
    np.savez(path, **arrays)
    with pytest.raises(AgentError) as caught:
        gate(release_dir, path)
    assert caught.value.kind == "samples"
    assert needle in caught.value.message


def test_missing_samples_file(tmp_path, release_dir):
    with pytest.raises(AgentError) as caught:
        gate(release_dir, tmp_path / "none.npz")
    assert caught.value.kind == "samples"
    assert "none.npz" in caught.value.message


def test_output_cosine_is_the_mean_over_samples_and_ignores_scale(tmp_path, release_dir, samples):
    inputs, reference = samples
    # Half the rows scaled (same direction), half negated (opposite): mean cosine (1 - 1) / 2.
    changed = reference.copy()
    changed[:10] *= 3.0
    changed[10:] *= -1.0
    path = tmp_path / "samples.npz"
    np.savez(path, inputs=inputs, reference=changed)
    assert gate(release_dir, path)["output_cosine"] == pytest.approx(0.0, abs=1e-5)
