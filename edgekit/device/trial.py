"""Release trials, from the host: switch a release in on trial, wait for the device's verdict.

The device decides (edgekit/agent/lifecycle.py) with the same check whether the host asks
or its own deadline timer does, so a host that goes away mid-trial changes nothing: the
release is still committed or rolled back, by the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.device.agent import json_answer, last_stderr_line
from edgekit.device.answers import GateReport
from edgekit.device.layout import STATE_DIR, VENV_LINK, release_dir
from edgekit.device.wire import parse
from edgekit.errors import DeviceError, agent_failure
from edgekit.ssh.seam import Connection

POLL_S = 1.0


@dataclass(frozen=True)
class TrialPolicy:
    """What a release must show to be committed: READY, then ``results`` results within
    ``deadline_s`` of the switch; more than ``max_restarts`` restarts on trial is a crash loop."""

    results: int = 30
    deadline_s: float = 120.0
    max_restarts: int = 3


@dataclass(frozen=True)
class Trial:
    release: str
    # The committed release it falls back to; None for a first release.
    fallback: str | None
    started: float
    deadline: float
    results: int
    max_restarts: int
    starts: int
    # Results the release has written so far.
    produced: int


@dataclass(frozen=True)
class Rollback:
    release: str | None
    to: str
    at: float
    reason: str
    # "host" or "device": who decided.
    by: str


@dataclass(frozen=True)
class Lifecycle:
    """The device's links, the release on trial and the last rollback (agent ``lifecycle``)."""

    current: str | None
    previous: str | None
    committed: str | None
    # The current release's state: on trial, committed, rolled back, failed trial; None before trials.
    current_state: str | None
    trial: Trial | None
    last_rollback: Rollback | None
    # The current release's task and the figures its gate measured on the device.
    task: str | None = None
    gate: GateReport | None = None
    # Releases that proved healthy on trial: what a rollback may go back to.
    committed_releases: list[str] = field(default_factory=list)


def lifecycle(conn: Connection, agent_release: str, *args: str) -> Lifecycle:
    """Run ``agent.pyz lifecycle ARGS`` of ``agent_release`` as root and read its answer."""
    return parse(Lifecycle, lifecycle_answer(conn, agent_release, *args), "the device's release lifecycle answer")


def lifecycle_answer(conn: Connection, agent_release: str, *args: str) -> dict[str, Any]:
    """The JSON answer of ``agent.pyz lifecycle ARGS`` of ``agent_release``, run as root; its error raised."""
    result = conn.run(
        [f"{VENV_LINK}/bin/python", f"{release_dir(agent_release)}/agent.pyz", "lifecycle", *args],
        sudo=True,
        check=False,
    )
    answer = json_answer(result)
    if answer is None:
        raise DeviceError(
            f"The release lifecycle on {conn.target} gave no answer ({last_stderr_line(result)}); "
            "re-run edgekit provision."
        )
    if "error" in answer:
        error = answer["error"]
        raise agent_failure(str(error.get("kind")), f"On {conn.target}: {error.get('message', error)}")
    return answer


def begin(conn: Connection, rid: str, policy: TrialPolicy, restore_config: bool = False) -> Lifecycle:
    """``rid`` switched in on trial with the site config just installed, or, going back to it
    (``restore_config``), with the one it went on trial with before."""
    return lifecycle(
        conn,
        rid,
        "begin",
        "--release",
        rid,
        "--deadline-s",
        str(policy.deadline_s),
        "--results",
        str(policy.results),
        "--max-restarts",
        str(policy.max_restarts),
        *(["--restore-config"] if restore_config else []),
    )


def rollback(conn: Connection, rid: str, reason: str, to: str | None = None) -> Lifecycle:
    return lifecycle(conn, rid, "rollback", "--reason", reason, *(["--to", to] if to else []))


def refuse(conn: Connection, rid: str, reason: str) -> Lifecycle:
    return lifecycle(conn, rid, "refuse", "--release", rid, "--reason", reason)


def verdict(
    conn: Connection,
    rid: str,
    on_progress: Callable[[Trial], None] = lambda trial: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Lifecycle:
    """Ask the device's check until the trial of ``rid`` ends, committed or rolled back."""
    while True:
        state = lifecycle(conn, rid, "check", "--by", "host", "--state-dir", STATE_DIR)
        if state.trial is None or state.trial.release != rid:
            return state
        on_progress(state.trial)
        sleep(POLL_S)
