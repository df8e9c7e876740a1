"""The CUDA seam behind scripts/gpu-smoke, on whatever GPU this machine has.

The tests run the seam against a fake libcudart; this is the same code against NVIDIA's,
on a real GPU: what the fake cannot prove (real pointers, real DMA, a context made
current in a second thread). Without a GPU or a CUDA runtime it prints ``SKIP: <why>``
and exits 0, so it can run anywhere; any failure on a GPU prints ``FAIL: <why>``, exit 1.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgekit.agent.backends.tensorrt.cudart import CudaRuntime
from edgekit.agent.errors import AgentError

BIG = 64 << 20
SMALL = 1 << 20


def round_trip(cuda: CudaRuntime, nbytes: int, seed: int) -> str:
    """Pinned host -> device -> pinned host on a fresh stream; the line to print, or raises."""
    source = cuda.pagelocked_empty((nbytes,), np.uint8)
    back = cuda.pagelocked_empty((nbytes,), np.uint8)
    source[:] = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    back[:] = 0
    ptr = cuda.mem_alloc(nbytes)
    stream = cuda.stream()
    start = time.perf_counter()
    cuda.memcpy_htod_async(ptr, source, stream)
    cuda.memcpy_dtoh_async(back, ptr, stream)
    stream.synchronize()
    seconds = time.perf_counter() - start
    cuda.mem_free(ptr)
    sent, received = hashlib.sha256(source).hexdigest(), hashlib.sha256(back).hexdigest()
    if sent != received:
        raise AssertionError(f"the {nbytes >> 20} MiB round trip came back changed (sha256 {received[:12]})")
    rate = 2 * nbytes / seconds / 1e9 if seconds > 0 else float("inf")
    return f"{nbytes >> 20} MiB pinned, sha256 {sent[:12]} ok, {rate:.1f} GB/s"


def in_thread(work: Callable[[], Any]) -> Any:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="gpu-smoke-worker")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def checks(cuda: CudaRuntime, show: Callable[[str, str], None]) -> None:
    show("libcudart", cuda.library)
    show("devices", str(cuda.device_count()))
    runtime_major, runtime_minor = cuda.runtime_version()
    show("runtime", f"{runtime_major}.{runtime_minor}")
    major, minor = cuda.compute_capability()
    show("compute capability", f"{major}.{minor}")
    ptr = cuda.mem_alloc(BIG)
    cuda.mem_free(ptr)
    show("allocation", f"{BIG >> 20} MiB at {ptr:#x} ok")
    show("round trip", round_trip(cuda, BIG, seed=1))
    show("second thread", in_thread(lambda: round_trip(cuda, SMALL, seed=2)))
    cuda.close()
    left = {what: count for what, count in cuda.held().items() if count}
    if left:
        raise AssertionError(f"close() left {left}")
    show("close", "nothing held")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--library", action="append", help="a libcudart to load instead of the agent's search (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        cuda = CudaRuntime(args.library)
    except AgentError as error:
        print(f"SKIP: {error.message}")
        return 0

    def show(what: str, value: str) -> None:
        print(f"{what:<20} {value}", flush=True)

    try:
        checks(cuda, show)
    except (AgentError, AssertionError) as error:
        print(f"FAIL: {error}")
        return 1
    finally:
        cuda.close()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
