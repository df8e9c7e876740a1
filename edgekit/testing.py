"""A fake of the SSH seam for unit tests: ``FakeConnection``, its pytest fixture and a fake clock.

In the spirit of Invoke's ``MockContext``: a test says what the device answers to which
command, runs host code against the fake, then asserts on what was sent::

    def test_store(fake_connection: FakeConnection) -> None:
        fake_connection.on(["id", "-un"], Reply("nvidia\\n"))
        fake_connection.on(["install"])
        prepare_store(fake_connection)
        assert fake_connection.runs[-1].argv[-2:] == ("nvidia", INCOMING_DIR)

Load the fixture with ``pytest_plugins = ["edgekit.testing"]`` in a conftest.py. Like the
seam, this module imports neither fabric nor paramiko.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgekit.errors import DeviceError
from edgekit.ssh.seam import ProgressCallback, RunResult, checked, command_line
from edgekit.ssh.target import Target

__all__ = ["FakeClock", "FakeConnection", "Get", "Put", "Reply", "Run", "UnansweredCommand", "fake_connection"]


@dataclass(frozen=True)
class Reply:
    """What the fake device answers to one command."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


@dataclass(frozen=True)
class Run:
    """One ``run`` call, as the host code made it."""

    argv: tuple[str, ...]
    sudo: bool
    check: bool
    timeout: float | None

    @property
    def line(self) -> str:
        """The argv quoted as the real connection sends it, without the sudo prefix."""
        return shlex.join(self.argv)


@dataclass(frozen=True)
class Put:
    local: Path
    remote: str
    # The local file's bytes when it was put: a test may delete or rewrite the file afterwards.
    data: bytes


@dataclass(frozen=True)
class Get:
    remote: str
    local: Path


Answer = Reply | Callable[[Run], Reply]
Match = Sequence[str] | re.Pattern[str]


class UnansweredCommand(AssertionError):
    """Host code ran a command the test gave no answer for."""


class FakeConnection:
    """A ``Connection`` that answers from a script and records every call.

    ``on`` registers answers; the latest registration that matches a command wins, so a
    test can change the device's answer mid-way. A callable answer can also raise, for
    instance ``DeviceUnreachable`` to drop the link. ``put`` stores the bytes in ``files``,
    where ``get`` reads from (tests may seed it); a missing remote file fails as on a device.
    """

    def __init__(self, target: Target | None = None) -> None:
        self.target = target or Target("jetson", user="nvidia")
        self.runs: list[Run] = []
        self.puts: list[Put] = []
        self.gets: list[Get] = []
        self.files: dict[str, bytes] = {}
        self.closed = False
        self._answers: list[tuple[tuple[str, ...] | re.Pattern[str], list[Answer]]] = []

    @property
    def is_root(self) -> bool:
        return self.target.user == "root"

    def on(self, match: Match, *answers: Answer) -> None:
        """Answer commands that start with the argv prefix ``match``, or whose quoted line
        (``Run.line``) ``match`` searches, with ``answers`` in turn, the last one repeating;
        with none, with an empty success."""
        pattern = match if isinstance(match, re.Pattern) else tuple(match)
        self._answers.append((pattern, list(answers or [Reply()])))

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = True,
        timeout: float | None = None,
    ) -> RunResult:
        call = Run(tuple(argv), sudo, check, timeout)
        self.runs.append(call)
        reply = self._answer(call)
        result = RunResult(command_line(argv, sudo and not self.is_root), reply.exit_code, reply.stdout, reply.stderr)
        return checked(self.target, result, check)

    def put(self, local: Path, remote: str, progress: ProgressCallback | None = None) -> None:
        data = local.read_bytes()
        self.puts.append(Put(local, remote, data))
        self.files[remote] = data
        if progress:
            progress(len(data), len(data))

    def get(self, remote: str, local: Path) -> None:
        self.gets.append(Get(remote, local))
        if remote not in self.files:
            raise DeviceError(f"{self.target} cannot give {remote} (no such file in the fake); seed `files` with it.")
        local.write_bytes(self.files[remote])

    def close(self) -> None:
        self.closed = True

    def commands(self) -> list[str]:
        """Every command run so far, quoted, with ``sudo`` in front of those run with sudo."""
        return [f"sudo {call.line}" if call.sudo else call.line for call in self.runs]

    def _answer(self, call: Run) -> Reply:
        for match, answers in reversed(self._answers):
            hit = match.search(call.line) if isinstance(match, re.Pattern) else call.argv[: len(match)] == match
            if hit:
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                return answer(call) if callable(answer) else answer
        raise UnansweredCommand(f"{self.target} has no answer for `{call.line}`; register one with on().")


class FakeClock:
    """``monotonic`` and ``sleep`` on a clock that only moves when slept on, for retry loops."""

    def __init__(self) -> None:
        # Not zero: like a real monotonic clock, so that code testing a timestamp for truth works.
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_connection() -> FakeConnection:
    """A fresh ``FakeConnection`` to a non-root ``nvidia@jetson`` that answers nothing yet."""
    return FakeConnection()
