"""The agent zipapp: byte-identical for identical sources, agent-only, runnable as is."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from edgekit.agentpack import AGENT_DIR, PACKAGE_STUB, build_agent

REPO = Path(__file__).resolve().parents[1]


def system_python() -> str:
    found = shutil.which("python3") or ("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None)
    if found is None:
        pytest.skip("no python3 on PATH")
    return found


def test_build_is_byte_identical(tmp_path: Path) -> None:
    first = build_agent(tmp_path / "a" / "agent.pyz")
    second = build_agent(tmp_path / "b" / "agent.pyz")
    assert first == second
    assert (tmp_path / "a" / "agent.pyz").read_bytes() == (tmp_path / "b" / "agent.pyz").read_bytes()
    assert first == hashlib.sha256((tmp_path / "a" / "agent.pyz").read_bytes()).hexdigest()


def test_rebuild_over_an_existing_file(tmp_path: Path) -> None:
    output = tmp_path / "agent.pyz"
    output.write_bytes(b"stale bytes that are longer than nothing" * 1000)
    digest = build_agent(output)
    assert digest == build_agent(tmp_path / "clean.pyz")


def test_contents(tmp_path: Path) -> None:
    output = tmp_path / "agent.pyz"
    build_agent(output)
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        assert names[:2] == ["__main__.py", "edgekit/__init__.py"]
        assert archive.read("edgekit/__init__.py").decode() == PACKAGE_STUB
        assert b"zipapp" in archive.read("edgekit/__init__.py")
        assert b"edgekit.agent.__main__" in archive.read("__main__.py")
        agent_sources = sorted(
            p.relative_to(REPO).as_posix() for p in AGENT_DIR.rglob("*.py") if "__pycache__" not in p.parts
        )
        assert "edgekit/agent/__main__.py" in agent_sources
        assert "edgekit/agent/backends/onnxruntime.py" in agent_sources
        assert sorted(names[2:]) == agent_sources
        for name in agent_sources:
            assert archive.read(name) == (REPO / name).read_bytes()
        # Nothing of the host package travels.
        host_only = [n for n in names if n.startswith("edgekit/") and not n.startswith("edgekit/agent/")]
        assert host_only == ["edgekit/__init__.py"]
        assert not any(n.endswith((".pyc", ".toml")) for n in names)
        for info in archive.infolist():
            assert info.date_time == (2020, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_DEFLATED


def test_agent_sources_import_no_host_module() -> None:
    host_modules = {p.stem for p in (REPO / "edgekit").glob("*.py")} - {"__init__"}
    host_packages = {p.name for p in (REPO / "edgekit").iterdir() if p.is_dir() and p.name != "agent"}
    for source in AGENT_DIR.rglob("*.py"):
        text = source.read_text()
        for name in host_modules | host_packages:
            assert f"from edgekit.{name} " not in text and f"import edgekit.{name}\n" not in text, (
                f"{source} imports the host module edgekit.{name}"
            )


def test_runs_with_the_machines_python(tmp_path: Path) -> None:
    output = tmp_path / "agent.pyz"
    build_agent(output)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [system_python(), str(output), "version"], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"protocol": 1}
    assert done.stdout.strip() == '{"protocol": 1}'


def test_imports_resolve_inside_the_zipapp(tmp_path: Path) -> None:
    output = tmp_path / "agent.pyz"
    build_agent(output)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import edgekit, edgekit.agent; "
        "print(edgekit.__file__); print(edgekit.agent.__file__)"
    )
    done = subprocess.run(
        [system_python(), "-c", probe, str(output)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        assert line.startswith(str(output) + os.sep)
