"""A fake pycuda over FakeCuda, faithful where the CUDA seam depends on pycuda's behaviour.

What it models, after pycuda's src/cpp/cuda.hpp and wrap_cudadrv.cpp:
- Every thread has its own stack of contexts. ``Device.make_context()`` creates a context
  and pushes it in the calling thread only; ``retain_primary_context()`` pushes nothing.
- A call that needs a context, from a thread where none is current, raises LogicError with
  pycuda's text: "explicit_context_dependent failed: invalid device context - no currently
  active context?" when an object takes the current context (``Stream()``), "<CUDA routine>
  failed: invalid device context" from the driver call itself (``mem_alloc``: cuMemAlloc).
- ``DeviceAllocation.free()`` makes the allocation's context current for the free if it is
  not, but only in the thread that made or retained that context; in any other thread, or
  once the context is detached, pycuda skips the free without a word. Collecting the
  allocation object frees it the same way.
- ``Context.detach()`` releases a context that is current (and drops it from the stack), or
  one that is not current from its own thread; from another thread it leaks it silently.
- ``import pycuda.autoinit`` makes a context current in the importing thread and registers
  an atexit pop of it; the pop goes to ``FakePycuda.atexit`` for the test to call.

``install(monkeypatch, FakeCuda())`` puts pycuda, pycuda.driver and an importable
pycuda.autoinit in place until the test ends and returns the FakePycuda whose records the
tests check: ``calls`` (which thread made each call, with which context current),
``nonempty_stacks()``, ``primary_retains`` and ``leaks`` (frees and releases pycuda skipped).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from fake_cuda import FakeCuda, FakeStream

NO_CURRENT_CONTEXT = "explicit_context_dependent failed: invalid device context - no currently active context?"
PRIMARY_HANDLE = 0xC0


class Error(Exception):
    """pycuda._driver.Error, the base of pycuda's own exceptions."""


class LogicError(Error):
    """pycuda._driver.LogicError: misuse, such as a call with no current context."""


class CudaRuntimeError(Error):
    """pycuda._driver.RuntimeError (not the builtin one): what init() raises without a GPU."""


class Call(NamedTuple):
    name: str
    thread: str
    # The kind of context current in that thread during the call: "primary", "created" or None.
    context: str | None


class FakePycuda:
    def __init__(self, device: FakeCuda) -> None:
        self.device = device
        # An exception here makes driver.init() raise it, as pycuda does without a GPU.
        self.init_error: Exception | None = None
        self.initialized = False
        self.primary_retains = 0
        self.calls: list[Call] = []
        self.leaks: list[str] = []
        self.atexit: list[Callable[[], None]] = []
        self._local = threading.local()
        # Every thread's stack, kept past the thread's end for nonempty_stacks().
        self._stacks: list[tuple[str, list[Context]]] = []
        self._stacks_lock = threading.Lock()
        self._next_context = PRIMARY_HANDLE + 1
        self.driver = self._driver_module()

    # -- for the tests ----------------------------------------------------------------------

    def nonempty_stacks(self) -> list[tuple[str, int]]:
        """(thread name, depth) of each thread with contexts left pushed: pycuda aborts at exit over each."""
        return [(name, len(stack)) for name, stack in self._stacks if stack]

    def calls_from(self, thread: str) -> list[Call]:
        return [call for call in self.calls if call.thread == thread]

    # -- context bookkeeping ----------------------------------------------------------------

    def stack(self) -> list[Context]:
        stack: list[Context] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
            with self._stacks_lock:
                self._stacks.append((threading.current_thread().name, stack))
        return stack

    def current(self, skip: Context | None = None) -> Context | None:
        # As pycuda's current_context(): detached contexts (and ``skip``) on top are popped on the way.
        stack = self.stack()
        while stack:
            top = stack[-1]
            if top is not skip and top.valid:
                return top
            stack.pop()
        return None

    def record(self, name: str) -> Context | None:
        context = self.current()
        self.calls.append(Call(name, threading.current_thread().name, None if context is None else context.kind))
        return context

    def require(self, name: str, routine: str | None = None) -> Context:
        context = self.record(name)
        if context is None:
            raise LogicError(NO_CURRENT_CONTEXT if routine is None else f"{routine} failed: invalid device context")
        return context

    def new_context_handle(self) -> int:
        self._next_context += 1
        return self._next_context

    def clean_up(self, context: Context, what: str, free: Callable[[], None]) -> None:
        """pycuda's scoped_context_activation in a free, with the failures it swallows."""
        thread = threading.current_thread().name
        if not context.valid:
            self.leaks.append(f"{what}: its context is detached, so pycuda skipped the free")
        elif self.current() is context:
            free()
        elif context.thread != threading.get_ident():
            self.leaks.append(f"{what}: freed in thread {thread!r}, where its context is not current; skipped")
        else:
            self.stack().append(context)
            try:
                free()
            finally:
                self.stack().pop()

    # -- pycuda.driver's functions ----------------------------------------------------------

    def init(self) -> None:
        self.record("init")
        if self.init_error is not None:
            raise self.init_error
        self.initialized = True

    def mem_alloc(self, nbytes: int) -> DeviceAllocation:
        context = self.require("mem_alloc", "cuMemAlloc")
        if nbytes == 0:
            raise LogicError("cuMemAlloc failed: invalid argument")
        return DeviceAllocation(self, self.device.mem_alloc(nbytes), context)

    def pagelocked_empty(self, shape: Any, dtype: Any) -> np.ndarray:
        self.require("pagelocked_empty", "cuMemHostAlloc")
        return self.device.pagelocked_empty(shape, dtype)

    def memcpy_htod_async(self, dest: Any, src: np.ndarray, stream: Stream) -> None:
        self.require("memcpy_htod_async", "cuMemcpyHtoDAsync")
        self.device.memcpy_htod_async(int(dest), src, _fake_stream(stream, "memcpy_htod_async"))

    def memcpy_dtoh_async(self, dest: np.ndarray, src: Any, stream: Stream) -> None:
        self.require("memcpy_dtoh_async", "cuMemcpyDtoHAsync")
        self.device.memcpy_dtoh_async(dest, int(src), _fake_stream(stream, "memcpy_dtoh_async"))

    def _driver_module(self) -> types.ModuleType:
        module = types.ModuleType("pycuda.driver")
        # Subclasses bound to this fake: Context.pop() and Device(0) take no fake argument.
        for cls in (Context, Device, Stream):
            setattr(module, cls.__name__, type(cls.__name__, (cls,), {"_fake": self}))
        module.Error = Error
        module.LogicError = LogicError
        module.RuntimeError = CudaRuntimeError
        module.DeviceAllocation = DeviceAllocation
        for name in ("init", "mem_alloc", "pagelocked_empty", "memcpy_htod_async", "memcpy_dtoh_async"):
            setattr(module, name, getattr(self, name))
        return module


def _fake_stream(stream: Any, what: str) -> FakeStream:
    # Boost.Python's ArgumentError is a TypeError: pycuda takes its own Stream, nothing else.
    if not isinstance(stream, Stream):
        raise TypeError(f"{what}: the stream must be a pycuda.driver.Stream, got {type(stream).__name__}")
    return stream.fake


class Context:
    _fake: FakePycuda

    def __init__(self, kind: str, handle: int) -> None:
        self.kind = kind
        self.handle = handle
        self.valid = True
        # The thread that made or retained it: the only one pycuda activates it in implicitly.
        self.thread = threading.get_ident()

    def push(self) -> None:
        self._fake.record("Context.push")
        self._fake.stack().append(self)

    @classmethod
    def pop(cls) -> None:
        cls._fake.record("Context.pop")
        stack = cls._fake.stack()
        if not stack:
            raise LogicError("context::pop failed: invalid device context - cannot pop non-current context")
        stack.pop()

    @classmethod
    def get_current(cls) -> Context | None:
        return cls._fake.current()

    @classmethod
    def get_device(cls) -> Device:
        cls._fake.require("Context.get_device", "cuCtxGetDevice")
        return cls._fake.driver.Device(0)

    def detach(self) -> None:
        fake = self._fake
        fake.record("Context.detach")
        if not self.valid:
            raise LogicError("context::detach failed: invalid device context - cannot detach from invalid context")
        active = fake.current() is self
        if active or self.thread == threading.get_ident():
            if self.kind == "primary":
                fake.primary_retains -= 1
        else:
            fake.leaks.append(
                f"{self.kind} context detached in thread {threading.current_thread().name!r}, where it is "
                "neither current nor its own: never released"
            )
        self.valid = False
        if active:
            fake.current(skip=self)


class Device:
    _fake: FakePycuda

    def __init__(self, ordinal: int) -> None:
        if not self._fake.initialized:
            raise LogicError("cuDeviceGet failed: initialization error")
        if ordinal != 0:
            raise LogicError("cuDeviceGet failed: invalid device ordinal")
        self.ordinal = ordinal

    def compute_capability(self) -> tuple[int, int]:
        return self._fake.device.compute_capability()

    def retain_primary_context(self) -> Context:
        self._fake.record("Device.retain_primary_context")
        self._fake.primary_retains += 1
        return self._fake.driver.Context("primary", PRIMARY_HANDLE)

    def make_context(self) -> Context:
        self._fake.record("Device.make_context")
        context = self._fake.driver.Context("created", self._fake.new_context_handle())
        self._fake.stack().append(context)
        return context


class Stream:
    _fake: FakePycuda

    def __init__(self) -> None:
        self._fake.require("Stream")
        self.fake = self._fake.device.stream()
        self.handle = self.fake.handle

    def synchronize(self) -> None:
        self._fake.require("Stream.synchronize", "cuStreamSynchronize")
        self.fake.synchronize()


class DeviceAllocation:
    def __init__(self, fake: FakePycuda, ptr: int, context: Context) -> None:
        self._fake = fake
        self._ptr = ptr
        self._context = context
        self._valid = True

    def __int__(self) -> int:
        return self._ptr

    def free(self) -> None:
        self._fake.record("DeviceAllocation.free")
        if not self._valid:
            raise LogicError("device_allocation::free failed: invalid resource handle")
        self._valid = False
        self._fake.clean_up(
            self._context, f"device allocation {self._ptr:#x}", lambda: self._fake.device.mem_free(self._ptr)
        )

    def __del__(self) -> None:
        if self._valid:
            self.free()


class _AutoinitFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs pycuda.autoinit's body when, and in the thread where, it is first imported."""

    def __init__(self, fake: FakePycuda) -> None:
        self._fake = fake

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname == "pycuda.autoinit" else None

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        driver = self._fake.driver
        driver.init()
        context = driver.Device(0).make_context()
        module.context = context
        module.device = context.get_device()
        # Real autoinit: atexit.register(_finish_up), which calls context.pop() in the exiting thread.
        self._fake.atexit.append(context.pop)


def install(monkeypatch: pytest.MonkeyPatch, device: FakeCuda) -> FakePycuda:
    fake = FakePycuda(device)
    package = types.ModuleType("pycuda")
    # A package, so that `import pycuda.autoinit` asks the finders on sys.meta_path.
    package.__path__ = []
    package.driver = fake.driver
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", fake.driver)
    # Recorded as absent, so teardown removes the module an import of pycuda.autoinit adds.
    monkeypatch.setitem(sys.modules, "pycuda.autoinit", package)
    monkeypatch.delitem(sys.modules, "pycuda.autoinit")
    monkeypatch.setattr(sys, "meta_path", [_AutoinitFinder(fake), *sys.meta_path])
    return fake
