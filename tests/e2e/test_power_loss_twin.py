"""End to end: power lost at each step of an activation, on a twin of its own.

The twin is powered off with ``twin_power_off``: SIGKILL to the container's init, so every
process on the device dies at once and nothing is shut down, stopped or flushed by systemd.
It then boots again on the same disk (``twin_boot``). What this does not simulate: writes
the device made are in the host's page cache and survive the kill, fsynced or not, so a lost
write (a half-written file after a real power cut) is not exercised; the ordering of renames
and fsyncs is what keeps that case safe, and it is read, not tested, here.

To stop at a step deterministically the test drives the device itself rather than racing the
host: a short Python snippet run on the twin (as root, with the device's venv) imports
``edgekit.agent.lifecycle`` from the release's agent.pyz and calls ``begin`` with
``Device.switch`` wrapped to stop right before or after a given link is switched; a
runtime drop-in (under /run, so gone after the boot) holds the service in ExecStartPre; and
``systemctl restart`` returns at READY. The twin is powered off once the step is reached,
with nothing of the activation running any more, so the disk is exactly as that step left it.

The sample model is provisioned once and committed; the second release is a copy of it
under another id (its files hard links to the same blobs, its release.json naming the new
id), so each step costs a reboot, not a provision; a third copy plays its clip at 1 frame a
second, so it runs but falls short on trial. Each case activates the healthy release that is
not committed, so the cases can run in any order after the first provision.

After the boot: ``current`` points at a complete release (release.json naming it, its model
present and equal to the blob it came from), the service runs it and writes results, and the
lifecycle is coherent: a trial whose switch had not finished went back to the committed
release; a trial that had switched continues and still ends (the transient timer armed by
``begin`` does not survive the boot: the boot's ExecStartPre check arms it again), committed
here since the release is healthy, rolled back and the service restarted for the slow one;
one whose deadline passed while the power was off ends at the boot.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from test_camera_twin import wait_for
from test_provision_twin import edgekit, on_twin, provision_args
from test_trials_twin import slow_clip

from edgekit.twin import TwinInfo, twin_boot, twin_exec, twin_power_off
from edgekit.twin.machine import STATE_ROOT

pytestmark = pytest.mark.e2e
UNIT = "edgekit-camera.service"
STATE = "/var/lib/edgekit"
PYTHON = f"{STATE}/venv/bin/python"
RESULTS_FILE = f"{STATE}/results/results.jsonl"
# Long enough that a boot (about a second on the twin) never outlasts it, short enough to wait for.
DEADLINE_S = 15.0
# About 3 s of the sample clip: more than a release writes between READY and the cut, far fewer
# than it writes before its deadline, so the trial goes on after the boot and is then committed.
TRIAL_RESULTS = 100
MAX_RESTARTS = 3
HOLD_DROPIN = "/run/systemd/system/edgekit-camera.service.d/50-power-loss-hold.conf"
HELD_MARKER = "/run/edgekit-power-loss-held"
LOADING_DROPIN = "/etc/systemd/system/edgekit-camera.service.d/50-power-loss-loading.conf"
SERVE = f"{PYTHON} {STATE}/current/agent.pyz serve --config /etc/edgekit/camera.json"

# Run on the twin: begin a trial of RELEASE, stopping at STOP ("trial": before the first link
# is switched, the trial and the release's record written; "previous"/"current": right after
# that link is switched; "none": begin runs to its end, its deadline timer armed).
BEGIN = r"""
import sys

state, agent, release, stop, deadline, results, restarts = sys.argv[1:8]
sys.path.insert(0, agent)
from edgekit.agent import lifecycle


class Stop(Exception):
    pass


switch = lifecycle.Device.switch


def switch_then_stop(self, name, target):
    if stop == "trial":
        raise Stop(name)
    switch(self, name, target)
    if name == stop:
        raise Stop(name)


lifecycle.Device.switch = switch_then_stop
try:
    lifecycle.begin(state, release, float(deadline), int(results), int(restarts))
except Stop as stopped:
    print("stopped at", stopped)
else:
    print("begun")
"""


def lifecycle_status(twin: TwinInfo) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(on_twin(twin, PYTHON, f"{STATE}/current/agent.pyz", "lifecycle", "status"))
    return answer


def link(twin: TwinInfo, name: str) -> str | None:
    done = twin_exec(twin.name, ["readlink", f"{STATE}/{name}"])
    return Path(done.stdout.strip()).name if done.returncode == 0 else None


def power_cycle(twin: TwinInfo, off_s: float = 0.0) -> None:
    assert twin_power_off(twin.name)
    time.sleep(off_s)
    twin_boot(twin.name)


def begin(twin: TwinInfo, release: str, stop: str, deadline_s: float = DEADLINE_S, results: int = TRIAL_RESULTS) -> str:
    agent = f"{STATE}/releases/{release}/agent.pyz"
    args = [str(x) for x in (STATE, agent, release, stop, deadline_s, results, MAX_RESTARTS)]
    return on_twin(twin, PYTHON, "-c", BEGIN, *args)


def results_of(twin: TwinInfo, release: str, pid: str, since: float) -> int:
    done = twin_exec(twin.name, ["tail", "-n", "50", RESULTS_FILE])
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return sum(r.get("release") == release and str(r.get("pid")) == pid and r.get("ts", 0) >= since for r in records)


def serving_release(twin: TwinInfo, since: float) -> str:
    """``current`` is a whole release, and the service runs it and writes its results."""
    current = link(twin, "current")
    assert current is not None, "current points nowhere"
    release_dir = f"{STATE}/releases/{current}"
    release = json.loads(on_twin(twin, "cat", f"{release_dir}/release.json"))
    assert release["release"] == current
    digest = on_twin(twin, "sha256sum", f"{release_dir}/{release['model']}").split()[0]
    assert twin_exec(twin.name, ["test", "-f", f"{STATE}/blobs/sha256/{digest}"]).returncode == 0, (
        f"the model of {current} is not the blob it came from"
    )

    def serving() -> str | None:
        if twin_exec(twin.name, ["systemctl", "is-active", UNIT]).stdout.strip() != "active":
            return None
        pid = on_twin(twin, "systemctl", "show", "--property=MainPID", "--value", UNIT)
        return pid if results_of(twin, current, pid, since) >= 3 else None

    wait_for(f"the service serving {current} and writing results", serving, 60)
    return current


def assert_no_dangling_trial(twin: TwinInfo) -> dict[str, Any]:
    state = lifecycle_status(twin)
    trial = state["trial"]
    assert trial is None or trial["deadline"] > time.time(), f"a trial outlived its deadline: {trial}"
    return state


def trial_ended(twin: TwinInfo, deadline: float) -> dict[str, Any]:
    """Wait, past the trial's deadline if need be, for the trial to end."""

    def ended() -> dict[str, Any] | None:
        state = lifecycle_status(twin)
        return state if state["trial"] is None else None

    found: dict[str, Any] = wait_for(
        "the trial to end after the boot",
        ended,
        max(0.0, deadline - time.time()) + 15,
    )
    return found


def copy_release(twin: TwinInfo, release: str, copy: str, clip: Path | None = None) -> str:
    """A release like ``release`` under the id ``copy``: hard links to the same blobs, its own
    release.json, and ``clip`` as its media if given; moved into place whole."""
    folder = f"{STATE}/releases/{copy}"
    script = (
        f"set -e; cp -al {STATE}/releases/{release} {folder}.tmp; rm {folder}.tmp/release.json; "
        f'sed \'s/"release": "{release}"/"release": "{copy}"/\' {STATE}/releases/{release}/release.json '
        f"> {folder}.tmp/release.json"
    )
    on_twin(twin, "sh", "-c", script)
    if clip is not None:
        on_twin(twin, "rm", f"{folder}.tmp/media/clip.avi")
        # Through the overlay the twin's root is mounted on: nsenter sees none of this machine's files.
        shutil.copy(clip, STATE_ROOT / twin.name / "root" / f"{folder}.tmp/media/clip.avi".lstrip("/"))
    on_twin(twin, "sh", "-c", f"sync; mv {folder}.tmp {folder}")
    return copy


@pytest.fixture(scope="module")
def releases(power_twin: TwinInfo, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """The sample model provisioned and committed; a second release copied from it; and a slow
    one, copied too, whose clip runs at 1 frame a second, so it falls short on trial."""
    home = tmp_path_factory.mktemp("power-loss-home")
    shutil.copy(power_twin.known_hosts, home / "known_hosts")
    done = edgekit(*provision_args(power_twin, home / "known_hosts", "--json"), home=home)
    assert done.returncode == 0, done.stderr
    first = str(json.loads(done.stdout)["release"])
    assert lifecycle_status(power_twin)["current_state"] == "committed"
    second = copy_release(power_twin, first, f"{first[:-4]}b0b0")
    slow = copy_release(power_twin, first, f"{first[:-4]}5105", slow_clip(home))
    return first, second, slow


def settled(twin: TwinInfo, releases: tuple[str, str, str]) -> tuple[str, str]:
    """The committed release serving now, and the other healthy one, to activate."""
    state = assert_no_dangling_trial(twin)
    assert state["trial"] is None and state["current_state"] == "committed", state
    old = state["current"]
    return old, next(r for r in releases[:2] if r != old)


@pytest.mark.parametrize("stop", ["trial", "previous"])
def test_power_lost_before_the_switch_finished_goes_back(
    power_twin: TwinInfo, releases: tuple[str, str, str], stop: str
) -> None:
    """Cut after trial.json is written (stop "trial"), or after ``previous`` is switched:
    ``current`` still names the old release, and the boot's check ends the trial there."""
    old, new = settled(power_twin, releases)
    previous = link(power_twin, "previous")
    assert begin(power_twin, new, stop).startswith("stopped")
    assert link(power_twin, "current") == old
    assert link(power_twin, "previous") == (old if stop == "previous" else previous)
    cut = time.time()
    power_cycle(power_twin)
    assert serving_release(power_twin, cut) == old
    state = assert_no_dangling_trial(power_twin)
    assert state["trial"] is None
    assert (state["current"], state["committed"], state["current_state"]) == (old, old, "committed")
    rolled = state["last_rollback"]
    assert (rolled["release"], rolled["to"], rolled["by"]) == (new, old, "device"), rolled
    assert rolled["at"] >= cut and "did not finish" in rolled["reason"]


def hold_in_exec_start_pre(twin: TwinInfo) -> None:
    """A runtime drop-in (gone with /run at the boot) that holds the start after the trial check."""
    hold = f'ExecStartPre=+/bin/sh -c "touch {HELD_MARKER}; exec sleep infinity"'
    on_twin(twin, "mkdir", "-p", str(Path(HOLD_DROPIN).parent))
    on_twin(twin, "sh", "-c", f"printf '[Service]\\n%s\\n' '{hold}' > {HOLD_DROPIN}")
    on_twin(twin, "systemctl", "daemon-reload")


@pytest.mark.parametrize("step", ["current switched", "service starting", "ready, not committed"])
def test_power_lost_after_the_switch_continues_and_ends_the_trial(
    power_twin: TwinInfo, releases: tuple[str, str, str], step: str
) -> None:
    """Cut once ``current`` names the new release: before the restart, in ExecStartPre (after
    the trial check), or after READY before any check committed it. After the boot the trial
    goes on (its deadline has not passed), the service runs the new release, and the trial
    still ends by its deadline although its timer died with the boot: committed, as the
    release is healthy."""
    old, new = settled(power_twin, releases)
    assert begin(power_twin, new, "none") == "begun"
    assert (link(power_twin, "current"), link(power_twin, "previous")) == (new, old)
    deadline = float(lifecycle_status(power_twin)["trial"]["deadline"])
    if step == "service starting":
        hold_in_exec_start_pre(power_twin)
        on_twin(power_twin, "systemctl", "restart", "--no-block", UNIT)
        wait_for(
            "the start held in ExecStartPre",
            lambda: twin_exec(power_twin.name, ["test", "-e", HELD_MARKER]).returncode == 0,
            30,
        )
        assert lifecycle_status(power_twin)["trial"]["starts"] == 1
    elif step == "ready, not committed":
        on_twin(power_twin, "systemctl", "restart", UNIT)
    cut = time.time()
    power_cycle(power_twin)
    assert twin_exec(power_twin.name, ["test", "-e", HOLD_DROPIN]).returncode != 0
    # The boot waited for the camera's start: its ExecStartPre check counted the start and let
    # the trial go on, with its timer armed again for the time left.
    state = assert_no_dangling_trial(power_twin)
    assert state["current"] == new and state["trial"] is not None, state
    assert state["trial"]["starts"] == (1 if step == "current switched" else 2)
    assert on_twin(power_twin, "systemctl", "is-active", f"edgekit-trial-{new}.timer") == "active"
    assert serving_release(power_twin, cut) == new
    ended = trial_ended(power_twin, deadline)
    assert (ended["current"], ended["committed"], ended["current_state"]) == (new, new, "committed"), ended
    assert serving_release(power_twin, time.time()) == new


def test_power_off_past_the_deadline_ends_the_trial_at_the_boot(
    power_twin: TwinInfo, releases: tuple[str, str, str]
) -> None:
    """Cut right after the switch, and the power stays off past the deadline: the boot's
    ExecStartPre check rolls back to the committed release before the service starts."""
    old, new = settled(power_twin, releases)
    assert begin(power_twin, new, "none", deadline_s=2.0) == "begun"
    cut = time.time()
    power_cycle(power_twin, off_s=3.0)
    assert serving_release(power_twin, cut) == old
    state = assert_no_dangling_trial(power_twin)
    assert state["trial"] is None
    assert (state["current"], state["committed"], state["current_state"]) == (old, old, "committed")
    rolled = state["last_rollback"]
    assert (rolled["release"], rolled["to"], rolled["by"]) == (new, old, "device"), rolled
    assert rolled["reason"].startswith("its deadline passed before its service started again"), rolled


def test_power_lost_during_the_trial_of_a_release_that_falls_short_goes_back(
    power_twin: TwinInfo, releases: tuple[str, str, str]
) -> None:
    """Cut after READY of a release that runs but writes too few results: after the boot its
    trial goes on, and at the deadline the timer armed again at the start rolls it back and
    restarts the service, so the committed release serves again."""
    old, _ = settled(power_twin, releases)
    slow = releases[2]
    assert begin(power_twin, slow, "none") == "begun"
    deadline = float(lifecycle_status(power_twin)["trial"]["deadline"])
    on_twin(power_twin, "systemctl", "restart", UNIT)
    cut = time.time()
    power_cycle(power_twin)
    state = assert_no_dangling_trial(power_twin)
    assert state["current"] == slow and state["trial"]["starts"] == 2, state
    ended = trial_ended(power_twin, deadline)
    assert (ended["current"], ended["committed"], ended["current_state"]) == (old, old, "committed"), ended
    rolled = ended["last_rollback"]
    assert (rolled["release"], rolled["to"], rolled["by"]) == (slow, old, "device"), rolled
    assert rolled["reason"].startswith("it wrote only") and rolled["at"] >= deadline > cut, rolled
    # Restarted by the device onto the release it went back to.
    assert serving_release(power_twin, rolled["at"]) == old


def test_power_lost_while_the_service_loads_ends_the_trial_after_the_load(
    power_twin: TwinInfo, releases: tuple[str, str, str]
) -> None:
    """Cut while the new release loads (ExecStart runs, no READY yet), and it loads as long
    again after the boot, past its deadline: like an engine build, the trial waits for it (the
    timer's check extends the deadline and arms the next timer from inside its own service),
    then commits it once it writes its results."""
    old, new = settled(power_twin, releases)
    # A load of 10 s for the new release only, before the service's own ExecStart; on the disk,
    # so the boot loads as long. $$ is systemd's $.
    loading = (
        f'[Service]\nExecStart=\nExecStart=/bin/sh -c \'case "$$(readlink {STATE}/current)" in '
        f"*/{new}) sleep 10;; esac; exec {SERVE}'\n"
    )
    dropin = STATE_ROOT / power_twin.name / "root" / LOADING_DROPIN.lstrip("/")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(loading)
    try:
        on_twin(power_twin, "systemctl", "daemon-reload")
        assert begin(power_twin, new, "none", deadline_s=8.0, results=30) == "begun"
        first_deadline = float(lifecycle_status(power_twin)["trial"]["deadline"])
        on_twin(power_twin, "systemctl", "restart", "--no-block", UNIT)

        def loading_now() -> bool:
            shown = on_twin(power_twin, "systemctl", "show", "--property=ActiveState,SubState", UNIT)
            return shown.split() == ["ActiveState=activating", "SubState=start"]

        wait_for("the new release loading", loading_now, 30)
        cut = time.time()
        power_cycle(power_twin)
        # The boot waited for READY, after the deadline: the timer's check extended it meanwhile.
        state = assert_no_dangling_trial(power_twin)
        assert state["current"] == new and state["trial"] is not None, state
        assert float(state["trial"]["deadline"]) > first_deadline, state
        ended = trial_ended(power_twin, time.time() + 8.0)
        assert (ended["current"], ended["committed"], ended["current_state"]) == (new, new, "committed"), ended
        assert serving_release(power_twin, cut) == new
    finally:
        dropin.unlink()
        on_twin(power_twin, "systemctl", "daemon-reload")
