"""edgekit as a user installs it: the wheel built from this tree, in a fresh venv outside it."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Anything that could let the installed edgekit see the checkout instead of its own files.
_LEAKS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


@dataclass(frozen=True)
class WheelVenv:
    wheel: Path
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def edgekit(self) -> Path:
        return self.root / "bin" / "edgekit"

    def run(self, *argv: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run in ``cwd`` (outside the source tree), which also holds the run's HOME and cache."""
        env = {key: value for key, value in os.environ.items() if key not in _LEAKS}
        env.update(HOME=str(cwd), EDGEKIT_CACHE=str(cwd / "cache"), COLUMNS="200", NO_COLOR="1")
        return subprocess.run(
            [str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )


def _uv(*args: str | Path, cwd: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is missing; scripts/test installs it"
    env = {key: value for key, value in os.environ.items() if key not in _LEAKS}
    done = subprocess.run(
        [uv, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"uv {' '.join(map(str, args))} failed:\n{done.stderr}"


def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    return _install(tmp_path_factory.getbasetemp() / "wheel")


# Cached on the session's temporary folder: the unit tests and the e2e test share one build and one venv.
@functools.cache
def _install(work: Path) -> WheelVenv:
    work.mkdir()
    _uv("build", "--wheel", "--out-dir", work / "dist", ROOT, cwd=work)
    (wheel,) = (work / "dist").glob("edgekit-*.whl")
    # The wheel's own requirements, held to the versions uv.lock pins: what the suite tests the
    # source with, and what uv's cache already has.
    constraints = work / "constraints.txt"
    _uv("export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--output-file", constraints, cwd=ROOT)
    venv = WheelVenv(wheel, work / "venv")
    _uv("venv", "--python", sys.executable, venv.root, cwd=work)
    _uv("pip", "install", "--python", venv.python, "--constraint", constraints, wheel, cwd=work)
    return venv
