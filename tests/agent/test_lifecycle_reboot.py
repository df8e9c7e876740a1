"""A trial that goes on after a reboot still ends: its deadline timer is armed again at the start.

The transient timer ``begin`` arms lives in systemd's memory, not on the disk, so a power loss
during a trial takes it away. The unit's ExecStartPre check, the first thing the device runs
for the camera after the boot, arms it again for the time the trial has left.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgekit.agent import lifecycle


class Systemd:
    """systemctl and systemd-run, recorded; ``timer_active`` is what ``is-active`` says of the timer."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.timer_active = False

    def systemctl(self, *args: str) -> str:
        self.calls.append(("systemctl", *args))
        if args[0] == "is-active":
            return "active\n" if self.timer_active else "inactive\n"
        if args[0] == "show":
            return "ActiveState=activating\nSubState=start-pre\n"
        return ""

    def run(self, *args: str) -> None:
        self.calls.append(("systemd-run", *args))

    def armed(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] == "systemd-run"]


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch) -> Systemd:
    fake = Systemd()
    monkeypatch.setattr(lifecycle, "_systemctl", fake.systemctl)
    monkeypatch.setattr(lifecycle, "_systemctl_run", fake.run)
    return fake


@pytest.fixture
def state(tmp_path: Path) -> Path:
    for release in ("a", "b"):
        folder = tmp_path / "releases" / release
        folder.mkdir(parents=True)
        (folder / "release.json").write_text(json.dumps({"release": release}))
    os.symlink(tmp_path / "releases" / "a", tmp_path / "current")
    return tmp_path


def test_a_trial_that_goes_on_after_a_reboot_gets_its_deadline_timer_again(state: Path, systemd: Systemd) -> None:
    lifecycle.begin(str(state), "b", deadline_s=60, results=5, max_restarts=2, now=1000.0)
    assert len(systemd.armed()) == 1
    # Power lost, boot: the timer is gone, and ExecStartPre runs the check.
    answer = lifecycle.check(str(state), "device", starting=True, now=1010.0)
    assert answer["current"] == "b" and answer["trial"] is not None
    [_, again] = systemd.armed()
    # For what is left of the deadline, not a new one.
    assert "--unit=edgekit-trial-b" in again and "--on-active=51s" in again
    assert answer["trial"]["deadline"] == 1060.0


def test_a_restart_while_the_timer_runs_leaves_it_alone(state: Path, systemd: Systemd) -> None:
    lifecycle.begin(str(state), "b", deadline_s=60, results=5, max_restarts=2, now=1000.0)
    systemd.timer_active = True
    before = len(systemd.calls)
    assert lifecycle.check(str(state), "device", starting=True, now=1010.0)["trial"] is not None
    assert len(systemd.armed()) == 1
    assert not any(call[:2] == ("systemctl", "stop") for call in systemd.calls[before:])


def test_a_deadline_that_passed_while_the_power_was_off_says_so(state: Path, systemd: Systemd) -> None:
    lifecycle.begin(str(state), "b", deadline_s=60, results=5, max_restarts=2, now=1000.0)
    # The first start after the boot: systemd shows this start (in ExecStartPre), which tells
    # nothing of the trial, so the reason is not "it sent no READY".
    answer = lifecycle.check(str(state), "device", starting=True, now=1100.0)
    assert (answer["current"], answer["trial"]) == ("a", None)
    assert answer["last_rollback"]["reason"] == (
        "its deadline passed before its service started again (after a power loss or a crash), "
        "with 0 of the 5 results it needed"
    )


def test_the_timers_own_check_rolls_back_without_stopping_itself(
    state: Path, systemd: Systemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping edgekit-trial-b.service from inside it would kill the check before its restart."""
    lifecycle.begin(str(state), "b", deadline_s=60, results=5, max_restarts=2, now=1000.0)
    monkeypatch.setattr(lifecycle, "_own_unit", lambda: "edgekit-trial-b.service")
    before = len(systemd.calls)
    monkeypatch.setattr(lifecycle, "service_state", lambda: {"ActiveState": "active"})
    assert lifecycle.check(str(state), "device", now=1061.0)["current"] == "a"
    after = systemd.calls[before:]
    assert ("systemctl", "stop", "edgekit-trial-b.timer") in after
    assert not any("edgekit-trial-b.service" in call for call in after)
    assert ("systemctl", "restart", "--no-block", "edgekit-camera.service") in after


def test_own_unit_reads_the_cgroup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/system.slice/edgekit-trial-b.service\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: real_open(cgroup if path == "/proc/self/cgroup" else path, *a, **k)
    )
    assert lifecycle._own_unit() == "edgekit-trial-b.service"
    cgroup.write_text("0::/user.slice/user-0.slice/session-1.scope\n")
    assert lifecycle._own_unit() == ""


def test_the_timers_own_check_arms_the_next_one_under_the_other_name(
    state: Path, systemd: Systemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service still loading at the deadline extends the trial and arms the timer again, from
    inside the timer's service: systemd refuses a transient unit named like one still running."""
    lifecycle.begin(str(state), "b", deadline_s=60, results=5, max_restarts=2, now=1000.0)
    loading = {"ActiveState": "activating", "SubState": "start"}
    monkeypatch.setattr(lifecycle, "service_state", lambda: loading)
    monkeypatch.setattr(lifecycle, "_own_unit", lambda: "edgekit-trial-b.service")
    assert lifecycle.check(str(state), "device", now=1061.0)["trial"]["deadline"] == 1121.0
    assert "--unit=edgekit-trial-b-again" in systemd.armed()[-1]
    monkeypatch.setattr(lifecycle, "_own_unit", lambda: "edgekit-trial-b-again.service")
    assert lifecycle.check(str(state), "device", now=1122.0)["trial"]["deadline"] == 1182.0
    assert "--unit=edgekit-trial-b" in systemd.armed()[-1]
    # The trial's end stops either timer, but not the service the check runs in.
    monkeypatch.setattr(lifecycle, "service_state", lambda: {"ActiveState": "active"})
    before = len(systemd.calls)
    lifecycle.check(str(state), "device", now=1183.0)
    stopped = [call for call in systemd.calls[before:] if call[:2] == ("systemctl", "stop")]
    assert ("systemctl", "stop", "edgekit-trial-b.timer", "edgekit-trial-b.service") in stopped
    assert ("systemctl", "stop", "edgekit-trial-b-again.timer") in stopped
