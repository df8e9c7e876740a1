"""End to end: release trials on a twin of their own, under real systemd.

A release is switched in on trial and committed only once the service sends READY and writes
the results it must before its deadline. A release that exits at start, or that runs but
writes too few results, is rolled back by provision with one sentence; with the host gone,
the device rolls back by itself: the unit's ExecStartPre once a crash loop passes its
restart limit, the transient timer at the deadline for a release that runs but falls short.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
from test_camera_twin import wait_for
from test_provision_twin import SAMPLES, edgekit, edgekit_process, on_twin, provision_args

from edgekit.twin import TwinInfo, twin_exec

pytestmark = pytest.mark.e2e
UNIT = "edgekit-camera.service"
STATE = "/var/lib/edgekit"
RESULTS = f"{STATE}/results/results.jsonl"
PYTHON = f"{STATE}/venv/bin/python"
# Short trials keep the module within minutes; the sample clip serves 30 results a second.
TRIAL = ("--trial-results", "30", "--trial-deadline", "15")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trials-home")


@pytest.fixture(scope="module")
def releases() -> dict[str, str]:
    """The release ids the tests make, by role, for the tests after them."""
    return {}


def provision(twin: TwinInfo, home: Path, source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = provision_args(twin, home / "known_hosts", "--accept-new-host-key", *TRIAL, *extra)
    args[args.index("--source") + 1] = str(source)
    return edgekit(*args, home=home)


def not_a_video(home: Path) -> Path:
    """A file OpenCV cannot open: the service refuses the source at start and exits 1."""
    path = home / "not-a-video.avi"
    path.write_text("this is not a video\n")
    return path


def slow_clip(home: Path) -> Path:
    """The sample clip's first frames at 1 frame a second: READY after the first frame, then far
    fewer than 30 results in 15 s (the service paces a file to its frame rate)."""
    path = home / "slow-clip.avi"
    if not path.exists():
        capture = cv2.VideoCapture(str(SAMPLES / "clip.avi"))
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 1, (128, 128))
        for _ in range(60):
            ok, frame = capture.read()
            assert ok
            writer.write(frame)
        writer.release()
        capture.release()
    return path


def failure(done: subprocess.CompletedProcess[str]) -> str:
    """The ActivationFailed sentence, unwrapped from the terminal's lines."""
    assert done.returncode == 7, done.stderr
    assert "Traceback" not in done.stderr
    text = " ".join(done.stderr.split())
    match = re.search(r"ActivationFailed: (.*)$", text)
    assert match, done.stderr
    return match.group(1)


def link(twin: TwinInfo, name: str) -> str:
    return os.path.basename(on_twin(twin, "readlink", f"{STATE}/{name}").rstrip("/"))


def record(twin: TwinInfo, release: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(on_twin(twin, "cat", f"{STATE}/lifecycle/releases/{release}.json"))
    return answer


def last_rollback(twin: TwinInfo) -> dict[str, Any] | None:
    done = twin_exec(twin.name, ["cat", f"{STATE}/lifecycle/last-rollback.json"])
    return json.loads(done.stdout) if done.returncode == 0 else None


def unit(twin: TwinInfo) -> dict[str, str]:
    shown = on_twin(twin, "systemctl", "show", UNIT, "--property=MainPID,NRestarts,ActiveState,SubState")
    return dict(line.split("=", 1) for line in shown.splitlines())


def serves(twin: TwinInfo, release: str) -> None:
    """The service is active, from ``release``, and its results keep arriving."""

    def fresh() -> bool:
        state = unit(twin)
        if state["ActiveState"] != "active" or link(twin, "current") != release:
            return False
        line = twin_exec(twin.name, ["tail", "-n", "1", RESULTS]).stdout.strip()
        try:
            newest = json.loads(line)
        except ValueError:
            return False
        return bool(newest["release"] == release and str(newest["pid"]) == state["MainPID"])

    wait_for(f"results from release {release}", fresh, 60)
    before = json.loads(on_twin(twin, "tail", "-n", "1", RESULTS))
    time.sleep(1)
    after = json.loads(on_twin(twin, "tail", "-n", "1", RESULTS))
    assert after["release"] == release and after["frame"] > before["frame"], (before, after)


def assert_rolled_back(twin: TwinInfo, failed: str, to: str, by: str, reason: str) -> dict[str, Any]:
    assert link(twin, "current") == to
    assert link(twin, "committed") == to
    assert link(twin, "previous") == failed
    assert twin_exec(twin.name, ["test", "-e", f"{STATE}/lifecycle/trial.json"]).returncode != 0
    rolled = last_rollback(twin)
    assert rolled is not None
    assert (rolled["release"], rolled["to"], rolled["by"]) == (failed, to, by), rolled
    assert reason in rolled["reason"], rolled
    kept = record(twin, failed)
    assert (kept["state"], kept["by"], kept["reason"]) == ("rolled back", by, rolled["reason"]), kept
    # The deadline timer went with the trial.
    timers = on_twin(twin, "systemctl", "list-units", "--all", "--no-legend", "edgekit-trial-*")
    assert failed not in timers, timers
    serves(twin, to)
    return rolled


def test_a_healthy_release_is_committed_with_its_health_figures(
    trials_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    done = provision(trials_twin, home, SAMPLES / "clip.avi", "--json")
    assert done.returncode == 0, done.stderr
    assert "starting the service on trial: READY, then 30 results in 15 s" in done.stderr
    rid = json.loads(done.stdout)["release"]
    releases["good"] = rid
    assert on_twin(trials_twin, "test", "-f", f"{STATE}/releases/{rid}/release.json") == ""
    kept = record(trials_twin, rid)
    assert (kept["state"], kept["by"]) == ("committed", "host"), kept
    assert kept["health"]["results"] >= 30 and 0 < kept["health"]["seconds"] <= 15, kept
    assert kept["committed_at"] >= kept["trial_started"]
    assert link(trials_twin, "current") == link(trials_twin, "committed") == rid
    assert twin_exec(trials_twin.name, ["test", "-e", f"{STATE}/lifecycle/trial.json"]).returncode != 0
    assert last_rollback(trials_twin) is None
    serves(trials_twin, rid)


def test_a_release_whose_service_exits_at_start_is_rolled_back_by_provision(
    trials_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    good = releases["good"]
    done = provision(trials_twin, home, not_a_video(home))
    sentence = failure(done)
    match = re.fullmatch(
        rf"Release (\S+) was rolled back on {re.escape(trials_twin.target)} because it sent no READY \((.+)\); "
        rf"release {good} is serving again \(see `edgekit logs {re.escape(trials_twin.target)}`\)\.",
        sentence,
    )
    assert match, sentence
    bad = match.group(1)
    assert bad != good
    assert "could not open the video" in match.group(2), sentence
    releases["exits"] = bad
    assert_rolled_back(trials_twin, bad, good, "host", "it sent no READY")


def test_a_release_that_writes_too_few_results_is_rolled_back_by_provision(
    trials_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    good = releases["good"]
    started = time.monotonic()
    done = provision(trials_twin, home, slow_clip(home))
    sentence = failure(done)
    match = re.fullmatch(
        rf"Release (\S+) was rolled back on {re.escape(trials_twin.target)} because it wrote only (\d+) of the 30 "
        rf"results it needed before its deadline; release {good} is serving again \(see `edgekit logs "
        rf"{re.escape(trials_twin.target)}`\)\.",
        sentence,
    )
    assert match, sentence
    slow = match.group(1)
    assert 1 <= int(match.group(2)) < 30, sentence
    assert "on trial: " in done.stderr and " results, " in done.stderr
    assert time.monotonic() - started >= 15
    releases["slow"] = slow
    assert_rolled_back(trials_twin, slow, good, "host", "it wrote only")


def ships(twin: TwinInfo, release: str, media: str) -> bool:
    return twin_exec(twin.name, ["test", "-f", f"{STATE}/releases/{release}/media/{media}"]).returncode == 0


def agent(twin: TwinInfo, release: str, *args: str) -> dict[str, Any]:
    """The release's agent run on the twin directly, as root: no host, no SSH."""
    answer: dict[str, Any] = json.loads(
        on_twin(twin, PYTHON, f"{STATE}/releases/{release}/agent.pyz", "lifecycle", *args)
    )
    return answer


def test_the_device_rolls_back_a_crash_looping_release_by_itself(
    trials_twin: TwinInfo, releases: dict[str, str]
) -> None:
    """The release that exits at start, switched in on trial with no host to watch: systemd restarts
    it every 5 s, and the unit's ExecStartPre switches back once the restarts pass the limit."""
    good, bad = releases["good"], releases["exits"]
    started = time.monotonic()
    begun = agent(
        trials_twin, bad, "begin", "--release", bad, "--deadline-s", "120", "--results", "30", "--max-restarts", "2"
    )
    assert begun["current"] == bad and begun["trial"]["fallback"] == good, begun
    on_twin(trials_twin, "systemctl", "restart", "--no-block", UNIT)
    # Starts 1 to 3 fail (restarts 0 to 2); the 4th start's check sees 3 restarts > 2 and switches.
    wait_for("the device's rollback", lambda: (last_rollback(trials_twin) or {}).get("release") == bad, 60)
    took = time.monotonic() - started
    assert took < 60, took
    rolled = assert_rolled_back(trials_twin, bad, good, "device", "it crashed 3 times on trial (exit status 1)")
    assert rolled["reason"] == "it crashed 3 times on trial (exit status 1)", rolled
    # Well before the 120 s deadline: the timer did not decide.
    assert time.monotonic() - started < 120
    # The check at each start answers no one: nothing of it among the service's own journal lines.
    own = on_twin(trials_twin, "journalctl", "-u", UNIT, "-t", "edgekit-camera", "-o", "cat", "--no-pager")
    assert "could not open the video" in own and '"current_state"' not in own


def test_the_device_rolls_back_at_the_deadline_with_the_host_gone(
    trials_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    """provision of the slow release is killed once the trial has begun: the transient timer's
    check at the deadline switches back, with no host call at all."""
    good = releases["good"]
    args = provision_args(trials_twin, home / "known_hosts", *TRIAL)
    args[args.index("--source") + 1] = str(slow_clip(home))
    process = edgekit_process(
        *args, home=home, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True
    )
    seen = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if "starting the service on trial" in line:
                break
        else:
            raise AssertionError("".join(seen))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    cut = time.monotonic()
    trial = json.loads(on_twin(trials_twin, "cat", f"{STATE}/lifecycle/trial.json"))
    # The slow release again (a new id only if the agent's code changed meanwhile).
    slow = trial["release"]
    assert ships(trials_twin, slow, "slow-clip.avi") and trial["fallback"] == good, trial
    assert link(trials_twin, "current") == slow
    timers = on_twin(trials_twin, "systemctl", "list-timers", "--all", "--no-legend", f"edgekit-trial-{slow}.timer")
    assert f"edgekit-trial-{slow}.timer" in timers, timers
    # The deadline is 15 s after begin; the timer fires a second after it.
    wait_for("the device's rollback", lambda: (last_rollback(trials_twin) or {}).get("release") == slow, 30)
    assert time.monotonic() - cut < 30
    rolled = assert_rolled_back(trials_twin, slow, good, "device", "it wrote only")
    assert re.fullmatch(r"it wrote only \d+ of the 30 results it needed before its deadline", rolled["reason"])
    assert rolled["at"] >= trial["deadline"], (rolled, trial)


def test_provision_again_after_a_rolled_back_trial_tries_the_release_again(
    trials_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    """The release is on the device already; it goes on trial afresh and, still broken, is rolled
    back again with the same sentence. (Its id is the first run's unless the agent's code changed.)"""
    good = releases["good"]
    done = provision(trials_twin, home, not_a_video(home))
    sentence = failure(done)
    match = re.match(
        rf"Release (\S+) was rolled back on {re.escape(trials_twin.target)} because it sent no READY \(", sentence
    )
    assert match, sentence
    bad = match.group(1)
    assert ships(trials_twin, bad, "not-a-video.avi")
    assert "starting the service on trial" in done.stderr
    assert_rolled_back(trials_twin, bad, good, "host", "it sent no READY")


def ssh_args(twin: TwinInfo, home: Path) -> list[str]:
    return [twin.target, "--identity", twin.identity, "--known-hosts", str(home / "known_hosts"), "--no-ssh-config"]


def test_rollback_goes_back_and_forth_through_trials_and_status_shows_it(
    trials_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    good = releases["good"]
    # A second healthy release: the sample clip under another name is another release file.
    renamed = home / "clip-again.avi"
    renamed.write_bytes((SAMPLES / "clip.avi").read_bytes())
    done = provision(trials_twin, home, renamed, "--json")
    assert done.returncode == 0, done.stderr
    newer = json.loads(done.stdout)["release"]
    assert link(trials_twin, "previous") == good

    back = edgekit("rollback", *ssh_args(trials_twin, home), *TRIAL, "--json", home=home)
    assert back.returncode == 0, back.stderr
    answer = json.loads(back.stdout)
    assert (answer["target"], answer["left"], answer["current"], answer["committed"]) == (good, newer, good, good)
    serves(trials_twin, good)

    forth = edgekit("rollback", *ssh_args(trials_twin, home), "--to", newer, *TRIAL, home=home)
    assert forth.returncode == 0, forth.stderr
    assert f"rolled back {good} -> {newer}" in " ".join(forth.stdout.split())
    serves(trials_twin, newer)

    # A release that was rolled back never proved healthy: no target, and nothing changes.
    refused = edgekit("rollback", *ssh_args(trials_twin, home), "--to", releases["exits"], home=home)
    assert refused.returncode == 2 and "never proved healthy on trial" in refused.stderr, refused.stderr
    assert link(trials_twin, "current") == newer

    shown = edgekit("status", *ssh_args(trials_twin, home), "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)["lifecycle"]
    assert (state["current"], state["current_state"], state["previous"], state["task"]) == (
        newer,
        "committed",
        good,
        "classify",
    )
    assert state["gate"]["top1_agreement"] >= 0.99 and state["trial"] is None
    assert state["last_rollback"]["by"] == "host" and good in state["committed_releases"]
    table = edgekit("status", *ssh_args(trials_twin, home), home=home)
    assert f"{newer} committed" in " ".join(table.stdout.split()), table.stdout


def test_a_release_the_gate_refuses_is_kept_as_failed_gate_and_never_switched_in(
    trials_twin: TwinInfo, home: Path
) -> None:
    serving_before = link(trials_twin, "current")
    renamed = home / "clip-strict.avi"
    renamed.write_bytes((SAMPLES / "clip.avi").read_bytes())
    # No INT8 model agrees with FP32 on every one of 360 digits here: a gate of 100 % refuses it.
    done = provision(trials_twin, home, renamed, "--gate-threshold", "1.0")
    assert done.returncode == 6 and "GateFailed" in done.stderr, done.stderr
    listed = edgekit("releases", *ssh_args(trials_twin, home), "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    [refused] = [entry for entry in json.loads(listed.stdout)["releases"] if entry["state"] == "failed gate"]
    assert "below the 100% gate" in refused["reason"]
    assert link(trials_twin, "current") == serving_before != refused["release"]
