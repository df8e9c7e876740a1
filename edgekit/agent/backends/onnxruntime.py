"""ONNX Runtime on the CPU: runs any release, and is the reference the TensorRT path is gated on."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import AgentError


class OnnxRuntimeBackend:
    def __init__(self, session: Any) -> None:
        self._session = session
        self.input_names: list[str] = [i.name for i in session.get_inputs()]
        self.output_names: list[str] = [o.name for o in session.get_outputs()]

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._session.run(self.output_names, feeds))
        except Exception as exc:  # noqa: BLE001 - see load()
            # Usually a release whose preprocess spec does not match the model's input.
            raise AgentError("backend", f"onnxruntime inference failed: {exc}") from None

    def close(self) -> None:
        # A session frees its memory only when the last reference goes.
        self._session = None


def load(model_path: str, threads: int = 0) -> OnnxRuntimeBackend:
    """``threads`` caps the intra-op threads (0: onnxruntime's choice, one per core)."""
    try:
        import onnxruntime
    except ImportError:
        raise AgentError(
            "backend",
            "onnxruntime is not installed in the agent's environment; re-run edgekit provision",
        ) from None
    if not os.path.isfile(model_path):
        raise AgentError("model", f"The model file {model_path} does not exist.")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        # onnxruntime raises its own pybind exception types, which do not share a base class.
        raise AgentError("model", f"onnxruntime could not load the model {model_path}: {exc}") from None
    return OnnxRuntimeBackend(session)
