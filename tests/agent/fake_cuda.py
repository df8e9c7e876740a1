"""A fake CUDA device behind the seam of edgekit.agent.backends.tensorrt.cuda (the Cuda protocol).

Device memory is a dict of bytearrays keyed by int pointers. Copies and kernels queued on a
stream run, in order, only when that stream is synchronized, as on a GPU: a runner that
reads its host output before ``synchronize()``, reuses a host buffer while a copy of it is
still queued, or frees memory a queued copy uses, sees stale data or an error here instead
of passing. Every size is checked, so an overflow or an unknown pointer raises at the call
that caused it. ``calls`` lists every call for assertions about the path taken.

Stream handle 0 is CUDA's legacy default stream: it first drains every stream, then runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_PAGE = 0x1000


class FakeStream:
    """A CUDA stream: ``handle`` is what TensorRT's execute_async_v3 takes."""

    def __init__(self, cuda: FakeCuda, handle: int) -> None:
        self.handle = handle
        self._cuda = cuda
        # (label, work, device pointers the work writes, device pointers it reads)
        self._pending: list[tuple[str, Callable[[], None], frozenset[int], frozenset[int]]] = []

    def synchronize(self) -> None:
        self._cuda.calls.append(("synchronize", self.handle))
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            # Popped before it runs, so the work's own reads do not see itself as pending.
            _, work, _, _ = self._pending.pop(0)
            work()


class FakeCuda:
    def __init__(self, compute_capability: tuple[int, int] = (8, 7)) -> None:
        self._compute_capability = compute_capability
        self.memory: dict[int, bytearray] = {}
        self.calls: list[tuple[Any, ...]] = []
        # id() of every array pagelocked_empty returned; the arrays are kept so ids stay unique.
        self.pagelocked: list[int] = []
        self._pinned: list[np.ndarray] = []
        self.streams: dict[int, FakeStream] = {}
        self._next_ptr = 0x10000
        self._next_stream = 0x5000

    # -- the seam -------------------------------------------------------------------------

    def compute_capability(self) -> tuple[int, int]:
        return self._compute_capability

    def mem_alloc(self, nbytes: int) -> int:
        nbytes = int(nbytes)
        if nbytes < 0:
            raise ValueError(f"mem_alloc({nbytes}): negative size")
        ptr = self._next_ptr
        # Allocations never touch: a pointer is the start of exactly one allocation.
        self._next_ptr += (max(nbytes, 1) + 2 * _PAGE - 1) // _PAGE * _PAGE
        self.memory[ptr] = bytearray(nbytes)
        self.calls.append(("mem_alloc", nbytes, ptr))
        return ptr

    def mem_free(self, ptr: int) -> None:
        self.calls.append(("mem_free", ptr))
        self._size(ptr, "mem_free")
        for stream in self.streams.values():
            for label, _, writes, reads in stream._pending:
                if ptr in writes or ptr in reads:
                    raise RuntimeError(f"mem_free({ptr:#x}) while {label} on stream {stream.handle:#x} still uses it")
        del self.memory[ptr]

    def pagelocked_empty(self, shape: Any, dtype: Any) -> np.ndarray:
        array = np.empty(shape, dtype)
        self._pinned.append(array)
        self.pagelocked.append(id(array))
        self.calls.append(("pagelocked_empty", tuple(array.shape), str(array.dtype)))
        return array

    def stream(self) -> FakeStream:
        stream = FakeStream(self, self._next_stream)
        self._next_stream += 1
        self.streams[stream.handle] = stream
        self.calls.append(("stream", stream.handle))
        return stream

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: FakeStream) -> None:
        handle = self._stream_handle(stream, "memcpy_htod_async")
        host = self._host_array(src, "memcpy_htod_async", writable=False)
        self._fits(dst, host.nbytes, "memcpy_htod_async")
        self.calls.append(("memcpy_htod_async", dst, host.nbytes, handle, self.is_pagelocked(host)))

        # The host array is read when the copy runs, not now (a later write to it races).
        def copy() -> None:
            self.memory[dst][: host.nbytes] = host.tobytes()

        self._enqueue(handle, "memcpy_htod_async", copy, writes=(dst,), reads=())

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: FakeStream) -> None:
        handle = self._stream_handle(stream, "memcpy_dtoh_async")
        host = self._host_array(dst, "memcpy_dtoh_async", writable=True)
        self._fits(src, host.nbytes, "memcpy_dtoh_async")
        self.calls.append(("memcpy_dtoh_async", src, host.nbytes, handle, self.is_pagelocked(host)))

        def copy() -> None:
            flat = host.reshape(-1).view(np.uint8)
            flat[:] = np.frombuffer(bytes(self.memory[src][: host.nbytes]), dtype=np.uint8)

        self._enqueue(handle, "memcpy_dtoh_async", copy, writes=(), reads=(src,))

    def close(self) -> None:
        self.calls.append(("close",))

    # -- for the stand-in engine and the tests ------------------------------------------------

    def read(self, ptr: int, nbytes: int) -> bytes:
        """Device bytes, as a kernel would see them now."""
        self.calls.append(("read", ptr, nbytes))
        self._fits(ptr, nbytes, "read")
        for stream in self.streams.values():
            for label, _, writes, _ in stream._pending:
                if ptr in writes:
                    raise RuntimeError(
                        f"device memory {ptr:#x} read while {label} into it is still queued on stream "
                        f"{stream.handle:#x} (synchronize the stream first)"
                    )
        return bytes(self.memory[ptr][:nbytes])

    def write(self, ptr: int, data: bytes) -> None:
        self.calls.append(("write", ptr, len(data)))
        self._fits(ptr, len(data), "write")
        self.memory[ptr][: len(data)] = data

    def enqueue(
        self,
        handle: int,
        label: str,
        work: Callable[[], None],
        writes: tuple[int, ...] = (),
        reads: tuple[int, ...] = (),
    ) -> None:
        """Queue ``work`` on the stream with this handle (how the stand-in launches an engine)."""
        self.calls.append(("enqueue", handle, label))
        self._enqueue(handle, label, work, writes, reads)

    def _enqueue(
        self, handle: int, label: str, work: Callable[[], None], writes: tuple[int, ...], reads: tuple[int, ...]
    ) -> None:
        if handle != 0 and handle not in self.streams:
            raise ValueError(f"{label}: {handle:#x} is not a stream handle of this device")
        if handle == 0:
            for stream in self.streams.values():
                stream._drain()
            work()
            return
        self.streams[handle]._pending.append((label, work, frozenset(writes), frozenset(reads)))

    def allocation_size(self, ptr: int) -> int:
        return self._size(ptr, "allocation_size")

    def is_pagelocked(self, array: np.ndarray) -> bool:
        """Whether ``array`` is, or is a view of, an array from pagelocked_empty."""
        current: Any | None = array
        while isinstance(current, np.ndarray):
            if any(current is pinned for pinned in self._pinned):
                return True
            current = current.base
        return False

    def calls_named(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]

    # -- checks ---------------------------------------------------------------------------

    def _size(self, ptr: Any, what: str) -> int:
        if not isinstance(ptr, int) or isinstance(ptr, bool):
            raise TypeError(f"{what}: device pointer must be an int, got {type(ptr).__name__}")
        if ptr not in self.memory:
            raise ValueError(f"{what}: {ptr:#x} is not the start of a live allocation (freed, or never allocated)")
        return len(self.memory[ptr])

    def _fits(self, ptr: int, nbytes: int, what: str) -> None:
        size = self._size(ptr, what)
        if nbytes > size:
            raise ValueError(f"{what}: {nbytes} bytes overflow the {size}-byte allocation at {ptr:#x}")

    def _stream_handle(self, stream: Any, what: str) -> int:
        if not isinstance(stream, FakeStream) or self.streams.get(stream.handle) is not stream:
            raise TypeError(f"{what}: expected a stream from this device's stream(), got {stream!r}")
        return stream.handle

    @staticmethod
    def _host_array(array: Any, what: str, writable: bool) -> np.ndarray:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{what}: host side must be a numpy array, got {type(array).__name__}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{what}: host array must be C-contiguous")
        if writable and not array.flags.writeable:
            raise ValueError(f"{what}: host array is read-only")
        return array
