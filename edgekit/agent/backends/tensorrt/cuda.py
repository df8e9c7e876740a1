"""The thin seam between the TensorRT code and CUDA: device memory, pinned host memory,
one stream and asynchronous copies.

Two implementations, chosen by the release's ``build.cuda`` setting:
- ``cudart`` (the default): ctypes over the CUDA runtime library that every JetPack has
  (cudart.py). Nothing to build or install, and, like TensorRT itself, it uses the
  device's primary context, which the runtime makes current in whichever thread calls.
- ``pycuda``: for devices that already have pycuda (pycuda_context.py); it retains the
  same primary context and makes it current around each call, so any thread may call.

The runner and the calibrator see only the methods of ``Cuda``; the tests put fakes with
the same methods behind it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ...config import CUDA_SEAMS
from ...errors import AgentError


class Stream(Protocol):
    # The raw cudaStream_t, as TensorRT's execute_async_v3 takes it.
    handle: int

    def synchronize(self) -> None: ...


class Cuda(Protocol):
    def compute_capability(self) -> tuple[int, int]: ...

    def mem_alloc(self, nbytes: int) -> int: ...

    def mem_free(self, ptr: int) -> None: ...

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray: ...

    def stream(self) -> Stream: ...

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None: ...

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None: ...

    def close(self) -> None:
        """Frees what the seam still holds; called once, after every TensorRT object is gone."""
        ...


def open_cuda(seam: str) -> Cuda:
    if seam == "cudart":
        from .cudart import CudaRuntime

        return CudaRuntime()
    if seam == "pycuda":
        from .pycuda_context import PyCuda

        return PyCuda()
    raise AgentError("backend", f"The release asks for CUDA through {seam!r}; use one of {', '.join(CUDA_SEAMS)}.")
