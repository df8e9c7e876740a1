"""Running a deserialized engine with the named-tensor API (8.5 and later; 10 has no other).

One CUDA stream, page-locked host buffers and device buffers that grow with the batch,
copies queued asynchronously around ``execute_async_v3``; the interface is the same as the
onnxruntime backend's, so the gate and the camera service do not know which one runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...errors import AgentError
from .logger import tensorrt_logger


class Loaded(NamedTuple):
    # The engine is only valid while the runtime that made it lives.
    runtime: Any
    engine: Any


def deserialize(trt: Any, data: bytes, dla_core: int | None = None) -> Loaded | None:
    """The engine and its runtime, or None when TensorRT refuses the bytes (another version, a torn file)."""
    runtime = trt.Runtime(tensorrt_logger(trt))
    if dla_core is not None:
        # The runtime's DLA core defaults to -1, and a DLA engine then runs on core 0,
        # whichever core it was built for.
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(data)
    return None if engine is None else Loaded(runtime, engine)


class TensorRTBackend:
    def __init__(self, trt: Any, cuda: Any, loaded: Loaded, manifest: dict[str, Any] | None = None) -> None:
        self._trt = trt
        # The engine cache's manifest of the engine: its key and what it was built for.
        self.engine = manifest
        self._cuda = cuda
        self._loaded: Loaded | None = loaded
        engine = loaded.engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise AgentError("backend", "TensorRT could not create an execution context (out of GPU memory?).")
        self._stream = cuda.stream()
        names = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
        self.input_names: list[str] = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names: list[str] = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {name: np.dtype(trt.nptype(engine.get_tensor_dtype(name))) for name in names}
        # name -> (host array, device pointer, capacity in bytes)
        self._buffers: dict[str, tuple[np.ndarray, int, int]] = {}

    def _buffer(self, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
        dtype = self._dtypes[name]
        nbytes = int(np.prod(shape)) * dtype.itemsize
        held = self._buffers.get(name)
        if held is None or held[2] < nbytes:
            if held is not None:
                self._cuda.mem_free(held[1])
            host = self._cuda.pagelocked_empty((int(np.prod(shape)),), dtype)
            held = (host, self._cuda.mem_alloc(nbytes), nbytes)
            self._buffers[name] = held
            if not self._context.set_tensor_address(name, held[1]):
                raise AgentError("backend", f"TensorRT refused the buffer for {name!r}.")
        view = held[0][: int(np.prod(shape))].reshape(shape)
        return view, held[1]

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            if name not in feeds:
                raise AgentError("backend", f"Missing input {name!r}; the engine takes {self.input_names}.")
            array = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
            if not self._context.set_input_shape(name, tuple(array.shape)):
                raise AgentError("backend", f"Input {name!r} of shape {array.shape} is outside the engine's profile.")
            host, device = self._buffer(name, tuple(array.shape))
            np.copyto(host, array)
            self._cuda.memcpy_htod_async(device, host, self._stream)
        outputs = []
        for name in self.output_names:
            shape = tuple(int(size) for size in self._context.get_tensor_shape(name))
            if any(size < 0 for size in shape):
                # Known only after the engine ran (NonZero, NMS without a fixed count).
                raise AgentError(
                    "model",
                    f"The output {name!r} has a data-dependent shape {list(shape)}, which edgekit cannot size "
                    "buffers for; export the model with fixed-size outputs (for a detector, NMS outside the model).",
                )
            outputs.append(self._buffer(name, shape))
        if not self._context.execute_async_v3(self._stream.handle):
            raise AgentError("backend", "TensorRT failed to run the engine; its log above says why.")
        for host, device in outputs:
            self._cuda.memcpy_dtoh_async(host, device, self._stream)
        self._stream.synchronize()
        return [host.copy() for host, _ in outputs]

    def close(self) -> None:
        """Releases in dependency order: buffers, context, engine, runtime, then CUDA itself.

        Only once no thread infers any more (the service stops its pipeline first).
        """
        if self._loaded is None:
            return
        self._stream.synchronize()
        for _, device, _ in self._buffers.values():
            self._cuda.mem_free(device)
        self._buffers.clear()
        self._context = None
        runtime, engine = self._loaded
        self._loaded = None
        # The engine before the runtime that made it.
        del engine
        del runtime
        self._cuda.close()
