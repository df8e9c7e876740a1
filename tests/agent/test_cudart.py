"""The ctypes CUDA seam (backends/tensorrt/cudart.py) against a fake libcudart and the real one.

The fake (tests/fakes/fake_cudart.c) is compiled here and loaded by the seam exactly as a
device's libcudart would be, so argument types, return codes and error texts all go
through ctypes. The real library comes from the nvidia-cuda-runtime-cu12 wheel, a dev
dependency only: with no GPU here it must refuse in one sentence, not crash.

The fake reads FAKE_CUDART_DEVICES and FAKE_CUDART_CC at each call, so monkeypatch.setenv
before constructing the seam is enough, even though the process keeps one dlopen handle.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from fake_cudart import CudartDevice, build_fake_cudart
from trt_standin import make_tensorrt

from edgekit.agent.backends.tensorrt.cudart import SIGNATURES, CudaRuntime
from edgekit.agent.errors import AgentError
from edgekit.agent.facts import cudart_candidates

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS = REPO_ROOT / "samples" / "digits" / "model.onnx"
GPU_SMOKE = REPO_ROOT / "scripts" / "lib" / "gpu_smoke.py"
INVALID_VALUE = "cudaErrorInvalidValue: invalid argument"


@pytest.fixture(scope="module")
def fake_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_cudart(tmp_path_factory.getbasetemp() / "fake-cudart")


@pytest.fixture(scope="module")
def device(fake_lib: Path) -> CudartDevice:
    return CudartDevice(fake_lib)


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("FAKE_CUDART_DEVICES", raising=False)
    monkeypatch.delenv("FAKE_CUDART_CC", raising=False)
    return monkeypatch


@pytest.fixture
def cuda(fake_lib: Path, fake_env: pytest.MonkeyPatch) -> Iterator[CudaRuntime]:
    runtime = CudaRuntime(candidates=[str(fake_lib)])
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def real_lib() -> Path:
    """The wheel's libcudart, found the way the agent finds one: through cudart_candidates."""
    found = [
        Path(c) for c in cudart_candidates(sys.path) if os.sep + os.path.join("nvidia", "cuda_runtime", "lib") in c
    ]
    existing = [path for path in found if path.is_file()]
    assert existing, "the nvidia-cuda-runtime-cu12 dev dependency is not installed (uv sync --frozen)"
    return existing[0]


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message
    assert not re.search(r"[.;:]\s+[A-Z][a-z]", message.replace("CUDA ", "cuda ")), message


def in_thread(work: Callable[[], Any]) -> Any:
    """``work()`` in a new thread; its result, or its exception raised here."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


# -- against the fake -----------------------------------------------------------------------


def test_loads_the_library_it_is_given_and_reads_the_compute_capability(
    fake_lib: Path, fake_env: pytest.MonkeyPatch
) -> None:
    cuda = CudaRuntime(candidates=[str(fake_lib.parent / "absent.so"), str(fake_lib)])
    assert cuda.library == str(fake_lib)
    assert cuda.compute_capability() == (8, 7)
    assert (cuda.device_count(), cuda.runtime_version()) == (1, (12, 6))
    fake_env.setenv("FAKE_CUDART_CC", "7.2")
    assert cuda.compute_capability() == (7, 2)
    cuda.close()


def test_allocations_are_real_tracked_and_checked(cuda: CudaRuntime, device: CudartDevice) -> None:
    before = device.stats()["device_allocations"]
    ptr = cuda.mem_alloc(100)
    empty = cuda.mem_alloc(0)
    assert device.allocation_size(ptr) == 100
    # TensorRT may bind a zero-sized tensor; it still needs an address of its own.
    assert device.allocation_size(empty) == 1 and empty != ptr
    assert device.stats()["device_allocations"] == before + 2
    cuda.mem_free(ptr)
    with pytest.raises(ValueError, match="not the start of a live allocation"):
        device.allocation_size(ptr)
    with pytest.raises(AgentError) as freed_twice:
        cuda.mem_free(ptr)
    assert freed_twice.value.message == f"CUDA cudaFree failed: {INVALID_VALUE}."
    assert cuda.held() == {"device": 1, "pinned": 0, "streams": 0}


def test_a_pinned_round_trip_is_only_done_after_synchronize(cuda: CudaRuntime, device: CudartDevice) -> None:
    data = np.arange(16, dtype=np.float32).reshape(4, 4)
    host_in = cuda.pagelocked_empty((4, 4), np.float32)
    host_out = cuda.pagelocked_empty((4, 4), "float32")
    assert host_in.flags.c_contiguous and host_in.flags.writeable and host_in.shape == (4, 4)
    host_in[:] = data
    host_out[:] = -1
    ptr = cuda.mem_alloc(host_in.nbytes)
    device.write(ptr, bytes(host_in.nbytes))
    stream = cuda.stream()
    assert isinstance(stream.handle, int) and stream.handle != 0
    before = device.stats()

    cuda.memcpy_htod_async(ptr, host_in, stream)
    cuda.memcpy_dtoh_async(host_out, ptr, stream)
    # Queued, as on a GPU: neither the device nor the host buffer has changed yet.
    assert ctypes.string_at(ptr, host_in.nbytes) == bytes(host_in.nbytes)
    assert (host_out == -1).all()
    with pytest.raises(RuntimeError, match="still queued"):
        device.read(ptr, host_in.nbytes)

    stream.synchronize()
    np.testing.assert_array_equal(host_out, data)
    assert device.read(ptr, host_in.nbytes) == data.tobytes()
    after = device.stats()
    assert after["async_copies_pinned"] - before["async_copies_pinned"] == 2
    assert after["async_copies_pageable"] == before["async_copies_pageable"]


def test_copies_from_pageable_memory_are_counted_apart(cuda: CudaRuntime, device: CudartDevice) -> None:
    ptr = cuda.mem_alloc(64)
    stream = cuda.stream()
    before = device.stats()
    cuda.memcpy_htod_async(ptr, np.ones(16, np.float32), stream)
    stream.synchronize()
    after = device.stats()
    assert after["async_copies_pageable"] - before["async_copies_pageable"] == 1
    assert after["async_copies_pinned"] == before["async_copies_pinned"]
    assert device.read(ptr, 64) == np.ones(16, np.float32).tobytes()


def test_close_waits_for_queued_copies_then_frees_everything(
    fake_lib: Path, fake_env: pytest.MonkeyPatch, device: CudartDevice
) -> None:
    baseline = device.stats()
    cuda = CudaRuntime(candidates=[str(fake_lib)])
    host = cuda.pagelocked_empty((8,), np.uint8)
    host[:] = np.arange(8)
    # Pageable, so it can still be read once close() has freed the pinned blocks.
    back = np.zeros(8, np.uint8)
    ptrs = [cuda.mem_alloc(8), cuda.mem_alloc(32)]
    streams = [cuda.stream(), cuda.stream()]
    cuda.memcpy_htod_async(ptrs[0], host, streams[0])
    cuda.memcpy_dtoh_async(back, ptrs[0], streams[0])
    live = device.stats()
    assert (live["device_allocations"], live["pinned_blocks"], live["streams"]) == (
        baseline["device_allocations"] + 2,
        baseline["pinned_blocks"] + 1,
        baseline["streams"] + 2,
    )
    assert cuda.held() == {"device": 2, "pinned": 1, "streams": 2}
    assert (back == 0).all()
    cuda.close()
    # Streams went first, so their queued copies ran before the memory was freed.
    np.testing.assert_array_equal(back, np.arange(8))
    done = device.stats()
    for key in ("device_allocations", "pinned_blocks", "streams"):
        assert done[key] == baseline[key], key
    assert cuda.held() == {"device": 0, "pinned": 0, "streams": 0}
    cuda.close()
    assert device.stats() == done


def test_close_frees_the_rest_and_reports_the_first_failure(
    fake_lib: Path, fake_env: pytest.MonkeyPatch, device: CudartDevice
) -> None:
    baseline = device.stats()
    cuda = CudaRuntime(candidates=[str(fake_lib)])
    stream = cuda.stream()
    cuda.mem_alloc(8)
    cuda.pagelocked_empty((2, 2), np.float32)
    lib = ctypes.CDLL(str(fake_lib))
    assert lib.cudaStreamDestroy(ctypes.c_void_p(stream.handle)) == 0
    with pytest.raises(AgentError) as raised:
        stream.synchronize()
    invalid_handle = "cudaErrorInvalidResourceHandle: invalid resource handle."
    assert raised.value.message == f"CUDA cudaStreamSynchronize failed: {invalid_handle}"
    with pytest.raises(AgentError) as raised:
        cuda.close()
    assert raised.value.message == f"CUDA cudaStreamDestroy failed: {invalid_handle}"
    done = device.stats()
    for key in ("device_allocations", "pinned_blocks", "streams"):
        assert done[key] == baseline[key], key


def test_an_overflowing_copy_is_one_sentence_naming_the_cuda_error(cuda: CudaRuntime) -> None:
    ptr = cuda.mem_alloc(16)
    stream = cuda.stream()
    with pytest.raises(AgentError) as raised:
        cuda.memcpy_htod_async(ptr, np.zeros(32, np.uint8), stream)
    assert raised.value.kind == "backend"
    assert raised.value.message == f"CUDA cudaMemcpyAsync failed: {INVALID_VALUE}."
    assert_one_sentence(raised.value.message)
    with pytest.raises(AgentError, match=INVALID_VALUE):
        cuda.memcpy_dtoh_async(np.zeros(4, np.uint8), ptr + 14, stream)
    with pytest.raises(AgentError, match=INVALID_VALUE):
        cuda.memcpy_htod_async(0xDEAD0000, np.zeros(4, np.uint8), stream)


def test_host_arrays_must_be_contiguous_and_writable_where_written(cuda: CudaRuntime) -> None:
    ptr = cuda.mem_alloc(64)
    stream = cuda.stream()
    with pytest.raises(AgentError, match="C-contiguous"):
        cuda.memcpy_htod_async(ptr, np.zeros((4, 4), np.float32)[:, ::2], stream)
    read_only = np.zeros(4, np.float32)
    read_only.flags.writeable = False
    cuda.memcpy_htod_async(ptr, read_only, stream)
    with pytest.raises(AgentError, match="read-only"):
        cuda.memcpy_dtoh_async(read_only, ptr, stream)
    with pytest.raises(AgentError, match="numpy array"):
        cuda.memcpy_htod_async(ptr, b"1234", stream)  # type: ignore[arg-type]
    stream.synchronize()


def test_no_gpu_is_one_sentence_with_the_fix(fake_lib: Path, fake_env: pytest.MonkeyPatch) -> None:
    fake_env.setenv("FAKE_CUDART_DEVICES", "0")
    with pytest.raises(AgentError) as raised:
        CudaRuntime(candidates=[str(fake_lib)])
    message = raised.value.message
    assert raised.value.kind == "backend"
    assert message.startswith("No CUDA GPU answered")
    assert "cudaErrorNoDevice: no CUDA-capable device is detected" in message
    assert "video group" in message and "sudo apt install nvidia-l4t-cuda" in message
    assert_one_sentence(message)


def test_a_missing_library_names_what_was_tried_and_the_package(tmp_path: Path) -> None:
    not_a_library = tmp_path / "libcudart.so.13"
    not_a_library.write_text("not an ELF file")
    with pytest.raises(AgentError) as raised:
        CudaRuntime(candidates=[str(not_a_library), str(tmp_path / "libcudart.so.12"), "libcudart.so.11.0"])
    message = raised.value.message
    assert "libcudart.so.13, libcudart.so.12, libcudart.so.11.0 in 3 places" in message
    assert "sudo apt install nvidia-l4t-cuda" in message and "cuda-runtime-X-Y" in message
    assert_one_sentence(message)


def test_the_default_search_is_facts_cudart_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[list[str]] = []

    def refuse(candidates: list[str]) -> Any:
        tried.append(candidates)
        raise AgentError("backend", "refused.")

    monkeypatch.setattr("edgekit.agent.backends.tensorrt.cudart._load", refuse)
    with pytest.raises(AgentError):
        CudaRuntime()
    assert tried == [cudart_candidates(sys.path)]


def test_memory_from_one_thread_is_copied_and_synchronized_in_another(cuda: CudaRuntime) -> None:
    data = np.arange(256, dtype=np.uint16)
    host = cuda.pagelocked_empty(data.shape, data.dtype)
    back = cuda.pagelocked_empty(data.shape, data.dtype)
    host[:] = data
    ptr = cuda.mem_alloc(data.nbytes)

    def copy_round_trip() -> None:
        stream = cuda.stream()
        cuda.memcpy_htod_async(ptr, host, stream)
        cuda.memcpy_dtoh_async(back, ptr, stream)
        stream.synchronize()

    in_thread(copy_round_trip)
    np.testing.assert_array_equal(back, data)

    # The reverse: a worker allocates and queues; this thread synchronizes and frees.
    def allocate_and_queue() -> tuple[int, Any, np.ndarray]:
        worker_ptr = cuda.mem_alloc(data.nbytes)
        worker_stream = cuda.stream()
        worker_back = cuda.pagelocked_empty(data.shape, data.dtype)
        worker_back[:] = 0
        cuda.memcpy_htod_async(worker_ptr, host, worker_stream)
        cuda.memcpy_dtoh_async(worker_back, worker_ptr, worker_stream)
        return worker_ptr, worker_stream, worker_back

    worker_ptr, worker_stream, worker_back = in_thread(allocate_and_queue)
    assert (worker_back == 0).all()
    worker_stream.synchronize()
    np.testing.assert_array_equal(worker_back, data)
    cuda.mem_free(worker_ptr)


def test_threads_synchronizing_one_stream_each_wait_for_all_of_it(cuda: CudaRuntime, device: CudartDevice) -> None:
    stream = cuda.stream()
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(10)
        ran.append("slow")

    device.enqueue(stream.handle, "slow", slow)
    first = threading.Thread(target=stream.synchronize)
    first.start()
    assert started.wait(10)
    # The first synchronizer is running the work; a second must not return before it is done.
    second = threading.Thread(target=stream.synchronize)
    second.start()
    second.join(0.2)
    assert second.is_alive() and ran == []
    release.set()
    first.join(10)
    second.join(10)
    assert ran == ["slow"]


# -- the device view the stand-in TensorRT uses ---------------------------------------------


def test_queued_work_runs_in_stream_order_between_the_copies(cuda: CudaRuntime, device: CudartDevice) -> None:
    host = cuda.pagelocked_empty((4,), np.float32)
    out = cuda.pagelocked_empty((4,), np.float32)
    host[:] = [1, 2, 3, 4]
    out[:] = 0
    src, dst = cuda.mem_alloc(16), cuda.mem_alloc(16)
    stream = cuda.stream()

    def double() -> None:
        values = np.frombuffer(device.read(src, 16), np.float32)
        device.write(dst, (values * 2).tobytes())

    cuda.memcpy_htod_async(src, host, stream)
    device.enqueue(stream.handle, "double", double, writes=(dst,), reads=(src,))
    with pytest.raises(RuntimeError, match="double"):
        device.read(dst, 16)
    cuda.memcpy_dtoh_async(out, dst, stream)
    assert (out == 0).all()
    stream.synchronize()
    np.testing.assert_array_equal(out, [2, 4, 6, 8])
    with pytest.raises(ValueError, match="not inside one live device allocation"):
        device.read(dst, 17)
    with pytest.raises(TypeError):
        device.write(object(), b"")  # type: ignore[arg-type]


def test_work_on_stream_zero_waits_for_every_stream_then_runs_at_once(cuda: CudaRuntime, device: CudartDevice) -> None:
    host = cuda.pagelocked_empty((2,), np.int32)
    host[:] = [7, 9]
    ptr = cuda.mem_alloc(8)
    stream = cuda.stream()
    cuda.memcpy_htod_async(ptr, host, stream)
    seen: list[bytes] = []
    device.enqueue(0, "legacy", lambda: seen.append(device.read(ptr, 8)))
    assert seen == [host.tobytes()]


def test_failing_work_surfaces_as_a_launch_failure_at_synchronize(
    cuda: CudaRuntime, device: CudartDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = cuda.stream()

    def broken() -> None:
        raise ValueError("kernel fault")

    device.enqueue(stream.handle, "broken", broken)
    with pytest.raises(AgentError) as raised:
        stream.synchronize()
    assert (
        raised.value.message == "CUDA cudaStreamSynchronize failed: cudaErrorLaunchFailure: unspecified launch failure."
    )
    assert str(device.errors.pop()) == "kernel fault"
    assert "kernel fault" in capsys.readouterr().err
    stream.synchronize()


def test_the_standin_tensorrt_runs_the_digits_model_through_the_seam(cuda: CudaRuntime, device: CudartDevice) -> None:
    trt = make_tensorrt("10.3", device)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_batch = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if explicit_batch is None else 1 << int(explicit_batch))
    assert trt.OnnxParser(network, logger).parse(DIGITS.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 1, 8, 8), (4, 1, 8, 8), (8, 1, 8, 8))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    image = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    assert context.set_input_shape("image", image.shape)
    host_in = cuda.pagelocked_empty(image.shape, np.float32)
    host_out = cuda.pagelocked_empty(tuple(context.get_tensor_shape("logits")), np.float32)
    dev_in, dev_out = cuda.mem_alloc(host_in.nbytes), cuda.mem_alloc(host_out.nbytes)
    assert context.set_tensor_address("image", dev_in) and context.set_tensor_address("logits", dev_out)
    stream = cuda.stream()
    before = device.stats()
    np.copyto(host_in, image)
    cuda.memcpy_htod_async(dev_in, host_in, stream)
    assert context.execute_async_v3(stream.handle)
    cuda.memcpy_dtoh_async(host_out, dev_out, stream)
    stream.synchronize()
    expected = onnxruntime.InferenceSession(str(DIGITS)).run(None, {"image": image})[0]
    np.testing.assert_array_equal(host_out, expected)
    after = device.stats()
    assert after["async_copies_pinned"] - before["async_copies_pinned"] == 2
    assert after["host_funcs"] - before["host_funcs"] == 1


# -- the fake is faithful to the real library -------------------------------------------------


def exported(path: Path) -> set[str]:
    done = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True)
    return {line.split()[-1].split("@")[0] for line in done.stdout.splitlines() if line.strip()}


def test_every_function_the_seam_binds_is_in_the_real_library_and_the_fake(real_lib: Path, fake_lib: Path) -> None:
    real, fake = ctypes.CDLL(str(real_lib)), ctypes.CDLL(str(fake_lib))
    for name in SIGNATURES:
        assert hasattr(real, name), name
        assert hasattr(fake, name), name
    fake_cuda_functions = {name for name in exported(fake_lib) if not name.startswith("fakecudart_")}
    assert fake_cuda_functions <= exported(real_lib)


SCAN_CANDIDATES = """
import ctypes, json, sys
from edgekit.agent.backends.tensorrt.cudart import SIGNATURES
from edgekit.agent.facts import cudart_candidates
found = {}
for candidate in cudart_candidates(sys.path):
    try:
        lib = ctypes.CDLL(candidate)
    except OSError:
        continue
    found[candidate] = [name for name in SIGNATURES if not hasattr(lib, name)]
print(json.dumps(found))
"""


def test_every_libcudart_the_agent_would_find_here_has_every_function(real_lib: Path) -> None:
    # A fresh process: in this one a bare soname could resolve to the already loaded fake.
    done = subprocess.run(
        [sys.executable, "-c", SCAN_CANDIDATES], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert str(real_lib) in found
    assert {candidate: missing for candidate, missing in found.items() if missing} == {}


@pytest.mark.parametrize("code", [0, 1, 2, 3, 35, 100, 101, 400, 600, 719, 999, 12345])
def test_the_fakes_error_names_and_texts_are_the_real_ones(real_lib: Path, fake_lib: Path, code: int) -> None:
    texts = []
    for path in (real_lib, fake_lib):
        lib = ctypes.CDLL(str(path))
        lib.cudaGetErrorName.restype = lib.cudaGetErrorString.restype = ctypes.c_char_p
        texts.append((lib.cudaGetErrorName(code), lib.cudaGetErrorString(code)))
    assert texts[0] == texts[1]


# -- against the real library -------------------------------------------------------------------

OPEN_REAL = """
import json, sys
from edgekit.agent.backends.tensorrt.cudart import CudaRuntime
from edgekit.agent.errors import AgentError
try:
    cuda = CudaRuntime(candidates=[sys.argv[1]])
except AgentError as error:
    print(json.dumps({"kind": error.kind, "error": error.message}))
else:
    print(json.dumps({"compute_capability": cuda.compute_capability()}))
    cuda.close()
"""


def test_the_real_library_refuses_in_one_sentence_without_a_gpu(real_lib: Path) -> None:
    # In a child process: a crash in the real library would show as a signal, not kill pytest.
    done = subprocess.run(
        [sys.executable, "-c", OPEN_REAL, str(real_lib)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    answer = json.loads(done.stdout)
    if "compute_capability" in answer:
        major, minor = answer["compute_capability"]
        assert isinstance(major, int) and isinstance(minor, int) and major >= 5
        return
    lib = ctypes.CDLL(str(real_lib))
    lib.cudaGetErrorString.restype = ctypes.c_char_p
    count = ctypes.c_int(0)
    code = lib.cudaGetDeviceCount(ctypes.byref(count))
    assert code in (35, 100)
    assert answer["kind"] == "backend"
    assert lib.cudaGetErrorString(code).decode() in answer["error"]
    assert answer["error"].startswith("No CUDA GPU answered")
    assert_one_sentence(answer["error"])


# -- scripts/gpu-smoke ------------------------------------------------------------------------------


def smoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GPU_SMOKE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def test_gpu_smoke_skips_in_one_sentence_on_this_machine() -> None:
    done = smoke()
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    last = done.stdout.strip().splitlines()[-1]
    if last == "PASS":
        return
    assert last.startswith("SKIP: "), done.stdout
    assert_one_sentence(last[len("SKIP: ") :])


def test_gpu_smoke_passes_on_the_fake_and_skips_without_its_gpu(fake_lib: Path) -> None:
    done = smoke("--library", str(fake_lib), env={"FAKE_CUDART_DEVICES": "1", "FAKE_CUDART_CC": "8.7"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "PASS", done.stdout
    text = "\n".join(lines)
    for word in ("devices", "runtime", "compute capability", "8.7", "64 MiB", "second thread", "nothing held"):
        assert word in text, word
    done = smoke("--library", str(fake_lib), env={"FAKE_CUDART_DEVICES": "0"})
    assert done.returncode == 0 and done.stdout.startswith("SKIP: No CUDA GPU answered"), done.stdout


def test_gpu_smoke_wrapper_runs_the_script() -> None:
    wrapper = REPO_ROOT / "scripts" / "gpu-smoke"
    assert os.access(wrapper, os.X_OK)
    assert "scripts/lib/gpu_smoke.py" in wrapper.read_text()
