from __future__ import annotations

import sys

import numpy as np
import onnxruntime
import pytest

from edgekit.agent.backends import load_backend
from edgekit.agent.errors import AgentError


def test_onnxruntime_backend_matches_a_plain_session(model_path):
    feeds = {"image": np.random.default_rng(1).normal(size=(1, 1, 8, 8)).astype(np.float32)}
    backend = load_backend("onnxruntime", str(model_path))
    try:
        assert backend.input_names == ["image"]
        assert backend.output_names == ["logits"]
        outputs = backend.infer(feeds)
    finally:
        backend.close()
    expected = onnxruntime.InferenceSession(str(model_path)).run(None, feeds)[0]
    assert len(outputs) == 1
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-5, atol=1e-5)


def test_unknown_backend_names_what_exists():
    with pytest.raises(AgentError) as caught:
        load_backend("tensorflow", "model.onnx")
    assert caught.value.kind == "backend"
    assert "'tensorflow'" in caught.value.message
    assert "onnxruntime" in caught.value.message


def test_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(AgentError) as caught:
        load_backend("onnxruntime", str(tmp_path / "absent.onnx"))
    assert caught.value.kind == "model"
    assert "absent.onnx" in caught.value.message


def test_corrupt_model_is_a_model_error(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(AgentError) as caught:
        load_backend("onnxruntime", str(path))
    assert caught.value.kind == "model"
    assert str(path) in caught.value.message


def test_a_device_without_onnxruntime_is_told_to_provision(model_path, monkeypatch):
    # A None entry makes `import onnxruntime` fail exactly as on a device without it.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(AgentError) as caught:
        load_backend("onnxruntime", str(model_path))
    assert caught.value.kind == "backend"
    assert caught.value.message == ("onnxruntime is not installed in the agent's environment; re-run edgekit provision")


def test_an_input_that_does_not_fit_the_model_is_a_backend_error(model_path):
    backend = load_backend("onnxruntime", str(model_path))
    with pytest.raises(AgentError) as caught:
        backend.infer({"image": np.zeros((1, 3, 8, 8), dtype=np.float32)})
    assert caught.value.kind == "backend"
