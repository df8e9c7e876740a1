"""TensorRT's messages, sent to stderr (the journal), never to stdout.

``trt.Logger`` writes with std::cout, and the camera service's stdout carries one JSON
result record per line, so its warnings would land among the records. A Python
``ILogger`` decides where they go. Plugins are registered with the same logger, once per
imported module: the ONNX parser of TensorRT 10 and later no longer does it itself, so a
model with a plugin layer would not parse, and an engine with one would not deserialize.
"""

from __future__ import annotations

import sys
from typing import Any

# One per imported tensorrt module: TensorRT keeps the plugin registry's logger for the
# whole process, so the object must live as long (a dict holds it, and the module).
_SESSIONS: dict[Any, Any] = {}


def make_logger(trt: Any, min_severity: str = "WARNING") -> Any:
    base = trt.ILogger
    threshold = getattr(base.Severity, min_severity)

    class JournalLogger(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)

        def log(self, level: Any, msg: str) -> None:
            # Severity is an arithmetic enum in every release: lower is more severe.
            if int(level) <= int(threshold):
                print(f"TensorRT {level.name.lower()}: {msg}", file=sys.stderr, flush=True)

    return JournalLogger()


def tensorrt_logger(trt: Any) -> Any:
    """The process's logger for ``trt``; the first call also registers TensorRT's plugins."""
    logger = _SESSIONS.get(trt)
    if logger is None:
        logger = make_logger(trt)
        trt.init_libnvinfer_plugins(logger, "")
        _SESSIONS[trt] = logger
    return logger
