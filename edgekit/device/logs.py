"""The journal of the camera service, or of one release's build unit, read and followed from the host.

journald is the one place both write to (the service's result lines on stdout, its own
messages on stderr, systemd's about the unit), so reading it over SSH needs nothing on the
device beyond ``journalctl``. Following polls with journald's cursor, as
``edgekit.device.build`` follows a build: each poll asks only for what came after the last
entry seen, so a dropped link loses nothing once it is back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgekit.device.answers import ResultRecord
from edgekit.device.build import RECONNECT_S, field_text, unit_name
from edgekit.device.layout import UNIT_NAME, release_dir
from edgekit.errors import DeviceError, DeviceUnreachable, RemoteCommandFailed, UsageError
from edgekit.ssh.seam import Connection, failure_sentence

POLL_S = 1.0
DEFAULT_LINES = 50
# A release id as it goes into a unit name: no glob characters, which journalctl's --unit would expand.
_RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class LogsRequest:
    """Which journal to read, and how much of it: the options of ``edgekit logs``."""

    # A release id: its build unit's journal instead of the camera service's.
    build: str | None = None
    # journalctl's own syntax ("10 min ago", "2026-12-04 10:00", "today"), passed as one argument.
    since: str | None = None
    # The newest entries shown first (following, too, starts with them).
    lines: int = DEFAULT_LINES
    follow: bool = False

    def __post_init__(self) -> None:
        # Refused before any connection is made.
        if self.build is not None and not _RELEASE_ID.fullmatch(self.build):
            raise UsageError(f"`{self.build}` is not a release id; `edgekit releases HOST` lists them.")
        if self.lines < 0:
            raise UsageError(f"--lines must be 0 or more, not {self.lines}.")

    @property
    def unit(self) -> str:
        return UNIT_NAME if self.build is None else unit_name(self.build)


@dataclass(frozen=True)
class LogEntry:
    """One journal entry: a result record of the camera service, or a message of the unit's."""

    time: datetime
    unit: str
    pid: int | None
    # syslog's: 0 emergency ... 3 error, 4 warning, 6 info, 7 debug.
    priority: int | None
    # As logged; for a result record, its JSON line.
    message: str
    record: ResultRecord | None
    cursor: str

    def describe(self) -> str:
        """The record in its task's own terms with its speed, or the message as it is."""
        record = self.record
        if record is None:
            return self.message
        fps = "" if record.fps is None else f"  {record.fps:.1f} fps"
        return f"frame {record.frame}  {record.describe()}{fps}  total {_ms(record.latency_ms.total)} ms"

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": self.time.isoformat(),
            "unit": self.unit,
            "pid": self.pid,
            "priority": self.priority,
        }
        if self.record is not None:
            entry["record"] = self.record.to_dict()
        else:
            entry["message"] = self.message
        return entry


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def parse_entry(line: str, unit: str) -> LogEntry | None:
    """One line of ``journalctl --output=json``; None for a line that is not an entry."""
    try:
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    message = field_text(fields.get("MESSAGE"))
    micros = _number(fields.get("__REALTIME_TIMESTAMP")) or 0
    return LogEntry(
        time=datetime.fromtimestamp(micros / 1e6, UTC),
        # systemd's own lines about the unit ("Started ...") name it as UNIT; their _SYSTEMD_UNIT
        # is PID 1's init.scope. The unit's processes have only _SYSTEMD_UNIT.
        unit=field_text(fields.get("UNIT") or fields.get("_SYSTEMD_UNIT")) or unit,
        pid=_number(fields.get("_PID")),
        priority=_number(fields.get("PRIORITY")),
        message=message,
        record=_record(message),
        cursor=field_text(fields.get("__CURSOR")),
    )


def _number(value: Any) -> int | None:
    try:
        return int(field_text(value))
    except ValueError:
        return None


def _record(message: str) -> ResultRecord | None:
    if not message.startswith("{"):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or "frame" not in data:
        return None
    try:
        return ResultRecord.parse(data)
    except DeviceError:
        # A line of another shape (an older agent's): still worth showing, as it was written.
        return None


def journal_argv(request: LogsRequest, cursor: str = "", first: bool = True) -> list[str]:
    """The journalctl command of one read: the newest ``lines`` first, then what follows ``cursor``.

    A follow whose first read found nothing has no cursor: everything the same filter
    finds later is new, so later reads without one ask for all of it.
    """
    # Without --all, JSON output gives any field over 4 KiB as null: a detector's or raw head's record.
    argv = ["journalctl", f"--unit={request.unit}", "--output=json", "--all", "--no-pager", "--quiet"]
    if request.since is not None:
        argv.append(f"--since={request.since}")
    if cursor:
        argv.append(f"--after-cursor={cursor}")
    elif first:
        argv.append(f"--lines={request.lines}")
    return argv


@dataclass
class JournalReader:
    """Where the host is in one unit's journal: the last cursor it has seen."""

    conn: Connection
    request: LogsRequest
    cursor: str = ""
    reads: int = 0

    def read(self) -> list[LogEntry]:
        """The entries not read yet; the first read checks that a build unit named by id exists."""
        request = self.request
        shown = self.conn.run(journal_argv(request, self.cursor, self.reads == 0), sudo=True, check=False)
        if not shown.ok:
            if request.since is not None and "timestamp" in shown.stderr.lower():
                raise UsageError(
                    f"journalctl on {self.conn.target} cannot read --since {request.since!r}; give a time it "
                    'reads, such as "10 min ago", "2026-12-04 10:00" or "today".'
                )
            raise RemoteCommandFailed(failure_sentence(self.conn.target, shown), shown)
        entries = [entry for line in shown.stdout.splitlines() if (entry := parse_entry(line, request.unit))]
        if entries:
            self.cursor = entries[-1].cursor or self.cursor
        elif self.reads == 0 and request.build is not None:
            self._check_release(request.build)
        self.reads += 1
        return entries

    def _check_release(self, rid: str) -> None:
        # A failed build's release is removed but its journal stays, so only an empty journal
        # and no release at all mean the id is wrong.
        if not self.conn.run(["test", "-e", release_dir(rid)], check=False).ok:
            raise UsageError(
                f"No build unit {unit_name(rid)} ran on {self.conn.target} and it has no release {rid}; "
                f"`edgekit releases {self.conn.target}` lists them."
            )


def read_journal(
    conn: Connection,
    request: LogsRequest,
    *,
    on_drop: Callable[[str], None] = lambda text: None,
    stopped: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], object] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[LogEntry]:
    """The newest entries of the request's unit; with ``follow``, then the new ones as they
    come, until ``stopped`` says so. While following, a dropped link is retried for
    ``RECONNECT_S`` (``on_drop`` is told once when it drops and once when it is back)."""
    reader = JournalReader(conn, request)
    yield from reader.read()
    dropped_at: float | None = None
    while request.follow and not stopped():
        sleep(POLL_S)
        if stopped():
            return
        try:
            entries = reader.read()
        except DeviceUnreachable as exc:
            now = monotonic()
            if dropped_at is None:
                dropped_at = now
                # The cause alone: the exception's own sentence says to re-run, which following does not need.
                on_drop(f"link dropped ({exc.__cause__ or exc}); reconnecting for up to {RECONNECT_S:.0f} s")
            elif now - dropped_at > RECONNECT_S:
                raise DeviceUnreachable(
                    f"The link to {conn.target} dropped while following {request.unit} and did not come back "
                    f"within {RECONNECT_S:.0f} s; check the device's network and re-run `edgekit logs`."
                ) from exc
            continue
        if dropped_at is not None:
            on_drop("reconnected; following the journal again")
            dropped_at = None
        yield from entries
