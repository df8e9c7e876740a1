"""edgekit.data: the packaged copy of the data folders when there is one, else the source tree's top level."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit import data
from edgekit.data import data_dir
from edgekit.device.install import OVERLAY_DIR, UNIT_SOURCE
from edgekit.profiles import PROFILES_DIR

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("device_profiles", "firmware_overlay")


@pytest.mark.parametrize("name", NAMES)
def test_a_checkout_reads_the_top_level_folders(name: str) -> None:
    assert data_dir(name) == ROOT / name


def test_profiles_and_unit_come_from_the_accessor() -> None:
    assert PROFILES_DIR == data_dir("device_profiles")
    assert OVERLAY_DIR == data_dir("firmware_overlay")
    assert UNIT_SOURCE.is_file() and UNIT_SOURCE.is_relative_to(OVERLAY_DIR)


def test_the_packaged_copy_wins_where_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An installed package: edgekit/_data/ beside the code, here with only one of the folders.
    (tmp_path / "_data" / "device_profiles").mkdir(parents=True)
    monkeypatch.setattr(data, "files", lambda package: tmp_path if package == "edgekit" else None)
    assert data_dir("device_profiles") == tmp_path / "_data" / "device_profiles"
    assert data_dir("firmware_overlay") == ROOT / "firmware_overlay"
