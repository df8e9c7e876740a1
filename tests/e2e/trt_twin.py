"""TensorRT and CUDA for a twin, made of the agent tests' stand-ins, installed where JetPack puts them.

What a real Orin has and the twin lacks is added as root, and nothing else: the CUDA
runtime library (the fake libcudart.so.12 of tests/fakes, on the library search path),
CUDA's version file, and a ``tensorrt`` package in the system Python's dist-packages that
is the strict stand-in of TensorRT 10.3 (tests/agent/trt_standin.py) running engines on
that same library. Host-side detection and preflight, the build unit and the camera
service then all meet them the way they would meet JetPack's.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

from edgekit import wheels
from edgekit.twin import TwinInfo, twin_exec
from edgekit.twin.machine import _state_dir

TESTS = Path(__file__).resolve().parents[1]
TENSORRT = "10.3"
FULL_VERSION = "10.3.0.30"
CUDA_LIB_DIR = "usr/local/cuda/lib64"
CUDART = f"/{CUDA_LIB_DIR}/libcudart.so.12"
# trt_standin.py finds its API surface at ../data/tensorrt-api, so the tests' layout is kept.
STANDIN_HOME = "usr/local/lib/edgekit-trt-standin"
# The stand-in parses models with onnx, which only it needs. onnx 1.19 and later need
# ml_dtypes and so numpy 2, where the twin (like JetPack) has its distribution's numpy 1.
STANDIN_PINS = ("onnx==1.18.0", "typing_extensions==4.16.0")
# JetPack 6.2's /usr/local/cuda/version.json, cut to what facts read.
CUDA_VERSION = {"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}

# Runs as ``import tensorrt`` in every Python of the twin. The stand-in's modules are
# loaded by path so that they add no names to sys.path, and the package replaces itself
# with the stand-in, as TensorRT's own __init__ hands over to its bindings.
TENSORRT_INIT = f'''\
"""TensorRT {TENSORRT} of this edgekit twin: the tests' strict stand-in, on the fake CUDA runtime."""

import importlib.util
import sys


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_standin = _load("_edgekit_trt_standin", "/{STANDIN_HOME}/agent/trt_standin.py")
_cudart = _load("_edgekit_fake_cudart", "/{STANDIN_HOME}/agent/fake_cudart.py")
# The same file the agent's ctypes seam finds by its soname, so one dlopen handle and one
# device memory for both.
sys.modules[__name__] = _standin.make_tensorrt({TENSORRT!r}, _cudart.CudartDevice({CUDART!r}))
'''

# The twin's CPU, glibc and Python, and where its pip would install system-wide.
_PLATFORM = (
    "import json, os, platform, sys, sysconfig; "
    "print(json.dumps([platform.machine(), os.confstr('CS_GNU_LIBC_VERSION').split()[1], "
    "'%d.%d' % sys.version_info[:2], sysconfig.get_path('purelib', 'posix_local')]))"
)


def install_tensorrt(twin: TwinInfo, work: Path) -> None:
    """Give the running ``twin`` CUDA 12.6 and TensorRT 10.3 (stand-ins); ``work`` holds host-side builds."""
    root = _state_dir(twin.name) / "root"
    machine, glibc, python, purelib = json.loads(_in_twin(twin, "python3", "-c", _PLATFORM))
    lib_dir = root / CUDA_LIB_DIR
    lib_dir.mkdir(parents=True)
    shutil.copyfile(_fake_cudart().build_fake_cudart(work), lib_dir / "libcudart.so.12")
    (root / "usr/local/cuda/version.json").write_text(json.dumps(CUDA_VERSION, indent=2) + "\n")
    (root / "etc/ld.so.conf.d/cuda.conf").write_text(f"/{CUDA_LIB_DIR}\n")

    home = root / STANDIN_HOME
    (home / "agent").mkdir(parents=True)
    (home / "data/tensorrt-api").mkdir(parents=True)
    for name in ("trt_standin.py", "fake_cudart.py"):
        shutil.copyfile(TESTS / "agent" / name, home / "agent" / name)
    surface = f"data/tensorrt-api/tensorrt-{TENSORRT}.json"
    shutil.copyfile(TESTS / surface, home / surface)

    dist_packages = root / purelib.lstrip("/")
    (dist_packages / "tensorrt").mkdir(parents=True)
    (dist_packages / "tensorrt/__init__.py").write_text(TENSORRT_INIT)
    for wheel in standin_wheels(machine, glibc, python):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(dist_packages)
    _in_twin(twin, "ldconfig")
    # What host-side detection will see: the SSH user's python3 imports TensorRT 10.3.
    version = _in_twin(
        twin, "runuser", "-u", twin.user, "--", "python3", "-c", "import tensorrt; print(tensorrt.__version__)"
    )
    assert version.strip() == FULL_VERSION, version


def standin_wheels(machine: str, glibc: str, python: str) -> list[Path]:
    """The stand-in's wheels for the twin's Python, from edgekit's wheel cache or PyPI (once)."""
    cache = wheels.CACHE_DIR / f"trt-standin-cp{python.replace('.', '')}-{machine}"
    # onnx's protobuf is the one the agent's venv gets, so both Pythons see the same.
    protobuf = [pin for pin in wheels.runtime_requirements(python) if pin.startswith("protobuf==")]
    pins = [*STANDIN_PINS, *protobuf]
    wanted = {wheels.parse_pin(pin) for pin in pins}

    def found() -> list[Path]:
        return [wheel for wheel in sorted(cache.glob("*.whl")) if wheels.wheel_project(wheel.name) in wanted]

    if len(found()) < len(wanted):
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        command += ["--implementation", "cp", "--python-version", python, "--dest", str(cache)]
        for tag in wheels.platform_tags(machine, glibc):
            command += ["--platform", tag]
        subprocess.run(command + pins, check=True, capture_output=True, text=True, timeout=300)
    assert len(found()) == len(wanted), f"missing stand-in wheels in {cache}: {found()}"
    return found()


def _fake_cudart() -> ModuleType:
    # tests/agent is on sys.path only when its own tests were collected.
    spec = importlib.util.spec_from_file_location("fake_cudart", TESTS / "agent" / "fake_cudart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in_twin(twin: TwinInfo, *argv: str) -> str:
    done = twin_exec(twin.name, list(argv))
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout
