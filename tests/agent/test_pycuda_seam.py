"""The pycuda CUDA seam against a fake pycuda that has pycuda's per-thread contexts.

The camera service loads the backend in the main thread and infers in its "infer" thread;
with the old seam (``import pycuda.autoinit``) every call there failed. These tests make
the seam in one thread and use it in others, and check what pycuda would abort or leak over.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fake_cuda import FakeCuda
from fake_pycuda import NO_CURRENT_CONTEXT, FakePycuda, install

from edgekit.agent.backends.tensorrt.cuda import open_cuda
from edgekit.agent.backends.tensorrt.pycuda_context import PyCuda
from edgekit.agent.errors import AgentError


def in_thread(name: str, work: Callable[[], Any]) -> Any:
    """work() in a new thread of that name; its result, or its exception raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture
def device() -> FakeCuda:
    return FakeCuda((8, 7))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, device: FakeCuda) -> FakePycuda:
    return install(monkeypatch, device)


def round_trip(seam: PyCuda, data: np.ndarray) -> np.ndarray:
    """What the runner does per frame: pinned host buffers, one copy in and one out."""
    host_in = seam.pagelocked_empty(data.shape, data.dtype)
    host_out = seam.pagelocked_empty(data.shape, data.dtype)
    host_in[...] = data
    ptr = seam.mem_alloc(data.nbytes)
    stream = seam.stream()
    seam.memcpy_htod_async(ptr, host_in, stream)
    seam.memcpy_dtoh_async(host_out, ptr, stream)
    stream.synchronize()
    seam.mem_free(ptr)
    return host_out.copy()


# -- the defect, reproduced on the fake ------------------------------------------------------


def test_autoinit_context_is_current_only_in_the_importing_thread(fake: FakePycuda) -> None:
    # The old seam, in short: autoinit at load time in the main thread, driver calls per frame.
    import pycuda.autoinit  # noqa: F401
    import pycuda.driver as driver

    assert int(driver.mem_alloc(16)) in fake.device.memory

    with pytest.raises(driver.LogicError) as no_stream:
        in_thread("infer", driver.Stream)
    assert str(no_stream.value) == NO_CURRENT_CONTEXT
    with pytest.raises(driver.LogicError, match="^cuMemAlloc failed: invalid device context$"):
        in_thread("infer", lambda: driver.mem_alloc(16))
    assert [call.context for call in fake.calls_from("infer")] == [None, None]

    # Its atexit handler pops the context in the exiting thread, whatever still uses it.
    assert fake.nonempty_stacks() == [("MainThread", 1)]
    (finish_up,) = fake.atexit
    finish_up()
    assert fake.nonempty_stacks() == []
    with pytest.raises(driver.LogicError, match="no currently active context"):
        driver.Stream()


# -- the seam in other threads ---------------------------------------------------------------


def test_a_seam_made_in_main_works_in_the_infer_thread(fake: FakePycuda, device: FakeCuda) -> None:
    seam = PyCuda()
    data = np.arange(12, dtype=np.float32).reshape(3, 4)

    out = in_thread("infer", lambda: round_trip(seam, data))

    np.testing.assert_array_equal(out, data)
    infer_calls = fake.calls_from("infer")
    work = [call for call in infer_calls if not call.name.startswith("Context.")]
    assert [call.name for call in work] == [
        "pagelocked_empty",
        "pagelocked_empty",
        "mem_alloc",
        "Stream",
        "memcpy_htod_async",
        "memcpy_dtoh_async",
        "Stream.synchronize",
        "DeviceAllocation.free",
    ]
    # In TensorRT's context, the primary one, and never leaving it pushed.
    assert {call.context for call in work} == {"primary"}
    assert fake.nonempty_stacks() == []
    # The copies were from pinned memory, as the runner's are on the device.
    assert [copy[-1] for copy in device.calls_named("memcpy_htod_async") + device.calls_named("memcpy_dtoh_async")] == [
        True,
        True,
    ]
    seam.close()


def test_buffers_made_in_one_thread_are_used_and_freed_in_others(fake: FakePycuda, device: FakeCuda) -> None:
    seam = PyCuda()
    data = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int32)
    host = seam.pagelocked_empty(data.shape, data.dtype)
    out = seam.pagelocked_empty(data.shape, data.dtype)
    ptr = seam.mem_alloc(data.nbytes)
    stream = seam.stream()

    def send() -> None:
        host[:] = data
        seam.memcpy_htod_async(ptr, host, stream)
        stream.synchronize()

    def fetch() -> np.ndarray:
        seam.memcpy_dtoh_async(out, ptr, stream)
        stream.synchronize()
        return out.copy()

    in_thread("infer-1", send)
    np.testing.assert_array_equal(in_thread("infer-2", fetch), data)
    np.testing.assert_array_equal(round_trip(seam, data * 2), data * 2)
    in_thread("infer-3", lambda: seam.mem_free(ptr))

    assert ptr not in device.memory
    assert fake.leaks == []
    assert fake.nonempty_stacks() == []
    assert stream.handle in device.streams
    seam.close()


def test_a_context_the_calling_thread_has_stays_current(fake: FakePycuda) -> None:
    seam = PyCuda()
    driver = fake.driver

    def with_own_context() -> None:
        own = driver.Device(0).make_context()
        ptr = seam.mem_alloc(8)
        # Nested: a call that frees inside an already pushed context.
        with seam._current():
            seam.mem_free(ptr)
        assert driver.Context.get_current() is own
        driver.Context.pop()

    in_thread("infer", with_own_context)

    work = [call for call in fake.calls_from("infer") if call.name in ("mem_alloc", "DeviceAllocation.free")]
    assert [call.context for call in work] == ["primary", "primary"]
    assert fake.nonempty_stacks() == []
    seam.close()


def test_an_allocation_the_runner_holds_only_by_pointer_stays_alive(fake: FakePycuda, device: FakeCuda) -> None:
    seam = PyCuda()
    ptr = in_thread("infer", lambda: seam.mem_alloc(64))
    gc.collect()
    assert ptr in device.memory
    seam.close()


def test_pycuda_frees_an_allocation_when_its_object_goes(fake: FakePycuda, device: FakeCuda) -> None:
    # Why the seam keeps the objects: the fake, like pycuda, frees on collection.
    import pycuda.autoinit  # noqa: F401
    import pycuda.driver as driver

    ptr = int(driver.mem_alloc(64))
    gc.collect()
    assert ptr not in device.memory
    fake.atexit[0]()


# -- close -----------------------------------------------------------------------------------


def test_close_waits_for_queued_copies_then_frees_everything_and_detaches(fake: FakePycuda, device: FakeCuda) -> None:
    seam = PyCuda()
    assert fake.primary_retains == 1

    def start_frame() -> None:
        host = seam.pagelocked_empty((256,), np.uint8)
        host[:] = 7
        ptr = seam.mem_alloc(256)
        seam.mem_alloc(0)
        # Queued, never synchronized: close() must wait for it before freeing ptr.
        seam.memcpy_htod_async(ptr, host, seam.stream())

    in_thread("infer", start_frame)
    seam.close()

    assert device.memory == {}
    order = [call[0] for call in device.calls if call[0] in ("synchronize", "mem_free")]
    assert order == ["synchronize", "mem_free", "mem_free"]
    assert fake.primary_retains == 0
    assert fake.nonempty_stacks() == []
    assert fake.leaks == []

    seam.close()
    assert fake.primary_retains == 0
    assert fake.nonempty_stacks() == []


def test_close_from_another_thread_still_releases_the_primary_context(fake: FakePycuda, device: FakeCuda) -> None:
    seam = PyCuda()
    in_thread("infer", lambda: seam.mem_alloc(32))

    in_thread("shutdown", seam.close)

    assert device.memory == {}
    assert fake.primary_retains == 0
    assert fake.leaks == []
    assert fake.nonempty_stacks() == []


def test_pycuda_leaks_a_context_detached_out_of_its_thread_while_not_current(fake: FakePycuda) -> None:
    # Why close() detaches with the context current: the fake, like pycuda, leaks it otherwise.
    import pycuda.driver as driver

    driver.init()
    context = driver.Device(0).retain_primary_context()
    in_thread("shutdown", context.detach)
    assert fake.primary_retains == 1
    assert len(fake.leaks) == 1


def test_compute_capability_is_the_devices(fake: FakePycuda) -> None:
    seam = PyCuda()
    assert in_thread("infer", seam.compute_capability) == (8, 7)
    seam.close()


# -- without a usable pycuda -----------------------------------------------------------------


def assert_names_the_cudart_seam(error: AgentError) -> None:
    assert error.kind == "backend"
    assert error.message.startswith("pycuda is not usable on this device")
    assert 'set build cuda = "cudart"' in error.message
    assert error.message.endswith(".") and ". " not in error.message


def test_without_pycuda_the_error_names_the_cudart_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(AgentError) as caught:
        PyCuda()
    assert_names_the_cudart_seam(caught.value)


def test_without_a_gpu_the_error_names_the_cudart_seam(fake: FakePycuda) -> None:
    fake.init_error = fake.driver.RuntimeError("cuInit failed: no CUDA-capable device is detected")
    with pytest.raises(AgentError) as caught:
        PyCuda()
    assert_names_the_cudart_seam(caught.value)
    assert "no CUDA-capable device is detected" in caught.value.message
    assert fake.primary_retains == 0


def test_open_cuda_gives_the_pycuda_seam_by_name(fake: FakePycuda) -> None:
    seam = open_cuda("pycuda")
    assert isinstance(seam, PyCuda)
    seam.close()


def test_open_cuda_refuses_an_unknown_seam() -> None:
    with pytest.raises(AgentError) as caught:
        open_cuda("bogus")
    assert caught.value.kind == "backend"
    assert "cudart" in caught.value.message and "pycuda" in caught.value.message
