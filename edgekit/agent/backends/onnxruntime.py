"""ONNX Runtime on the CPU: runs any release, and is the reference the TensorRT path is gated on."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import AgentError

CPUINFO = "/proc/cpuinfo"
# x86 instructions with which onnxruntime's fused INT8 kernels multiply without saturating.
_X86_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def saturating_int8_kernels(cpuinfo: str = CPUINFO) -> bool:
    """Whether onnxruntime's fused INT8 kernels lose accuracy on this CPU.

    On x86 without VNNI they multiply-add through 16-bit intermediates that saturate
    (onnxruntime's quantization docs: the AVX2 U8S8 saturation issue); a Q/DQ model that
    agrees with FP32 on 99.7 % of the digits gets 85 % there. ARM (every Jetson) and x86
    with VNNI compute exactly.
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return "avx2" in flags and not flags.intersection(_X86_DOT_PRODUCT_FLAGS)


def session_options(threads: int = 0) -> Any:
    """``threads`` caps the intra-op threads (0: onnxruntime's choice, one per core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if saturating_int8_kernels():
        # Q/DQ pairs then run as dequantize, float op, quantize: the INT8 arithmetic the model
        # describes, which is what TensorRT computes on the device, only slower.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    return options


class OnnxRuntimeBackend:
    def __init__(self, session: Any) -> None:
        self._session = session
        self.input_names: list[str] = [i.name for i in session.get_inputs()]
        self.output_names: list[str] = [o.name for o in session.get_outputs()]
        self.engine: dict[str, Any] | None = None

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
    try:
        import onnxruntime
    except ImportError:
        raise AgentError(
            "backend",
            "onnxruntime is not installed in the agent's environment; re-run edgekit provision",
        ) from None
    if not os.path.isfile(model_path):
        raise AgentError("model", f"The model file {model_path} does not exist.")
    try:
        session = onnxruntime.InferenceSession(
            model_path, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001
        # onnxruntime raises its own pybind exception types, which do not share a base class.
        raise AgentError("model", f"onnxruntime could not load the model {model_path}: {exc}") from None
    return OnnxRuntimeBackend(session)
