"""The thin seam between the TensorRT code and CUDA: device memory, pinned host memory,
one stream and asynchronous copies. pycuda implements it on the device; the tests use a
fake with the same methods, so the copies the runner and the calibrator make are checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import AgentError


class PyCuda:
    """CUDA through pycuda, which JetPack's python3-pycuda or pip provides."""

    def __init__(self) -> None:
        try:
            import pycuda.autoinit  # noqa: F401 - creates the context on the default device
            import pycuda.driver as driver
        except Exception as exc:  # noqa: BLE001 - ImportError, or a driver error without a GPU
            raise AgentError(
                "backend",
                f"pycuda is not usable on this device ({exc}); install it with `sudo pip3 install pycuda` and re-run.",
            ) from None
        self._driver = driver
        # Device allocations are freed when their pycuda object goes: keep them by pointer.
        self._allocations: dict[int, Any] = {}

    def compute_capability(self) -> tuple[int, int]:
        major, minor = self._driver.Device(0).compute_capability()
        return int(major), int(minor)

    def mem_alloc(self, nbytes: int) -> int:
        allocation = self._driver.mem_alloc(max(1, nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def mem_free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            allocation.free()

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self._driver.pagelocked_empty(shape, dtype)

    def stream(self) -> Any:
        return self._driver.Stream()

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._driver.memcpy_htod_async(dst, src, stream)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._driver.memcpy_dtoh_async(dst, src, stream)
