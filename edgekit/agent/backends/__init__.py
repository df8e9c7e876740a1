"""Inference runtimes the agent can run a release's model with.

Each backend lives in its own module and imports its runtime only when chosen, so a device
without TensorRT can still run the ONNX Runtime backend, and the other way round.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from ..errors import AgentError

_MODULES = {"onnxruntime": ".onnxruntime"}


class Backend(Protocol):
    """A loaded model that runs one batch at a time."""

    input_names: list[str]
    output_names: list[str]

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in ``output_names`` order."""
        ...

    def close(self) -> None: ...


def load_backend(name: str, model_path: str) -> Backend:
    module_name = _MODULES.get(name)
    if module_name is None:
        raise AgentError(
            "backend",
            f"The release asks for backend {name!r}, but this agent only has: {', '.join(sorted(_MODULES))}.",
        )
    module = importlib.import_module(module_name, __name__)
    backend: Backend = module.load(model_path)
    return backend
