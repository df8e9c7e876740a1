"""A Jetson twin booted for the end-to-end tests, and torn down after them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from edgekit.profiles import load_profile
from edgekit.twin import TwinInfo, twin_down, twin_up


@pytest.fixture(scope="session")
def twin() -> Iterator[TwinInfo]:
    name = f"e2e-{os.getpid()}"
    info = twin_up(name, load_profile("twin"), port=None, log=lambda line: None)
    try:
        yield info
    finally:
        twin_down(name)
