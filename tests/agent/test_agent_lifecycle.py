"""Release trials on the device: the links, the records and the verdicts, in a state folder of the test's own.

systemd is replaced by a recorder: the state folder is real, and so are the symlink switches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgekit.agent import lifecycle
from edgekit.agent.errors import AgentError


class Systemd:
    """Records systemctl and systemd-run calls, and answers ``systemctl show`` with ``state``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.state = {"ActiveState": "active", "ExecMainCode": "0", "ExecMainStatus": "0"}
        self.exits: list[dict[str, str]] = []

    def systemctl(self, *args: str) -> str:
        self.calls.append(("systemctl", *args))
        if args[0] == "show":
            return "".join(f"{key}={value}\n" for key, value in self.state.items())
        return ""

    def run(self, *args: str) -> None:
        self.calls.append(("systemd-run", *args))

    def journalctl(self, *args: str) -> str:
        """The journal's "Main process exited" messages, newest last, as ``--output json`` prints them."""
        return "".join(json.dumps(logged) + "\n" for logged in self.exits[-1:])


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Systemd:
    fake = Systemd()
    # Never this machine's /etc/edgekit/camera.json; a test that needs one makes it.
    monkeypatch.setattr(lifecycle, "SITE_CONFIG", str(tmp_path / "no-site-config.json"))
    monkeypatch.setattr(lifecycle, "_systemctl", fake.systemctl)
    monkeypatch.setattr(lifecycle, "_systemctl_run", fake.run)
    monkeypatch.setattr(lifecycle, "_journalctl", fake.journalctl)
    return fake


@pytest.fixture
def state(tmp_path: Path) -> Path:
    for release in ("a", "b", "c"):
        folder = tmp_path / "releases" / release
        folder.mkdir(parents=True)
        (folder / "release.json").write_text(json.dumps({"release": release}))
        (folder / "agent.pyz").write_bytes(b"")
    (tmp_path / "results").mkdir()
    return tmp_path


def serving(state: Path, release: str) -> None:
    """``release`` current as a device provisioned before trials left it: a link and no record."""
    os.symlink(state / "releases" / release, state / "current")


def results(state: Path, release: str, count: int, ts: float) -> None:
    with open(state / "results" / "results.jsonl", "a") as out:
        for frame in range(count):
            out.write(json.dumps({"ts": ts + frame * 0.01, "frame": frame, "release": release}) + "\n")


def begin(state: Path, release: str, now: float = 1000.0) -> dict:
    return lifecycle.begin(str(state), release, deadline_s=60, results=5, max_restarts=2, now=now)


def test_a_trial_begins_with_the_serving_release_as_its_fallback(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    answer = begin(state, "b")
    assert (answer["current"], answer["previous"], answer["committed"]) == ("b", "a", "a")
    assert answer["trial"]["fallback"] == "a" and answer["trial"]["deadline"] == 1060.0
    assert answer["current_state"] == "on trial"
    # The release that served before trials existed counts as committed.
    assert json.loads((state / "lifecycle" / "releases" / "a.json").read_text())["state"] == "committed"
    # The deadline is kept by systemd, without the host: a transient timer running the check.
    [armed] = [call for call in systemd.calls if call[0] == "systemd-run"]
    assert "--unit=edgekit-trial-b" in armed and "--on-active=61s" in armed
    agent = str(state / "releases" / "b" / "agent.pyz")
    # Isolated (-I): a check run as root reads none of the service user's site-packages.
    assert armed[armed.index("--") + 2 :] == (
        "-I",
        agent,
        "lifecycle",
        "check",
        "--by",
        "device",
        "--state-dir",
        str(state),
    )


def test_a_release_that_writes_its_results_is_committed(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    results(state, "a", 10, ts=1001.0)  # the old release's lines do not count
    results(state, "b", 3, ts=999.0)  # nor lines from before the trial
    assert lifecycle.check(str(state), "host", now=1010.0)["trial"]["produced"] == 0
    results(state, "b", 5, ts=1002.0)
    answer = lifecycle.check(str(state), "host", now=1010.0)
    assert (answer["current"], answer["committed"], answer["trial"], answer["current_state"]) == (
        "b",
        "b",
        None,
        "committed",
    )
    record = json.loads((state / "lifecycle" / "releases" / "b.json").read_text())
    assert record["health"]["results"] == 5 and record["by"] == "host"
    assert ("systemctl", "stop", "edgekit-trial-b.timer", "edgekit-trial-b.service") in systemd.calls


@pytest.mark.parametrize(
    ("service", "written", "reason"),
    [
        ({"ActiveState": "active"}, 0, "it wrote no results before its deadline"),
        ({"ActiveState": "active"}, 2, "it wrote only 2 of the 5 results it needed"),
        ({"ActiveState": "activating"}, 0, "it sent no READY before its deadline"),
        ({"ActiveState": "failed", "ExecMainCode": "1", "ExecMainStatus": "1"}, 0, "it stopped (exit status 1)"),
        ({"ActiveState": "failed", "ExecMainCode": "2", "ExecMainStatus": "9"}, 0, "it stopped (killed by signal 9)"),
    ],
)
def test_a_trial_past_its_deadline_is_rolled_back_with_why(
    state: Path, systemd: Systemd, service: dict, written: int, reason: str
) -> None:
    serving(state, "a")
    begin(state, "b")
    results(state, "b", written, ts=1001.0)
    systemd.state.update(service)
    assert lifecycle.check(str(state), "device", now=1059.0)["trial"] is not None
    answer = lifecycle.check(str(state), "device", now=1061.0)
    assert (answer["current"], answer["previous"], answer["committed"], answer["trial"]) == ("a", "b", "a", None)
    assert answer["last_rollback"]["reason"].startswith(reason) and answer["last_rollback"]["by"] == "device"
    assert json.loads((state / "lifecycle" / "releases" / "b.json").read_text())["state"] == "rolled back"
    # The service is restarted on the committed release, without waiting (the host may be gone).
    assert ("systemctl", "restart", "--no-block", "edgekit-camera.service") in systemd.calls


def test_a_trial_waits_for_a_service_still_building_its_engine(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    systemd.state.update(ActiveState="activating", SubState="start")
    answer = lifecycle.check(str(state), "device", now=1061.0)
    assert answer["current"] == "b" and answer["trial"]["deadline"] == 1121.0
    assert sum(call[0] == "systemd-run" for call in systemd.calls) == 2
    # Not for ever: past the hour a load may take, the trial ends.
    assert lifecycle.check(str(state), "device", now=1000.0 + 3601)["current"] == "a"


def test_a_release_that_crash_loops_is_rolled_back_at_its_next_start(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    # In ExecStartPre systemd shows the start under way (its exit status reset to 0); how the
    # last process ended is in the journal only.
    systemd.state.update(ActiveState="activating", ExecMainCode="0", ExecMainStatus="0")
    for _ in range(3):  # the first start and two restarts: within max_restarts
        assert lifecycle.check(str(state), "device", starting=True, now=1001.0)["current"] == "b"
        systemd.exits.append({"EXIT_CODE": "exited", "EXIT_STATUS": "3", "UNIT": lifecycle.UNIT})
    answer = lifecycle.check(str(state), "device", starting=True, now=1002.0)
    assert answer["current"] == "a"
    assert answer["last_rollback"]["reason"] == "it crashed 3 times on trial (exit status 3)"
    # ExecStartPre switched the link before ExecStart runs: no restart of the unit being started.
    assert not any(call[:2] == ("systemctl", "restart") for call in systemd.calls)


def test_power_lost_before_the_switch_finished_goes_back(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    # As if the power went before `current` was renamed: the trial is written, the link is old.
    lifecycle.Device(str(state)).switch("current", "a")
    answer = lifecycle.check(str(state), "device", starting=True, now=1001.0)
    assert answer["current"] == "a" and answer["trial"] is None
    assert answer["last_rollback"]["reason"] == "the switch to it did not finish"


def test_a_first_release_with_nothing_to_go_back_to_is_marked_failed(state: Path, systemd: Systemd) -> None:
    begin(state, "a")
    answer = lifecycle.check(str(state), "device", now=2000.0)
    assert (answer["current"], answer["current_state"], answer["trial"]) == ("a", "failed trial", None)


def test_a_committed_release_is_the_fallback_of_the_next_trials(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    results(state, "b", 5, ts=1001.0)
    lifecycle.check(str(state), "host", now=1002.0)
    begin(state, "c", now=1100.0)
    # c fails: back to b, the last committed release, not to a.
    assert lifecycle.check(str(state), "device", now=1200.0)["current"] == "b"


def test_only_the_release_on_trial_can_be_committed(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    with pytest.raises(AgentError, match="Release c is not on trial"):
        lifecycle.commit(str(state), "c", {}, "host")
    with pytest.raises(AgentError, match="Release d is not on this device"):
        begin(state, "d")


def test_links_are_switched_by_renaming_a_temporary_link(state: Path, systemd: Systemd, monkeypatch) -> None:
    renamed = []
    real = os.replace
    monkeypatch.setattr(lifecycle.os, "replace", lambda src, dst: (renamed.append((src, dst)), real(src, dst)))
    lifecycle.Device(str(state)).switch("current", "a")
    [(source, target)] = renamed
    assert target == str(state / "current") and ".tmp-" in source and os.readlink(target).endswith("/a")


def test_a_crash_by_a_signal_is_named_from_the_journal(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    systemd.exits.append({"EXIT_CODE": "dumped", "EXIT_STATUS": "11"})
    for _ in range(3):
        lifecycle.check(str(state), "device", starting=True, now=1001.0)
    answer = lifecycle.check(str(state), "device", starting=True, now=1002.0)
    assert answer["last_rollback"]["reason"] == "it crashed 3 times on trial (killed by signal 11)"


def test_a_rollback_puts_back_the_site_config_the_release_went_on_trial_with(
    state: Path, systemd: Systemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """camera.json is the device's, rewritten by each provision: the release gone back to must
    start with its own (its source may be a media file only it ships), not the failed one's."""
    config = state / "etc" / "camera.json"
    config.parent.mkdir()
    monkeypatch.setattr(lifecycle, "SITE_CONFIG", str(config))
    config.write_text('{"source": {"uri": "file:///var/lib/edgekit/current/media/a.avi"}}\n')
    begin(state, "a")
    results(state, "a", 5, ts=1000.5)
    assert lifecycle.check(str(state), "host", now=1001.0)["committed"] == "a"
    config.write_text('{"source": {"uri": "file:///var/lib/edgekit/current/media/b.avi"}}\n')
    config.chmod(0o600)
    begin(state, "b", now=1010.0)
    answer = lifecycle.check(str(state), "device", now=1071.0)
    assert (answer["current"], answer["last_rollback"]["to"]) == ("a", "a")
    assert "media/a.avi" in config.read_text()
    assert config.stat().st_mode & 0o777 == 0o644
    # The rolled-back release's own config is kept too, for a later trial of it.
    assert "media/b.avi" in (state / "lifecycle" / "configs" / "b.json").read_text()


def test_lifecycle_commands_wait_for_each_other(state: Path, systemd: Systemd) -> None:
    """The host's check, the deadline timer and ExecStartPre may decide at the same moment."""
    import threading

    from edgekit.agent.__main__ import main
    from edgekit.agent.files import locked

    finished = threading.Event()
    waiting = threading.Thread(
        target=lambda: (main(["lifecycle", "status", "--state-dir", str(state)]), finished.set())
    )
    with locked(str(state / "lifecycle" / ".lock")):
        waiting.start()
        assert not finished.wait(0.3)
    assert finished.wait(5)
    waiting.join()


def test_a_release_the_gate_refused_is_kept_as_failed_gate_until_it_goes_on_trial(
    state: Path, systemd: Systemd
) -> None:
    serving(state, "a")
    answer = lifecycle.refuse(str(state), "b", "The int8 model's top-1 agreement with FP32 is 80.0% ...")
    assert answer["current"] == "a"
    record = lifecycle.Device(str(state)).record("b")
    assert (record["state"], record["reason"]) == (
        "failed gate",
        "The int8 model's top-1 agreement with FP32 is 80.0% ...",
    )
    # Provisioned again with a gate it passes (another --gate-threshold), it goes on trial as any release.
    assert begin(state, "b")["current_state"] == "on trial"


def test_a_host_rollback_after_the_device_decided_changes_nothing(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    lifecycle.check(str(state), "device", now=2000.0)  # the timer rolled back first
    before = lifecycle.status(str(state))
    assert lifecycle.rollback(str(state), "it sent no READY", "host") == before
    assert lifecycle.Device(str(state)).record("a")["state"] == "committed"


def test_a_serving_release_tried_again_counts_only_its_new_process_results(state: Path, systemd: Systemd) -> None:
    serving(state, "a")
    begin(state, "b")
    results(state, "b", 5, ts=1001.0)
    lifecycle.check(str(state), "host", now=1002.0)  # b committed
    # b again (a new site config): its old process writes on until the restart reaches ExecStartPre.
    begin(state, "b", now=1100.0)
    results(state, "b", 5, ts=1101.0)
    assert lifecycle.check(str(state), "device", starting=True, now=1102.0)["trial"]["produced"] == 0
    results(state, "b", 5, ts=1103.0)
    assert lifecycle.check(str(state), "host", now=1104.0)["current_state"] == "committed"


def test_results_are_read_from_a_regular_file_only(state: Path, systemd: Systemd) -> None:
    # The results folder is the service user's: a link to a device file must not hang root's check.
    os.symlink("/dev/zero", state / "results" / "results.jsonl")
    assert lifecycle.count_results(str(state / "results" / "results.jsonl"), "b", 0.0) == 0
