"""Jetson twins booted for the end-to-end tests, and torn down after them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from e2e_tier import pytest_collection_modifyitems, pytest_terminal_summary
from trt_twin import install_tensorrt

from edgekit.profiles import load_profile
from edgekit.twin import TwinInfo, twin_down, twin_up

# The hooks that leave this tier out of a plain `pytest` run without root.
__all__ = ["pytest_collection_modifyitems", "pytest_terminal_summary"]


@contextlib.contextmanager
def booted(role: str, profile: str) -> Iterator[TwinInfo]:
    name = f"e2e-{role}-{os.getpid()}"
    info = twin_up(name, load_profile(profile), port=None, log=lambda line: None)
    try:
        yield info
    finally:
        twin_down(name)


@pytest.fixture(scope="session")
def twin() -> Iterator[TwinInfo]:
    with booted("twin", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def orin_twin() -> Iterator[TwinInfo]:
    """A twin showing the identity of an Orin Nano 8GB on JetPack 6.2 (but no TensorRT, no camera)."""
    with booted("orin", "orin-nano-8gb-jp62") as info:
        yield info


@pytest.fixture(scope="module")
def trt_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinInfo]:
    """An Orin Nano 8GB twin with CUDA 12.6 and TensorRT 10.3: the agent tests' fake libcudart and stand-in."""
    with booted("trt", "orin-nano-8gb-jp62") as info:
        install_tensorrt(info, tmp_path_factory.mktemp("trt-twin"))
        yield info


@pytest.fixture(scope="module")
def build_twin() -> Iterator[TwinInfo]:
    """A twin of its own for the build tests, which leave releases and units behind."""
    with booted("build", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def models_twin() -> Iterator[TwinInfo]:
    """A twin of its own for the exporter corpus, each model provisioned over the one before."""
    with booted("models", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def camera_twin() -> Iterator[TwinInfo]:
    """A twin of its own for the camera tests, whose service is killed and restarted."""
    with booted("camera", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def trials_twin() -> Iterator[TwinInfo]:
    """A twin of its own for the release trials, whose releases are crashed and rolled back."""
    with booted("trials", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def power_twin() -> Iterator[TwinInfo]:
    """A twin of its own for the power-loss tests, which kill it and boot it again."""
    with booted("power", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def releases_twin() -> Iterator[TwinInfo]:
    """A twin of its own for listing and pruning releases, which it provisions several times."""
    with booted("releases", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def recalibrate_twin() -> Iterator[TwinInfo]:
    """A twin of its own for field recalibration, whose scene is changed and recalibrated on."""
    with booted("recalibrate", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def overlay_twin() -> Iterator[TwinInfo]:
    """A twin of its own for the firmware overlay, which is laid into its root and booted again."""
    with booted("overlay", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def unchanged_twin() -> Iterator[TwinInfo]:
    """A twin of its own for re-provisioning with nothing changed."""
    with booted("unchanged", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def drops_twin() -> Iterator[TwinInfo]:
    """A twin of its own whose link is cut at each stage of a provision."""
    with booted("drops", "twin") as info:
        yield info


@pytest.fixture(scope="module")
def plain_access_twin() -> Iterator[TwinInfo]:
    """A twin of its own that gets more users, for SSH and sudo access."""
    with booted("access", "twin") as info:
        yield info
