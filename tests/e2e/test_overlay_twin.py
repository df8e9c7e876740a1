"""End to end: the firmware overlay baked into a twin's root filesystem, booted under real systemd.

At first boot sysusers makes the service user, tmpfiles makes /var/lib/edgekit, and the enabled
camera unit is skipped by its condition, inactive and harmless, until `edgekit provision`
delivers a release; then the same unit serves it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_camera_twin import wait_for
from test_provision_twin import edgekit, on_twin, provision_args

from edgekit.overlay import build_overlay
from edgekit.twin import TwinInfo, twin_boot, twin_exec, twin_power_off
from edgekit.twin.machine import _state_dir

pytestmark = pytest.mark.e2e
UNIT = "edgekit-camera.service"


def unit_state(twin: TwinInfo) -> dict[str, str]:
    shown = on_twin(twin, "systemctl", "show", UNIT, "--property=ActiveState,ConditionResult,UnitFileState,NRestarts")
    return dict(line.split("=", 1) for line in shown.splitlines())


def test_the_overlay_waits_at_first_boot_then_serves_what_provision_delivers(
    overlay_twin: TwinInfo, tmp_path: Path, free_ports: Callable[[], int]
) -> None:
    build_overlay(tmp_path / "overlay")
    shutil.copytree(tmp_path / "overlay", _state_dir(overlay_twin.name) / "root", symlinks=True, dirs_exist_ok=True)
    assert twin_power_off(overlay_twin.name)
    twin = twin_boot(overlay_twin.name)

    booted = wait_for(
        "the boot to settle",
        lambda: twin_exec(twin.name, ["systemctl", "is-system-running", "--wait"]).returncode in (0, 1),
        120,
    )
    assert booted
    state = unit_state(twin)
    assert (state["UnitFileState"], state["ActiveState"], state["ConditionResult"]) == ("enabled", "inactive", "no")
    assert on_twin(twin, "id", "-nG", "edgekit").split() == ["edgekit", "video"]
    assert on_twin(twin, "stat", "-c", "%U %a", "/var/lib/edgekit") == "root 755"

    home = tmp_path / "home"
    args = provision_args(twin, home / "known_hosts", "--accept-new-host-key", "--metrics-port", str(free_ports()))
    done = edgekit(*args, home=home)
    assert done.returncode == 0, done.stderr
    state = unit_state(twin)
    assert (state["ActiveState"], state["ConditionResult"], state["NRestarts"]) == ("active", "yes", "0")
