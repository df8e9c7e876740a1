"""CUDA through pycuda, for devices that already have it (the release's build cuda = "pycuda").

pycuda makes a context current only in the thread that pushes it, and the camera service
loads the backend in one thread and infers in another: with ``pycuda.autoinit`` every call
from the inference thread failed with "explicit_context_dependent failed: invalid device
context". So this seam retains the device's primary context, the one TensorRT's CUDA runtime
uses too, and makes it current around each call in whichever thread calls, popping it before
returning: pycuda aborts the process at exit if any thread still has a context pushed.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterator

import numpy as np

from ...errors import AgentError


def _unusable(exc: BaseException) -> AgentError:
    return AgentError(
        "backend",
        f"pycuda is not usable on this device ({exc}); the default CUDA seam, cudart, needs no pycuda: "
        'set build cuda = "cudart".',
    )


class _Stream:
    """A pycuda stream whose synchronize() makes the context current first, like every call here."""

    def __init__(self, stream: Any, current: Callable[[], ContextManager[None]]) -> None:
        self.handle = int(stream.handle)
        self.raw = stream
        self._current = current

    def synchronize(self) -> None:
        with self._current():
            self.raw.synchronize()


class PyCuda:
    def __init__(self) -> None:
        try:
            # pycuda.driver, not pycuda.autoinit: autoinit makes its own context current in the
            # importing thread only, and pops it at exit while TensorRT objects still use it.
            import pycuda.driver as driver
        except ImportError as exc:
            raise _unusable(exc) from None
        try:
            # `import pycuda` alone proves nothing; init() is what fails without a GPU or driver.
            driver.init()
            self._device = driver.Device(0)
            context = self._device.retain_primary_context()
        except driver.Error as exc:
            raise _unusable(exc) from None
        self._driver = driver
        self._context: Any = context
        # pycuda frees an allocation when its object is collected, and the runner keeps only
        # the pointer: the objects live here until mem_free or close.
        self._allocations: dict[int, Any] = {}
        # Synchronized by close() before it frees what their queued copies use.
        self._streams: list[_Stream] = []
        # pycuda frees pinned memory when its array is collected, but only where the context
        # is current or in the thread that retained it, and silently skips it elsewhere: an
        # array dropped in the inference thread would leak. close() drops them with it current.
        self._pinned: list[np.ndarray] = []

    @contextmanager
    def _current(self) -> Iterator[None]:
        # Pushing again when the context is already current is fine: each push has its pop.
        self._context.push()
        try:
            yield
        finally:
            self._driver.Context.pop()

    def compute_capability(self) -> tuple[int, int]:
        major, minor = self._device.compute_capability()
        return int(major), int(minor)

    def mem_alloc(self, nbytes: int) -> int:
        with self._current():
            # cuMemAlloc refuses 0 bytes; an empty tensor still needs an address.
            allocation = self._driver.mem_alloc(max(1, nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def mem_free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            with self._current():
                allocation.free()

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        with self._current():
            array: np.ndarray = self._driver.pagelocked_empty(shape, dtype)
        self._pinned.append(array)
        return array

    def stream(self) -> _Stream:
        with self._current():
            stream = _Stream(self._driver.Stream(), self._current)
        self._streams.append(stream)
        return stream

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: _Stream) -> None:
        with self._current():
            self._driver.memcpy_htod_async(dst, src, stream.raw)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: _Stream) -> None:
        with self._current():
            self._driver.memcpy_dtoh_async(dst, src, stream.raw)

    def close(self) -> None:
        if self._context is None:
            return
        with self._current():
            # Queued copies still use the buffers freed next.
            for stream in self._streams:
                stream.raw.synchronize()
            self._streams.clear()
            for allocation in self._allocations.values():
                allocation.free()
            self._allocations.clear()
            self._pinned.clear()
        context, self._context = self._context, None
        # Detached while current: pycuda then releases it from any thread and drops it from
        # this thread's stack. Detached while not current, it is released only in the thread
        # that retained it, and silently leaked in any other.
        context.push()
        context.detach()
