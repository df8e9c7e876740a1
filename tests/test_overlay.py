"""edgekit overlay build: reproducible bytes, the same system files provision installs, and a
tree that waits for provision (what systemd makes of it is checked on a twin in e2e)."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from edgekit.audit.policy import BUILT_IN
from edgekit.audit.scan import audit
from edgekit.device.install import GPU_DROPIN_SOURCE, UNIT_SOURCE
from edgekit.errors import UsageError
from edgekit.overlay import AGENT_PATH, MANIFEST_PATH, TEMPLATE_PATH, WANTS_LINK, build_overlay

UNIT = "etc/systemd/system/edgekit-camera.service"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = build_overlay(tmp_path / "a.tar.gz"), build_overlay(tmp_path / "b.tar.gz")
    assert first.sha256 == second.sha256 == digest(tmp_path / "a.tar.gz") == digest(tmp_path / "b.tar.gz")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = build_overlay(tmp_path / "c.tar.gz")
    assert dated.sha256 != first.sha256
    with tarfile.open(tmp_path / "c.tar.gz") as archive:
        assert {m.mtime for m in archive.getmembers()} == {1700000000}
        assert {(m.uid, m.gid, m.uname, m.gname) for m in archive.getmembers()} == {(0, 0, "root", "root")}


def test_a_folder_and_a_tarball_hold_the_same_files(tmp_path: Path) -> None:
    folder = build_overlay(tmp_path / "overlay")
    packed = build_overlay(tmp_path / "overlay.tar")
    assert folder.files == packed.files
    with tarfile.open(tmp_path / "overlay.tar") as archive:
        members = {m.name: m for m in archive.getmembers()}
        for item in folder.files:
            data = archive.extractfile(members[item.path])
            assert data is not None and hashlib.sha256(data.read()).hexdigest() == item.sha256
            assert (tmp_path / "overlay" / item.path).read_bytes() == (
                archive.extractfile(members[item.path]).read()  # type: ignore[union-attr]
            )
        assert members[WANTS_LINK].issym() and members[WANTS_LINK].linkname == "../edgekit-camera.service"
    assert os.readlink(tmp_path / "overlay" / WANTS_LINK) == "../edgekit-camera.service"


def test_provision_and_the_overlay_take_the_system_files_from_one_place(tmp_path: Path) -> None:
    build_overlay(tmp_path / "overlay")
    root = tmp_path / "overlay"
    assert (root / UNIT).read_bytes() == UNIT_SOURCE.read_bytes()
    assert (root / UNIT).with_suffix(".service.d").joinpath("gpu-devices.conf").read_bytes() == (
        GPU_DROPIN_SOURCE.read_bytes()
    )
    wait = (root / UNIT).with_suffix(".service.d").joinpath("wait-for-release.conf").read_text()
    assert "ConditionPathExists=/var/lib/edgekit/current/release.json" in wait
    manifest = json.loads((root / MANIFEST_PATH).read_text())
    assert set(manifest["files"]) == {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink()
    } - {MANIFEST_PATH}
    assert manifest["files"][AGENT_PATH] == digest(root / AGENT_PATH)
    template = json.loads((root / TEMPLATE_PATH).read_text())
    assert template["source"]["uri"] == "csi://0" and template["release_dir"] == "/var/lib/edgekit/current"
    sysusers = (root / "usr/lib/sysusers.d/edgekit.conf").read_text()
    assert "u edgekit" in sysusers and "m edgekit video" in sysusers


def test_a_folder_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="is not empty"):
        build_overlay(tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine\n"


def test_the_project_overlay_passes_its_own_audit(tmp_path: Path) -> None:
    built = build_overlay(tmp_path / "overlay.tar.gz")
    report = audit(tmp_path / "overlay.tar.gz", BUILT_IN["overlay"])
    assert report.findings == () and report.clean
    assert report.files == len(built.files)
