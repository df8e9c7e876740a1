"""Inference runtimes the agent can run a release's model with.

Each backend lives in its own module and imports its runtime only when chosen, so a device
without TensorRT can still run the ONNX Runtime backend, and the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..config import Release
from ..errors import AgentError

# Only annotations need numpy here: the host imports this package for Log (tensorrt.progress)
# when the CLI starts, and the backends import numpy themselves.
if TYPE_CHECKING:
    import numpy as np

Log = Callable[[str], None]


class Backend(Protocol):
    """A loaded model that runs one batch at a time."""

    input_names: list[str]
    output_names: list[str]
    # What the model runs from when it is built for this device (a TensorRT engine's key and
    # the TensorRT, GPU and L4T it was built for); None when the ONNX file itself runs.
    engine: dict[str, Any] | None

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in ``output_names`` order."""
        ...

    def close(self) -> None: ...


def _onnxruntime(release: Release, engines_dir: str, log: Log) -> Backend:
    from .onnxruntime import load

    return load(release.model_path)


def _tensorrt(release: Release, engines_dir: str, log: Log) -> Backend:
    from .tensorrt.engine import load

    return load(release, engines_dir, log)


_LOADERS: dict[str, Callable[[Release, str, Log], Backend]] = {"onnxruntime": _onnxruntime, "tensorrt": _tensorrt}


def load_backend(release: Release, engines_dir: str, log: Log) -> Backend:
    """The release's model, ready to run; TensorRT builds its engine into ``engines_dir`` first if needed."""
    loader = _LOADERS.get(release.backend)
    if loader is None:
        raise AgentError(
            "backend",
            f"The release asks for backend {release.backend!r}; this agent has: {', '.join(sorted(_LOADERS))}.",
        )
    return loader(release, engines_dir, log)
