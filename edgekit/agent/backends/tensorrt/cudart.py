"""The CUDA seam over libcudart through ctypes, as NVIDIA's Polygraphy does it.

Every JetPack ships the CUDA runtime library, so this needs nothing built or installed, and
it works from any thread: the runtime makes the device's primary context (the one
TensorRT uses) current in a thread that has none. Each function is bound with its C
signature, and every return code is checked, so a failure is one AgentError sentence
instead of a crash or a silent wrong answer.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from typing import Any, Sequence

import numpy as np

from ...errors import AgentError
from ...facts import CUDA_ATTRIBUTE_CC_MAJOR, CUDA_ATTRIBUTE_CC_MINOR, cuda_error, cudart_candidates

_int_p = ctypes.POINTER(ctypes.c_int)
_void_pp = ctypes.POINTER(ctypes.c_void_p)
# name -> (restype, argtypes): the CUDA runtime API's C signatures (cudaError_t is an int
# enum, cudaStream_t a pointer).
SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "cudaGetErrorName": (ctypes.c_char_p, (ctypes.c_int,)),
    "cudaGetErrorString": (ctypes.c_char_p, (ctypes.c_int,)),
    "cudaGetDeviceCount": (ctypes.c_int, (_int_p,)),
    "cudaRuntimeGetVersion": (ctypes.c_int, (_int_p,)),
    "cudaDeviceGetAttribute": (ctypes.c_int, (_int_p, ctypes.c_int, ctypes.c_int)),
    "cudaMalloc": (ctypes.c_int, (_void_pp, ctypes.c_size_t)),
    "cudaFree": (ctypes.c_int, (ctypes.c_void_p,)),
    "cudaMallocHost": (ctypes.c_int, (_void_pp, ctypes.c_size_t)),
    "cudaFreeHost": (ctypes.c_int, (ctypes.c_void_p,)),
    "cudaStreamCreate": (ctypes.c_int, (_void_pp,)),
    "cudaStreamDestroy": (ctypes.c_int, (ctypes.c_void_p,)),
    "cudaStreamSynchronize": (ctypes.c_int, (ctypes.c_void_p,)),
    "cudaMemcpyAsync": (
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p),
    ),
}
CUDA_ERROR_NO_DEVICE = 100
# cudaMemcpyKind values.
_HOST_TO_DEVICE = 1
_DEVICE_TO_HOST = 2
_DEVICE = 0
_NO_GPU_FIX = (
    "the service user must be able to open the GPU's device nodes (add it to the video group: "
    "`sudo usermod -aG video <user>`) and the device needs JetPack's CUDA driver "
    "(`sudo apt install nvidia-l4t-cuda`)"
)


def _load(candidates: Sequence[str]) -> tuple[Any, str]:
    for candidate in candidates:
        try:
            library = ctypes.CDLL(candidate)
            for name, (restype, argtypes) in SIGNATURES.items():
                function = getattr(library, name)
                function.restype = restype
                function.argtypes = argtypes
        except (OSError, AttributeError):
            # Not there, not loadable (another CPU's build), or too old to have a function.
            continue
        return library, candidate
    names = list(dict.fromkeys(os.path.basename(candidate) for candidate in candidates))
    raise AgentError(
        "backend",
        f"No usable CUDA runtime library was found (tried {', '.join(names) or 'nothing'} in "
        f"{len(candidates)} places); install JetPack's CUDA runtime with `sudo apt install nvidia-l4t-cuda` "
        "(or the cuda-runtime-X-Y package of the device's CUDA) and re-run.",
    )


class CudaStream:
    """A cudaStream_t of this seam; ``handle`` is what execute_async_v3 takes."""

    def __init__(self, cuda: CudaRuntime, handle: int) -> None:
        self.handle = handle
        self._cuda = cuda
        # Host arrays of copies still queued: CUDA reads or writes them when the copy runs,
        # so they must outlive the call that queued it, however the caller made them.
        self._in_flight: list[np.ndarray] = []

    def synchronize(self) -> None:
        # Only what was queued before the call is done; another thread may queue meanwhile.
        done = len(self._in_flight)
        self._cuda._call("cudaStreamSynchronize", ctypes.c_void_p(self.handle))
        del self._in_flight[:done]


class CudaRuntime:
    def __init__(self, candidates: Sequence[str] | None = None) -> None:
        tried = cudart_candidates(sys.path) if candidates is None else [str(c) for c in candidates]
        self._lib, self.library = _load(tried)
        self._lock = threading.Lock()
        self._device: dict[int, int] = {}
        self._pinned: dict[int, int] = {}
        self._streams: dict[int, CudaStream] = {}
        self._closed = False
        count = ctypes.c_int(0)
        code = self._lib.cudaGetDeviceCount(ctypes.byref(count))
        if code != 0 or count.value < 1:
            reason = self._describe(code if code != 0 else CUDA_ERROR_NO_DEVICE)
            raise AgentError(
                "backend", f"No CUDA GPU answered ({self.library} says {reason}); {_NO_GPU_FIX}, then re-run."
            )

    # -- the seam -------------------------------------------------------------------------

    def compute_capability(self) -> tuple[int, int]:
        return self._attribute(CUDA_ATTRIBUTE_CC_MAJOR), self._attribute(CUDA_ATTRIBUTE_CC_MINOR)

    def mem_alloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        size = max(1, int(nbytes))
        self._call("cudaMalloc", ctypes.byref(pointer), size)
        with self._lock:
            self._device[int(pointer.value or 0)] = size
        return int(pointer.value or 0)

    def mem_free(self, ptr: int) -> None:
        self._call("cudaFree", ctypes.c_void_p(ptr))
        with self._lock:
            self._device.pop(ptr, None)

    def pagelocked_empty(self, shape: Any, dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        pointer = ctypes.c_void_p()
        self._call("cudaMallocHost", ctypes.byref(pointer), max(1, nbytes))
        address = int(pointer.value or 0)
        with self._lock:
            self._pinned[address] = nbytes
        # The array only borrows the pinned block, which close() frees.
        block = (ctypes.c_char * max(1, nbytes)).from_address(address)
        array: np.ndarray = np.frombuffer(block, dtype=dtype, count=count).reshape(shape)
        return array

    def stream(self) -> CudaStream:
        handle = ctypes.c_void_p()
        self._call("cudaStreamCreate", ctypes.byref(handle))
        stream = CudaStream(self, int(handle.value or 0))
        with self._lock:
            self._streams[stream.handle] = stream
        return stream

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        host = _host_array(src, "memcpy_htod_async", writable=False)
        self._copy(dst, host.ctypes.data, host, _HOST_TO_DEVICE, stream)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        host = _host_array(dst, "memcpy_dtoh_async", writable=True)
        self._copy(host.ctypes.data, src, host, _DEVICE_TO_HOST, stream)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            streams, self._streams = list(self._streams.values()), {}
            device, self._device = list(self._device), {}
            pinned, self._pinned = list(self._pinned), {}
        # Streams first: destroying one lets its queued copies finish before their memory goes.
        calls = [("cudaStreamDestroy", stream.handle) for stream in streams]
        calls += [("cudaFree", ptr) for ptr in device] + [("cudaFreeHost", ptr) for ptr in pinned]
        failure = None
        for function, pointer in calls:
            try:
                self._call(function, ctypes.c_void_p(pointer))
            except AgentError as error:
                # Free the rest anyway; the first failure is the one worth reporting.
                failure = failure or error
        if failure is not None:
            raise failure

    # -- for preflight and scripts/gpu-smoke ------------------------------------------------

    def device_count(self) -> int:
        count = ctypes.c_int(0)
        self._call("cudaGetDeviceCount", ctypes.byref(count))
        return count.value

    def runtime_version(self) -> tuple[int, int]:
        """The CUDA runtime's (major, minor), e.g. (12, 6) for 12060."""
        version = ctypes.c_int(0)
        self._call("cudaRuntimeGetVersion", ctypes.byref(version))
        return version.value // 1000, version.value % 1000 // 10

    def held(self) -> dict[str, int]:
        """What the seam holds now and close() would free."""
        with self._lock:
            return {"device": len(self._device), "pinned": len(self._pinned), "streams": len(self._streams)}

    # -- internals ------------------------------------------------------------------------

    def _attribute(self, attribute: int) -> int:
        value = ctypes.c_int(0)
        self._call("cudaDeviceGetAttribute", ctypes.byref(value), attribute, _DEVICE)
        return value.value

    def _copy(self, dst: int, src: int, host: np.ndarray, kind: int, stream: Any) -> None:
        handle = int(getattr(stream, "handle", stream))
        self._call("cudaMemcpyAsync", ctypes.c_void_p(dst), ctypes.c_void_p(src), host.nbytes, kind, handle)
        owner = self._streams.get(handle)
        if owner is not None:
            owner._in_flight.append(host)

    def _call(self, function: str, *args: Any) -> None:
        code = getattr(self._lib, function)(*args)
        if code != 0:
            raise AgentError("backend", f"CUDA {function} failed: {self._describe(code)}.")

    def _describe(self, code: int) -> str:
        return cuda_error(self._lib, code)


def _host_array(array: Any, what: str, writable: bool) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise AgentError("backend", f"CUDA {what} needs a numpy array on the host side, not {type(array).__name__}.")
    if not array.flags.c_contiguous:
        raise AgentError("backend", f"CUDA {what} needs a C-contiguous host array.")
    if writable and not array.flags.writeable:
        raise AgentError("backend", f"CUDA {what} cannot copy into a read-only host array.")
    return array
