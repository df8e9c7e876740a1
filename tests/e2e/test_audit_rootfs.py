"""edgekit audit over the twin's real Debian root filesystem, written by no one here: under
--policy rootfs it finds no engine and no NVIDIA file, and reads every one of its files."""

from __future__ import annotations

import os

import pytest

from edgekit.audit.policy import load_policy
from edgekit.audit.scan import audit
from edgekit.twin.rootfs import ensure_rootfs

pytestmark = pytest.mark.e2e


def test_the_twin_rootfs_has_no_engine_and_no_nvidia_file() -> None:
    rootfs = ensure_rootfs(lambda line: None)
    report = audit(rootfs, load_policy("rootfs"))
    regular = sum(
        1
        for folder, _, names in os.walk(rootfs)
        for name in names
        if os.path.isfile(os.path.join(folder, name)) and not os.path.islink(os.path.join(folder, name))
    )
    assert report.files == regular > 5000
    assert report.clean, [f.to_dict() for f in report.errors][:5]
    assert not [f for f in report.findings if f.family in ("engine", "nvidia")]
    # Debian's own copyleft packages are there, and expected.
    assert any(f.rule == "licence/gpl" and f.severity == "allowed" for f in report.findings)
