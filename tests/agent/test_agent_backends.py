from __future__ import annotations

import sys

import numpy as np
import onnxruntime
import pytest

from edgekit.agent.backends import load_backend
from edgekit.agent.config import load_release
from edgekit.agent.errors import AgentError


def release_with(release_dir, model=None, backend="onnxruntime"):
    release = load_release(str(release_dir))
    return release._replace(backend=backend, model_path=str(model or release.model_path))


def load(release_dir, model=None, backend="onnxruntime"):
    return load_backend(release_with(release_dir, model, backend), str(release_dir / "engines"), print)


def test_onnxruntime_backend_matches_a_plain_session(model_path, release_dir):
    feeds = {"image": np.random.default_rng(1).normal(size=(1, 1, 8, 8)).astype(np.float32)}
    backend = load(release_dir, model_path)
    try:
        assert backend.input_names == ["image"]
        assert backend.output_names == ["logits"]
        outputs = backend.infer(feeds)
    finally:
        backend.close()
    expected = onnxruntime.InferenceSession(str(model_path)).run(None, feeds)[0]
    assert len(outputs) == 1
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-5, atol=1e-5)


def test_unknown_backend_names_what_exists(release_dir):
    with pytest.raises(AgentError) as caught:
        load(release_dir, backend="tensorflow")
    assert caught.value.kind == "backend"
    assert "'tensorflow'" in caught.value.message
    assert "onnxruntime, tensorrt" in caught.value.message


def test_a_device_without_tensorrt_is_told_what_to_install(release_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(AgentError) as caught:
        load(release_dir, backend="tensorrt")
    assert caught.value.kind == "backend"
    assert "python3-libnvinfer" in caught.value.message


def test_missing_model_is_a_model_error(tmp_path, release_dir):
    with pytest.raises(AgentError) as caught:
        load(release_dir, tmp_path / "absent.onnx")
    assert caught.value.kind == "model"
    assert "absent.onnx" in caught.value.message


def test_corrupt_model_is_a_model_error(tmp_path, release_dir):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(AgentError) as caught:
        load(release_dir, path)
    assert caught.value.kind == "model"
    assert str(path) in caught.value.message


def test_a_device_without_onnxruntime_is_told_to_provision(release_dir, monkeypatch):
    # A None entry makes `import onnxruntime` fail exactly as on a device without it.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(AgentError) as caught:
        load(release_dir)
    assert caught.value.kind == "backend"
    assert caught.value.message == ("onnxruntime is not installed in the agent's environment; re-run edgekit provision")


def test_an_input_that_does_not_fit_the_model_is_a_backend_error(release_dir):
    backend = load(release_dir)
    with pytest.raises(AgentError) as caught:
        backend.infer({"image": np.zeros((1, 3, 8, 8), dtype=np.float32)})
    assert caught.value.kind == "backend"
