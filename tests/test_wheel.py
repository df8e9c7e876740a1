"""The wheel carries everything: installed away from the source tree, edgekit has its profiles, unit and agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wheel_venv import ROOT, WheelVenv, wheel_venv

from edgekit.agentpack import build_agent

# What the installed package says it reads; each must be its own copy, not the checkout's.
WHERE = """
import json, edgekit
from edgekit.data import data_dir
from edgekit.device.install import GPU_DROPIN_SOURCE, UNIT_SOURCE
print(json.dumps({
    "package": edgekit.__file__,
    "profiles": str(data_dir("device_profiles")),
    "overlay": str(data_dir("firmware_overlay")),
    "unit": str(UNIT_SOURCE),
    "dropin": str(GPU_DROPIN_SOURCE),
}))
"""
PACK = "import pathlib, sys\nfrom edgekit.agentpack import build_agent\nprint(build_agent(pathlib.Path(sys.argv[1])))"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    return wheel_venv(tmp_path_factory)


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes() for path in directory.rglob("*") if path.is_file()
    }


def test_installed_edgekit_lists_every_profile(venv: WheelVenv, tmp_path: Path) -> None:
    done = venv.run(venv.edgekit, "profiles", "list", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = [profile["name"] for profile in json.loads(done.stdout)]
    assert listed == sorted(path.stem for path in (ROOT / "device_profiles").glob("*.toml"))


def test_installed_edgekit_reads_its_own_copy_of_the_data(venv: WheelVenv, tmp_path: Path) -> None:
    done = venv.run(venv.python, "-c", WHERE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where = {key: Path(value) for key, value in json.loads(done.stdout).items()}
    for path in where.values():
        assert path.is_relative_to(venv.root) and not path.is_relative_to(ROOT), path
    assert where["unit"].is_relative_to(where["overlay"]) and where["dropin"].is_relative_to(where["overlay"])
    assert _files(where["profiles"]) == _files(ROOT / "device_profiles")
    assert _files(where["overlay"]) == _files(ROOT / "firmware_overlay")


def test_installed_edgekit_packs_the_same_agent(venv: WheelVenv, tmp_path: Path) -> None:
    # Identical sources give a byte-identical zipapp: the wheel holds every file of the agent.
    done = venv.run(venv.python, "-c", PACK, tmp_path / "installed.pyz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == build_agent(tmp_path / "source.pyz")
