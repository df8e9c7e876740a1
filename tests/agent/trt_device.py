"""``python trt_device.py SEAM LIBCUDART -- AGENT ARGS``: the agent as it runs on an Orin
with TensorRT 10.3, in a process of its own, with the stand-ins in place of what cannot
exist here: the stand-in ``tensorrt`` on a fake GPU, reached through the release's CUDA
seam ("cudart": the fake libcudart at LIBCUDART, which the agent's own ctypes seam loads;
"pycuda": the fake pycuda, which raises pycuda's error in a thread without a context).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fake_cuda import FakeCuda
from fake_cudart import CudartDevice
from fake_pycuda import install
from trt_standin import make_tensorrt

from edgekit.agent.__main__ import main
from edgekit.agent.backends.tensorrt import cudart


def run(seam: str, library: str, args: list[str]) -> int:
    patch = pytest.MonkeyPatch()
    if seam == "cudart":
        # Where this machine's own CUDA toolkit (if any) would be found first.
        patch.setattr(cudart, "cudart_candidates", lambda python_path: [library])
        device = CudartDevice(Path(library))
    else:
        device = FakeCuda()
        install(patch, device)
    patch.setitem(sys.modules, "tensorrt", make_tensorrt("10.3", device))
    return main(args)


if __name__ == "__main__":
    separator = sys.argv.index("--")
    sys.exit(run(sys.argv[1], sys.argv[2], sys.argv[separator + 1 :]))
