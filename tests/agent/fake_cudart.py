"""The fake libcudart (tests/fakes/fake_cudart.c), built for the tests, and its device view.

``build_fake_cudart(directory)`` compiles it into ``libcudart.so.12`` once per source
version; ``CudaRuntime(candidates=[str(path)])`` then runs the real ctypes seam against it.
``CudartDevice(path)`` opens the same file, so the same dlopen handle and the same memory,
and gives the stand-in TensorRT (trt_standin.py) what it uses on ``ctx.cuda``: reads and
writes of device memory and work queued on a stream, like fake_cuda.FakeCuda gives it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[1] / "fakes" / "fake_cudart.c"
SONAME = "libcudart.so.12"
# cudaErrorLaunchFailure: what a synchronize returns after a kernel faulted.
LAUNCH_FAILURE = 719


class Stats(ctypes.Structure):
    # struct fakecudart_stats in fake_cudart.c, field for field.
    _fields_ = [
        ("device_allocations", ctypes.c_int64),
        ("pinned_blocks", ctypes.c_int64),
        ("streams", ctypes.c_int64),
        ("async_copies_pinned", ctypes.c_int64),
        ("async_copies_pageable", ctypes.c_int64),
        ("host_funcs", ctypes.c_int64),
    ]


def build_fake_cudart(directory: Path) -> Path:
    """``directory/<source sha256>/libcudart.so.12``, compiled unless it is there already."""
    source = SOURCE.read_bytes()
    target = Path(directory) / hashlib.sha256(source).hexdigest()[:16] / SONAME
    if target.exists():
        return target
    gcc = shutil.which("gcc") or "/usr/bin/gcc"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed, so a concurrent test run never loads half a file.
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    command = [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-pthread"]
    command += [f"-Wl,-soname,{SONAME}", "-o", partial, str(SOURCE)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        os.unlink(partial)
        raise RuntimeError(f"building {SOURCE.name} failed:\n{done.stderr}")
    os.replace(partial, target)
    return target


_HOST_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class CudartDevice:
    """Device-side access to the fake library's memory and streams, for the stand-in TensorRT."""

    def __init__(self, library: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        self._lib.cudaLaunchHostFunc.restype = ctypes.c_int
        self._lib.cudaLaunchHostFunc.argtypes = (ctypes.c_void_p, _HOST_FN, ctypes.c_void_p)
        self._lib.fakecudart_stats.argtypes = (ctypes.POINTER(Stats),)
        self._lib.fakecudart_allocation_size.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t))
        self._lib.fakecudart_check_device.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        self._lib.fakecudart_queued_writes.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        self._lib.fakecudart_fault.argtypes = (ctypes.c_int,)
        self._lib.fakecudart_fault.restype = None
        # One callback for all queued work, alive as long as the device: the token in
        # user_data says which work, so no per-call ctypes thunk can be freed too early.
        self._callback = _HOST_FN(self._run)
        self._lock = threading.Lock()
        self._next_token = 1
        # token -> (label, work, device pointers the work writes)
        self._queued: dict[int, tuple[str, Callable[[], None], frozenset[int]]] = {}
        # Exceptions raised by queued work; the synchronize that ran it returned LAUNCH_FAILURE.
        self.errors: list[BaseException] = []

    def read(self, ptr: int, nbytes: int) -> bytes:
        """Device bytes, as a kernel would see them now."""
        self._fits(ptr, nbytes, "read")
        queued = self._lib.fakecudart_queued_writes(ptr, nbytes)
        with self._lock:
            labels = [label for label, _, writes in self._queued.values() if ptr in writes]
        if queued:
            labels.append(f"{queued} queued copies")
        if labels:
            what = ", ".join(labels)
            raise RuntimeError(
                f"device memory {ptr:#x} read while {what} into it are still queued (synchronize the stream first)"
            )
        return ctypes.string_at(ptr, nbytes)

    def write(self, ptr: int, data: bytes) -> None:
        self._fits(ptr, len(data), "write")
        ctypes.memmove(ptr, data, len(data))

    def allocation_size(self, ptr: int) -> int:
        _pointer(ptr, "allocation_size")
        size = ctypes.c_size_t()
        if self._lib.fakecudart_allocation_size(ptr, ctypes.byref(size)) != 0:
            raise ValueError(
                f"allocation_size: {ptr:#x} is not the start of a live allocation (freed, or never allocated)"
            )
        return size.value

    def enqueue(
        self,
        handle: int,
        label: str,
        work: Callable[[], None],
        writes: tuple[int, ...] = (),
        reads: tuple[int, ...] = (),
    ) -> None:
        """Queue ``work`` on the stream with this handle (how the stand-in launches an engine).

        ``reads`` is accepted for FakeCuda's signature: the fake's cudaFree synchronizes
        first, as CUDA's does, so no queued work can read freed memory.
        """
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._queued[token] = (label, work, frozenset(writes))
        code = self._lib.cudaLaunchHostFunc(handle, self._callback, token)
        if code != 0:
            with self._lock:
                self._queued.pop(token, None)
            raise ValueError(f"{label}: cudaLaunchHostFunc on stream {handle:#x} failed with CUDA error {code}")

    def stats(self) -> dict[str, int]:
        stats = Stats()
        self._lib.fakecudart_stats(ctypes.byref(stats))
        return {name: int(getattr(stats, name)) for name, _ in Stats._fields_}

    def _run(self, token: int | None) -> None:
        # Popped before it runs, so the work's own reads do not see itself as queued.
        with self._lock:
            _, work, _ = self._queued.pop(token or 0)
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - a ctypes callback must not raise
            traceback.print_exc()
            self.errors.append(error)
            self._lib.fakecudart_fault(LAUNCH_FAILURE)

    def _fits(self, ptr: int, nbytes: int, what: str) -> None:
        _pointer(ptr, what)
        if self._lib.fakecudart_check_device(ptr, nbytes) != 0:
            raise ValueError(f"{what}: {nbytes} bytes at {ptr:#x} are not inside one live device allocation")


def _pointer(ptr: Any, what: str) -> None:
    if not isinstance(ptr, int) or isinstance(ptr, bool):
        raise TypeError(f"{what}: device pointer must be an int, got {type(ptr).__name__}")
