"""The camera unit as systemd itself reads it: valid, and hardened past a fixed threshold."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit.device.install import GPU_DROPIN_SOURCE, UNIT_SOURCE
from edgekit.device.layout import UNIT_NAME, VENV_LINK

# systemd-analyze security: 0 is fully locked down, 10 fully exposed; "OK" ends at 3.9.
EXPOSURE_THRESHOLD = 2.0


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    assert binary, "systemd-analyze is missing; scripts/test installs systemd"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def device_root(tmp_path: Path, unit_text: str, dropin: bool = False) -> Path:
    """A root holding the unit (and drop-in) where provision puts them, and the venv's python."""
    root = tmp_path / "root"
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    (unit_dir / UNIT_NAME).write_text(unit_text)
    if dropin:
        (unit_dir / f"{UNIT_NAME}.d").mkdir()
        shutil.copy(GPU_DROPIN_SOURCE, unit_dir / f"{UNIT_NAME}.d" / GPU_DROPIN_SOURCE.name)
    python = root / VENV_LINK.lstrip("/") / "bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return analyze("verify", "--recursive-errors=no", f"--root={root}", UNIT_NAME)


@pytest.mark.parametrize("dropin", [False, True], ids=["unit", "unit+gpu-dropin"])
def test_systemd_verifies_the_unit_without_a_word(tmp_path: Path, dropin: bool) -> None:
    done = verify(device_root(tmp_path, UNIT_SOURCE.read_text(), dropin))
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT_SOURCE.read_text().replace("Type=notify", "Type=notify\nWatchdogSecs=30")
    done = verify(device_root(tmp_path, broken))
    assert "Unknown key 'WatchdogSecs'" in done.stderr


def exposure(unit: Path) -> float:
    done = analyze("security", "--offline=true", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert match, done.stdout + done.stderr
    return float(match.group(1))


def test_the_unit_is_hardened_below_the_threshold(tmp_path: Path) -> None:
    assert exposure(UNIT_SOURCE) <= EXPOSURE_THRESHOLD
    # The threshold is tight enough to notice a lost directive.
    weakened = tmp_path / UNIT_NAME
    weakened.write_text(
        "\n".join(
            line
            for line in UNIT_SOURCE.read_text().splitlines()
            if not line.startswith(("SystemCallFilter=", "RestrictNamespaces=", "CapabilityBoundingSet="))
        )
    )
    assert exposure(weakened) > EXPOSURE_THRESHOLD


def test_the_unit_runs_unprivileged_with_cameras_only() -> None:
    lines = set(UNIT_SOURCE.read_text().splitlines())
    assert {
        "User=edgekit",
        "SupplementaryGroups=video",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
    } <= lines
    # Restart limits belong in [Unit]: in [Service] systemd ignores them.
    text = UNIT_SOURCE.read_text()
    assert text.index("\nStartLimitIntervalSec=") < text.index("\n[Service]\n")


def test_the_root_check_before_each_start_runs_python_isolated() -> None:
    """ExecStartPre runs as root ("+") with the unit's HOME, the service user's: without -I the
    venv (--system-site-packages) would load that user's site-packages into root's process."""
    [line] = [line for line in UNIT_SOURCE.read_text().splitlines() if line.startswith("ExecStartPre=")]
    assert line.startswith("ExecStartPre=-+") and f"{VENV_LINK}/bin/python -I " in line, line
