"""INT8 entropy calibration fed from the calibration tensors the host shipped.

TensorRT asks for batches by input name and reads device pointers back; the class has to
subclass the imported release's IInt8EntropyCalibrator2, so it is made per module. The
calibration cache sits next to the engine cache: a rebuild with the same data (a new
TensorRT timing, a lost engine) skips calibration, and new data has a new cache name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import AgentError
from ...files import read_or_none, write_atomically
from .. import Log
from .progress import progress_line


def make_calibrator(
    trt: Any, cuda: Any, data: np.ndarray, input_name: str, batch_size: int, cache_path: str, log: Log
) -> Any:
    """An IInt8EntropyCalibrator2 over ``data`` ([N, ...] in the input's dtype, usually a
    memory map), in batches of ``batch_size``: the shape TensorRT reads each batch at.

    Only for releases that have the calibrator: build_engine checks that (api.probe) first.
    """
    if len(data) < batch_size:
        raise AgentError("calibration", f"Calibration needs at least {batch_size} images, got {len(data)}.")
    base = trt.IInt8EntropyCalibrator2
    total = len(data) // batch_size

    class EntropyCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.batches_served = 0
            self._stream = cuda.stream()
            self._host = cuda.pagelocked_empty((batch_size,) + tuple(data.shape[1:]), data.dtype)
            self._device = cuda.mem_alloc(self._host.nbytes)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str], *unused: Any) -> list[int] | None:
            start = self.batches_served * batch_size
            if start + batch_size > len(data):
                return None
            if list(names) != [input_name]:
                raise AgentError("calibration", f"TensorRT asked for inputs {names}, not {input_name!r}.")
            # Only this batch is read from disk: a whole set can be larger than the memory
            # that a Jetson's CPU and GPU share while the builder runs.
            np.copyto(self._host, data[start : start + batch_size])
            cuda.memcpy_htod_async(self._device, self._host, self._stream)
            self._stream.synchronize()
            self.batches_served += 1
            log(progress_line("calibration", self.batches_served, total))
            return [self._device]

        def read_calibration_cache(self) -> bytes | None:
            return read_or_none(cache_path)

        def write_calibration_cache(self, cache: Any) -> None:
            write_atomically(cache_path, bytes(cache))

        def release(self) -> None:
            cuda.mem_free(self._device)

    return EntropyCalibrator()
