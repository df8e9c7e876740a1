"""Pinned runtime wheels for the device's Python and CPU, fetched (once) on the host."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgekit.errors import PreflightFailed
from edgekit.wheels import ONNXRUNTIME_PINS, fetch_wheels, platform_tags, runtime_requirements


def test_platform_tags() -> None:
    tags = platform_tags("aarch64", "2.31")
    assert tags[0] == "manylinux_2_31_aarch64"
    assert tags[-1] == "manylinux2014_aarch64"
    assert tags[-2] == "manylinux_2_17_aarch64"
    assert len(tags) == len(set(tags)) == 31 - 17 + 1 + 1
    # Newest first, each one older than the one before.
    minors = [int(tag.split("_")[2]) for tag in tags[:-1]]
    assert minors == sorted(minors, reverse=True)
    assert all(tag.endswith("_aarch64") for tag in tags)


def test_platform_tags_other_glibc() -> None:
    assert platform_tags("x86_64", "2.35")[0] == "manylinux_2_35_x86_64"
    assert platform_tags("aarch64", "2.17") == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert platform_tags("aarch64", "2.39.0")[0] == "manylinux_2_39_aarch64"


def test_platform_tags_refuse_non_glibc_2() -> None:
    with pytest.raises(PreflightFailed, match="glibc 3.1"):
        platform_tags("aarch64", "3.1")


@pytest.mark.parametrize(
    ("version", "onnxruntime"),
    [("3.8.10", "1.19.2"), ("3.10.12", "1.23.2"), ("3.11.2", "1.31.1"), ("3.12.3", "1.31.1"), ("3.10", "1.23.2")],
)
def test_runtime_requirements(version: str, onnxruntime: str) -> None:
    requirements = runtime_requirements(version)
    assert requirements[0] == f"onnxruntime=={onnxruntime}"
    names = [req.split("==")[0] for req in requirements]
    assert names == ["onnxruntime", "flatbuffers", "packaging", "protobuf"]
    assert all(req.count("==") == 1 for req in requirements)
    # numpy comes from the device, never from a wheel.
    assert "numpy" not in names


@pytest.mark.parametrize("version", ["3.9.2", "3.6.9", "3.13.0", "2.7.18"])
def test_runtime_requirements_refuse_unpinned_python(version: str) -> None:
    with pytest.raises(PreflightFailed) as info:
        runtime_requirements(version)
    assert version in str(info.value)
    assert "3.8, 3.10, 3.11, 3.12" in str(info.value)


WHEEL_NAMES = {
    "3.11": [
        "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "flatbuffers-25.12.19-py2.py3-none-any.whl",
        "packaging-26.3-py3-none-any.whl",
        "protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl",
    ],
    "3.8": [
        "onnxruntime-1.19.2-cp38-cp38-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
        "flatbuffers-25.12.19-py2.py3-none-any.whl",
        "packaging-26.2-py3-none-any.whl",
        "protobuf-5.29.6-cp38-abi3-manylinux2014_aarch64.whl",
    ],
}


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record pip calls instead of reaching PyPI; a test that expects none asserts the list is empty."""
    calls: list[list[str]] = []

    def refuse(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network disabled in tests\n")

    # edgekit.wheels calls subprocess.run; nothing else in these tests does.
    monkeypatch.setattr("edgekit.wheels.subprocess.run", refuse)
    return calls


@pytest.mark.parametrize(
    ("version", "machine", "glibc", "folder"),
    [("3.11.4", "x86_64", "2.28", "cp311-x86_64-glibc2.28"), ("3.8.10", "aarch64", "2.31", "cp38-aarch64-glibc2.31")],
)
def test_fetch_wheels_uses_the_cache(
    tmp_path: Path, no_pip: list[list[str]], version: str, machine: str, glibc: str, folder: str
) -> None:
    target = tmp_path / folder
    target.mkdir()
    names = WHEEL_NAMES[".".join(version.split(".")[:2])]
    for name in names:
        (target / name).write_bytes(b"")
    # Other versions and other files lying around are not picked.
    (target / "onnxruntime-1.0.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    (target / "notes.txt").write_text("x")
    found = fetch_wheels(version, machine, glibc, cache_dir=tmp_path)
    assert no_pip == []
    assert sorted(p.name for p in found) == sorted(names)
    assert all(p.parent == target for p in found)


def test_fetch_wheels_downloads_what_is_missing(tmp_path: Path, no_pip: list[list[str]]) -> None:
    target = tmp_path / "cp311-x86_64-glibc2.28"
    target.mkdir()
    for name in WHEEL_NAMES["3.11"][1:]:
        (target / name).write_bytes(b"")
    with pytest.raises(PreflightFailed) as info:
        fetch_wheels("3.11.4", "x86_64", "2.28", cache_dir=tmp_path)
    assert "network disabled in tests" in str(info.value)
    assert str(target) in str(info.value)
    [command] = no_pip
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in command and "--no-deps" in command
    assert command[command.index("--python-version") + 1] == "3.11"
    assert command[command.index("--dest") + 1] == str(target)
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms == platform_tags("x86_64", "2.28")
    assert command[-4:] == list(ONNXRUNTIME_PINS["3.11"])


def test_fetch_wheels_refuses_unpinned_python_before_pip(tmp_path: Path, no_pip: list[list[str]]) -> None:
    with pytest.raises(PreflightFailed):
        fetch_wheels("3.9.2", "aarch64", "2.31", cache_dir=tmp_path)
    assert no_pip == []
    assert not any(tmp_path.iterdir())
