"""Release trials on the device: install, start, prove health, only then commit.

A release switched in is ``current`` on trial. It is committed once the camera service has
sent READY and written a number of results from it before a deadline; otherwise the last
committed release is switched back in. The same check decides for three callers:

- the host, which waits for the verdict after restarting the service;
- a transient timer armed with the trial, which fires at the deadline when no host is left;
- the camera unit's ``ExecStartPre`` (as root), at every start: a release that crash-loops
  is replaced once its restarts pass the limit, and a trial that outlived its deadline
  (power lost during it, the timer gone with the boot) ends at the next boot.

Every switch renames a temporary symlink over the old link and fsyncs the folder, so
power lost at any point leaves each link at a complete release. What happened is kept in
``lifecycle/``: one record per release, the trial, and the last rollback with its reason.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from typing import Any

from .errors import AgentError
from .files import fsync_dir, read_json, read_or_none, write_atomically

UNIT = "edgekit-camera.service"
RESULTS_FILE = "results/results.jsonl"
# Results are counted in the newest part of the results file; a trial needs far fewer.
RESULTS_TAIL_BYTES = 4 << 20
TRIAL_FILE = "trial.json"
# The site config (camera, source, sinks) is the device's, not the release's: each release's is
# kept when its trial begins and put back with it by a rollback, or the release gone back to
# would start with the failed one's (its source a media file only the failed release ships).
SITE_CONFIG = "/etc/edgekit/camera.json"
CONFIGS_DIR = "configs"
# The build unit's answers (edgekit/device/build.py), gate figures included.
BUILDS_DIR = "engines/builds"
LAST_ROLLBACK_FILE = "last-rollback.json"
# A trial waits this long at most for a service that is still loading (an engine build in the
# service itself); the service stops extending its start timeout after the same hour
# (edgekit/agent/service.py EXTEND_CAP_S, not imported: this module runs before numpy exists).
MAX_LOADING_S = 3600.0


class Device:
    """The state folder's releases, links and records (``/var/lib/edgekit``)."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.releases = os.path.join(state_dir, "releases")
        self.lifecycle = os.path.join(state_dir, "lifecycle")
        self.records = os.path.join(self.lifecycle, "releases")
        self.configs = os.path.join(self.lifecycle, CONFIGS_DIR)

    def link(self, name: str) -> str | None:
        """The release id a link (current, previous, committed) points at, or None."""
        try:
            target = os.readlink(os.path.join(self.state_dir, name))
        except OSError:
            return None
        return os.path.basename(target.rstrip("/")) or None

    def switch(self, name: str, release: str) -> None:
        """Point ``name`` at ``release``: a temporary link renamed over it, then the folder fsynced."""
        link = os.path.join(self.state_dir, name)
        temporary = f"{link}.tmp-{os.getpid()}"
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(os.path.join(self.releases, release), temporary)
        os.replace(temporary, link)
        fsync_dir(self.state_dir)

    def unlink(self, name: str) -> None:
        path = os.path.join(self.state_dir, name)
        if os.path.lexists(path):
            os.unlink(path)
            fsync_dir(self.state_dir)

    def exists(self, release: str) -> bool:
        return os.path.isfile(os.path.join(self.releases, release, "release.json"))

    def ids(self) -> list[str]:
        if not os.path.isdir(self.releases):
            return []
        # A folder being laid out (.tmp) or being removed by a prune (.removing) is no release.
        return sorted(
            name for name in os.listdir(self.releases) if not name.endswith((".tmp", ".removing")) and self.exists(name)
        )

    def record(self, release: str) -> dict[str, Any]:
        return read_json(os.path.join(self.records, release + ".json")) or {}

    def write_record(self, release: str, **changes: Any) -> dict[str, Any]:
        record = dict(self.record(release), **changes)
        _write_json(os.path.join(self.records, release + ".json"), record)
        return record

    def trial(self) -> dict[str, Any] | None:
        return read_json(os.path.join(self.lifecycle, TRIAL_FILE))

    def write_trial(self, trial: dict[str, Any]) -> None:
        _write_json(os.path.join(self.lifecycle, TRIAL_FILE), trial)

    def end_trial(self) -> None:
        path = os.path.join(self.lifecycle, TRIAL_FILE)
        if os.path.exists(path):
            os.unlink(path)
            fsync_dir(self.lifecycle)

    def last_rollback(self) -> dict[str, Any] | None:
        return read_json(os.path.join(self.lifecycle, LAST_ROLLBACK_FILE))


def begin(
    state_dir: str,
    release: str,
    deadline_s: float,
    results: int,
    max_restarts: int,
    now: float | None = None,
    restore_config: bool = False,
) -> dict[str, Any]:
    """Switch ``release`` in on trial; the service is restarted by the caller. A provision has
    just installed the site config the release goes on trial with, and it is kept for later
    rollbacks; a rollback through a trial (``restore_config``) puts back the one kept for it."""
    device = Device(state_dir)
    if not device.exists(release):
        raise AgentError("lifecycle", f"Release {release} is not on this device (no {device.releases}/{release}).")
    now = time.time() if now is None else now
    old = device.link("current")
    fallback = _fallback(device, release, old, now)
    if restore_config:
        _restore_config(device, release)
    else:
        _keep_config(device, release)
    trial = {
        "release": release,
        "fallback": fallback,
        "started": now,
        "deadline": now + deadline_s,
        "deadline_s": deadline_s,
        "results": results,
        "max_restarts": max_restarts,
        "starts": 0,
    }
    # The trial is written before the switch: power lost between them leaves a trial whose
    # release is not current, which the next check ends by switching to its fallback.
    device.write_trial(trial)
    device.write_record(release, state="on trial", trial_started=now)
    if old is not None and old != release:
        device.switch("previous", old)
    device.switch("current", release)
    _arm_timer(device, release, deadline_s)
    return status(state_dir)


def _fallback(device: Device, release: str, old: str | None, now: float) -> str | None:
    """The committed release to go back to if ``release`` fails its trial."""
    committed = device.link("committed")
    if committed is not None and committed != release and device.exists(committed):
        return committed
    # A device provisioned before trials existed: what served then counts as committed.
    if old is not None and old != release and device.exists(old) and not device.record(old):
        device.write_record(old, state="committed", committed_at=now, by="device", health={"note": "served before"})
        device.switch("committed", old)
        return old
    if old is not None and old != release and device.record(old).get("state") == "committed":
        return old
    return None


def check(state_dir: str, by: str, starting: bool = False, now: float | None = None) -> dict[str, Any]:
    """Decide the trial, if one runs: commit a release that proved healthy, roll back one that
    crash-loops or outlived its deadline; otherwise leave it running."""
    device = Device(state_dir)
    trial = device.trial()
    if trial is None:
        return status(state_dir)
    now = time.time() if now is None else now
    if starting:
        trial["starts"] = int(trial.get("starts", 0)) + 1
        if trial["starts"] == 1:
            # Results count from the release's own first start: re-trying the serving release
            # (a new config or runtime), its old process writes under the same id until then.
            trial["started"] = now
        device.write_trial(trial)
    release = trial["release"]
    if device.link("current") != release:
        # Power was lost between writing the trial and switching to it.
        return rollback(
            state_dir, "the switch to it did not finish", by, to=trial.get("fallback"), restart=not starting
        )
    produced = count_results(os.path.join(state_dir, RESULTS_FILE), release, float(trial["started"]))
    if produced >= int(trial["results"]):
        return commit(state_dir, release, {"results": produced, "seconds": round(now - trial["started"], 1)}, by)
    restarts = int(trial.get("starts", 0)) - 1
    if starting and restarts > int(trial["max_restarts"]):
        reason = f"it crashed {restarts} times on trial ({_exit_status(last_exit() or service_state())})"
        return rollback(state_dir, reason, by, restart=False)
    if now > float(trial["deadline"]):
        state = service_state()
        if _still_loading(state) and now < float(trial["started"]) + MAX_LOADING_S:
            # The service builds its engine itself (its key changed) and extends its start
            # timeout meanwhile: the trial waits with it, as systemd does.
            trial["deadline"] = now + float(trial["deadline_s"])
            device.write_trial(trial)
            _arm_timer(device, release, float(trial["deadline_s"]))
            return status(state_dir, produced)
        if starting:
            # Found at a start (the first after a power loss, or a restart after a crash): what
            # systemd shows is this start, in ExecStartPre, which tells nothing of the trial.
            reason = (
                "its deadline passed before its service started again (after a power loss or a crash), "
                f"with {produced} of the {trial['results']} results it needed"
            )
        else:
            reason = _why(state, produced, int(trial["results"]))
        return rollback(state_dir, reason, by, restart=not starting)
    if starting and not _timer_armed(release):
        # The transient timer lives in systemd's memory: a power loss during the trial took it,
        # and without it a trial that goes on after the boot is never decided. Armed again for
        # the time the trial has left (a restart while it waits leaves it alone).
        _arm_timer(device, release, max(0.0, float(trial["deadline"]) - now))
    return status(state_dir, produced)


def _still_loading(state: dict[str, str]) -> bool:
    """The main process runs but has not sent READY: loading the model, or building its engine."""
    return state.get("ActiveState") == "activating" and state.get("SubState") == "start"


def _why(state: dict[str, str], produced: int, needed: int) -> str:
    """Why a trial that reached its deadline failed, in the words the host reports."""
    active = state.get("ActiveState", "")
    if active == "activating":
        return "it sent no READY before its deadline"
    if active != "active":
        return f"it stopped ({_exit_status(state)})"
    if produced == 0:
        return "it wrote no results before its deadline"
    return f"it wrote only {produced} of the {needed} results it needed before its deadline"


def _exit_status(state: dict[str, str]) -> str:
    code, status_ = state.get("ExecMainCode", ""), state.get("ExecMainStatus", "")
    # ExecMainCode 1 is CLD_EXITED (an exit status), 2 and 3 a signal (CLD_KILLED, CLD_DUMPED).
    if code in ("2", "3"):
        return f"killed by signal {status_}"
    return f"exit status {status_ or 'unknown'}"


def refuse(state_dir: str, release: str, reason: str) -> dict[str, Any]:
    """Record that the gate refused ``release``: kept for inspection, never switched in."""
    device = Device(state_dir)
    if not device.exists(release):
        raise AgentError("lifecycle", f"Release {release} is not on this device (no {device.releases}/{release}).")
    device.write_record(release, state="failed gate", failed_at=time.time(), reason=reason, by="host")
    return status(state_dir)


def commit(state_dir: str, release: str, health: dict[str, Any], by: str) -> dict[str, Any]:
    device = Device(state_dir)
    trial = device.trial()
    if trial is not None and trial["release"] != release:
        raise AgentError("lifecycle", f"Release {release} is not on trial ({trial['release']} is).")
    if device.link("current") != release:
        raise AgentError("lifecycle", f"Release {release} is not current, so it cannot be committed.")
    device.write_record(release, state="committed", committed_at=time.time(), by=by, health=health)
    device.switch("committed", release)
    device.end_trial()
    _disarm_timer(release)
    return status(state_dir)


def rollback(state_dir: str, reason: str, by: str, to: str | None = None, restart: bool = True) -> dict[str, Any]:
    """Switch back to ``to`` (a committed release) or the trial's fallback, and record why."""
    device = Device(state_dir)
    trial = device.trial()
    if trial is None and to is None:
        # Decided already (the deadline timer or ExecStartPre got there first): nothing to undo.
        return status(state_dir)
    current = device.link("current")
    target = to if to is not None else (trial or {}).get("fallback")
    failed = trial["release"] if trial is not None else current
    now = time.time()
    if target is None or not device.exists(target):
        # Nothing committed to go back to (a first release): it is left as it is, marked failed.
        if failed is not None:
            device.write_record(failed, state="failed trial", failed_at=now, reason=reason, by=by)
        device.end_trial()
        if failed is not None:
            _disarm_timer(failed)
        return status(state_dir)
    if failed is not None and trial is not None:
        device.write_record(failed, state="rolled back", rolled_back_at=now, reason=reason, by=by)
    if current is not None and current != target:
        device.switch("previous", current)
    _restore_config(device, target)
    device.switch("current", target)
    _write_json(
        os.path.join(device.lifecycle, LAST_ROLLBACK_FILE),
        {"release": failed, "to": target, "at": now, "reason": reason, "by": by},
    )
    device.end_trial()
    if failed is not None:
        _disarm_timer(failed)
    if restart:
        # Not waited for: the caller may be the timer, or a host whose link is about to drop.
        _systemctl("restart", "--no-block", UNIT)
    return status(state_dir)


def _keep_config(device: Device, release: str) -> None:
    """A copy of the site config ``release`` goes on trial with (provision has just installed it)."""
    config = read_or_none(SITE_CONFIG)
    if config is not None:
        write_atomically(os.path.join(device.configs, release + ".json"), config)


def _restore_config(device: Device, release: str) -> None:
    """Put back the site config ``release`` was on trial with, if one was kept and it changed since."""
    kept = read_or_none(os.path.join(device.configs, release + ".json"))
    if kept is not None and kept != read_or_none(SITE_CONFIG):
        write_atomically(SITE_CONFIG, kept)
        # Read by the service's user; root's umask might not leave it so.
        os.chmod(SITE_CONFIG, 0o644)


def status(state_dir: str, produced: int | None = None) -> dict[str, Any]:
    """The links, the trial (with the results it has so far) and the last rollback."""
    device = Device(state_dir)
    trial = device.trial()
    if trial is not None:
        if produced is None:
            produced = count_results(os.path.join(state_dir, RESULTS_FILE), trial["release"], trial["started"])
        trial = dict(trial, produced=produced)
    current = device.link("current")
    manifest = read_json(os.path.join(device.releases, current, "release.json")) if current else None
    built = read_json(os.path.join(state_dir, BUILDS_DIR, f"{current}.json")) if current else None
    return {
        "current": current,
        "previous": device.link("previous"),
        "committed": device.link("committed"),
        "current_state": device.record(current).get("state") if current else None,
        "task": (manifest or {}).get("task"),
        # The figures the current release passed its gate with, from its build's answer.
        "gate": (built or {}).get("gate"),
        "committed_releases": [
            release for release in device.ids() if device.record(release).get("state") == "committed"
        ],
        "trial": trial,
        "last_rollback": device.last_rollback(),
    }


def count_results(path: str, release: str, since: float) -> int:
    """Result lines ``release`` wrote at or after ``since``, in the newest part of the file."""
    try:
        # The results file is the service user's: root follows no link and reads a bounded tail.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return 0
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - RESULTS_TAIL_BYTES))
            lines = handle.read(RESULTS_TAIL_BYTES).splitlines()
    except OSError:
        return 0
    count = 0
    for line in lines:
        # A cheap test first: most lines of a busy file belong to this release or are older.
        if release.encode() not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("release") == release and float(record.get("ts", 0)) >= since:
            count += 1
    return count


# systemd's "Main process exited" journal message, with EXIT_CODE and EXIT_STATUS fields (systemd 248 on).
PROCESS_EXIT_MESSAGE = "98e322203f7a4ed290d09fe03c09fe15"


def last_exit() -> dict[str, str]:
    """How the unit's main process last ended, from the journal, in ``service_state``'s terms.

    ExecStartPre needs it: by then systemd has reset ExecMainCode and ExecMainStatus for the
    start under way, so ``systemctl show`` says 0 whatever the crash was. {} if none is logged."""
    shown = _journalctl("--unit", UNIT, f"MESSAGE_ID={PROCESS_EXIT_MESSAGE}", "--lines", "1", "--output", "json")
    try:
        logged = json.loads(shown.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}
    codes = {"exited": "1", "killed": "2", "dumped": "3"}
    if not isinstance(logged, dict) or logged.get("EXIT_CODE") not in codes:
        return {}
    return {"ExecMainCode": codes[logged["EXIT_CODE"]], "ExecMainStatus": str(logged.get("EXIT_STATUS", ""))}


def service_state() -> dict[str, str]:
    shown = _systemctl("show", UNIT, "--property=ActiveState,SubState,Result,ExecMainCode,ExecMainStatus")
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def _timer_units(release: str) -> tuple[str, str]:
    """The two names a trial's timer takes in turn: the timer's own check (a service still
    loading at the deadline) arms the next one, and systemd refuses a transient unit named like
    one that still runs, so that one takes the other name."""
    unit = f"edgekit-trial-{release}"
    return unit, f"{unit}-again"


def _arm_timer(device: Device, release: str, deadline_s: float) -> None:
    """A transient timer that runs the check at the deadline, so a trial ends without a host."""
    first, other = _timer_units(release)
    unit = other if _own_unit() == f"{first}.service" else first
    _disarm_timer(release)
    agent = os.path.join(device.releases, release, "agent.pyz")
    _systemctl_run(
        f"--unit={unit}",
        f"--on-active={int(deadline_s) + 1}s",
        "--timer-property=AccuracySec=1s",
        f"--description=edgekit trial deadline of release {release}",
        "--",
        # The venv's interpreter, which runs this check too.
        sys.executable or "/usr/bin/python3",
        # Isolated: no user site-packages or PYTHON* variables in a check that runs as root.
        "-I",
        agent,
        "lifecycle",
        "check",
        "--by",
        "device",
        "--state-dir",
        device.state_dir,
    )


def _timer_armed(release: str) -> bool:
    """The trial's timer waits, or has fired (an elapsed timer stays active)."""
    return any(_systemctl("is-active", f"{unit}.timer").strip() == "active" for unit in _timer_units(release))


def _disarm_timer(release: str) -> None:
    own = _own_unit()
    for unit in _timer_units(release):
        units = [f"{unit}.timer", f"{unit}.service"]
        if own == f"{unit}.service":
            # The timer's own check: stopping its service would have systemd kill this very
            # process before what follows (a rollback's restart onto the release it went back
            # to, or the next timer). It ends by itself once the check returns.
            units.pop()
        _systemctl("stop", *units)
        _systemctl("reset-failed", *units)


def _own_unit() -> str:
    """The systemd service this process runs in, from its cgroup ("" outside one)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        for part in reversed(line.split(":", 2)[-1].split("/")):
            if part.endswith(".service"):
                return part
    return ""


def _systemctl(*args: str) -> str:
    """systemctl's output; a failure (a unit not loaded) is not an error here."""
    if shutil.which("systemctl") is None:
        return ""
    done = subprocess.run(["systemctl", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    return done.stdout.decode("utf-8", "replace")


def _journalctl(*args: str) -> str:
    if shutil.which("journalctl") is None:
        return ""
    done = subprocess.run(
        ["journalctl", "--no-pager", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False
    )
    return done.stdout.decode("utf-8", "replace")


def _systemctl_run(*args: str) -> None:
    if shutil.which("systemd-run") is None:
        return
    subprocess.run(["systemd-run", "--quiet", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _write_json(path: str, data: dict[str, Any]) -> None:
    write_atomically(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
