"""The device's releases, listed and pruned from the host (the agent's ``lifecycle list|prune``,
edgekit/agent/inventory.py), asked of the current release's agent."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgekit.device.answers import GateReport
from edgekit.device.layout import STATE_DIR
from edgekit.device.trial import lifecycle_answer
from edgekit.device.wire import parse
from edgekit.errors import UsageError
from edgekit.ssh.seam import Connection

# Committed releases a prune keeps, besides current, previous, committed and one on trial.
KEEP = 3


@dataclass(frozen=True)
class Release:
    release: str
    # The folder's modification time: when its files were laid out.
    created: float
    # From its release.json: the served file, the source model's and calibration set's sha256.
    model: str | None
    onnx_sha256: str | None
    calibration_sha256: str | None
    precision: str | None
    backend: str | None
    task: str | None
    # The figures its build measured on the device against FP32, or why the build failed.
    gate: GateReport | None
    build_error: str | None
    # Which of the links current, previous and committed point at it.
    links: list[str]
    # Its trial's outcome: on trial, committed, rolled back, failed trial; None when it has no
    # record (laid out but never on trial, or served before trials); reason and by for the last two.
    state: str | None
    reason: str | None
    by: str | None
    trial_started: float | None
    committed_at: float | None
    rolled_back_at: float | None
    failed_at: float | None
    # Its files' sizes; shared_bytes of them are hard links to the same blob as another release's.
    bytes: int
    shared_bytes: int

    def measured(self) -> tuple[str, float | None] | None:
        """The gate's measure and figure in this release's task's terms (GateReport.measured)."""
        return None if self.gate is None or self.task is None else self.gate.measured(self.task)

    def to_dict(self) -> dict[str, Any]:
        measure, figure = self.measured() or (None, None)
        return {**asdict(self), "measure": measure, "figure": figure}


@dataclass(frozen=True)
class Releases:
    target: str
    # Newest first.
    releases: list[Release]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "releases": [release.to_dict() for release in self.releases]}


@dataclass(frozen=True)
class Kept:
    release: str
    # current, previous, committed, on trial, the trial's fallback, one of the N newest
    # committed, or new, not on trial yet (laid out by a provision still building it).
    why: list[str]


@dataclass(frozen=True)
class Removal:
    # release, unfinished removal, record, build answer, blob, engine, engine manifest,
    # timing cache, calibration cache.
    kind: str
    path: str
    # The sizes of the files under the path (a release's are mostly links to blobs).
    bytes: int


@dataclass(frozen=True)
class Pruned:
    target: str
    # True: nothing was removed, ``removed`` is what a prune would remove.
    check: bool
    keep: int
    kept: list[Kept]
    removed: list[Removal]
    # The storage freed: each file's data counted once, when its last link goes.
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_releases(conn: Connection) -> Releases:
    answer = lifecycle_answer(conn, _agent_release(conn), "list", "--state-dir", STATE_DIR)
    return parse(Releases, {**answer, "target": str(conn.target)}, "the device's release list")


def prune(conn: Connection, keep: int = KEEP, check: bool = False) -> Pruned:
    args = ["prune", "--keep", str(keep), "--state-dir", STATE_DIR, *(["--check"] if check else [])]
    answer = lifecycle_answer(conn, _agent_release(conn), *args)
    return parse(Pruned, {**answer, "target": str(conn.target)}, "the device's prune answer")


def _agent_release(conn: Connection) -> str:
    """The release whose agent answers: the current one, which the lifecycle runs with."""
    # Imported here: install reaches onnx (through the blob store's digests), which the CLI
    # must not load to start (this module gives the CLI its --keep default).
    from edgekit.device.install import current_release

    current = current_release(conn)
    if current is None:
        raise UsageError(f"{conn.target} serves no release yet, so it has no releases to list or prune; provision it.")
    return current
